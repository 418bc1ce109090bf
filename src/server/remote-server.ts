/**
 * weftd --listen: flanneld v0.7's server. It holds the etcd connection and serves the v1 REST API under
 * /v1/<network>/ ("_": the single network at <prefix>/) to weftd or flanneld clients started with
 * --remote, answering as v0.7 does: JSON bodies, status codes, error texts. It runs no datapath.
 */
import http from "node:http";
import net, { type AddressInfo } from "node:net";
import { createServer as createTlsServer } from "node:tls";
import { parseNetworkConfig } from "../config/network-config.js";
import { formatCIDR, parseCIDR } from "../ip/ip-network.js";
import { encodeLeaseAttrs } from "../lease/lease-json.js";
import { subnetKey } from "../lease/lease-key.js";
import type { EtcdStore } from "../subnet/etcd/etcd-store.js";
import { EtcdSubnetManager } from "../subnet/etcd/etcd-subnet-manager.js";
import {
  decodeApiLease,
  encodeApiConfig,
  encodeApiLease,
  encodeWatchAnswer,
  formatGoTime,
  ZERO_TIME,
} from "../subnet/remote/remote-json.js";
import type { RemoteTlsFiles } from "../subnet/remote/remote-tls.js";
import { boundText } from "../text/untrusted-text.js";
import { describeError, UserError } from "../user-error.js";
import { LEASE_TTL_SECONDS, NetworkLeases } from "./network-leases.js";
import { NetworkNames } from "./network-names.js";

export interface RemoteServerOptions {
  readonly store: EtcdStore;
  /** <prefix> without a trailing slash. */
  readonly prefix: string;
  readonly tls: RemoteTlsFiles | undefined;
  readonly log: (message: string, verbosity?: number) => void;
  readonly warn: (message: string) => void;
}

/** Where to listen: host and port, or the first socket systemd passed (fd 3). */
export type ListenTarget = { readonly host: string; readonly port: number } | { readonly fd: number };

const BODY_MAX = 64 * 1024;
const NETWORK_NAME = /^(?!\.\.?$)[A-Za-z0-9_.-]{1,253}$/;
/** A TLS record of type handshake (a ClientHello) starts with this byte. */
const TLS_HANDSHAKE = 0x16;
/** Go's net/http answer to plain HTTP on a TLS port, byte for byte. */
const PLAIN_HTTP_TO_TLS = "HTTP/1.0 400 Bad Request\r\n\r\nClient sent an HTTP request to an HTTPS server.\n";

class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

export class RemoteServer {
  private readonly networks = new Map<string, NetworkLeases>();
  private names: NetworkNames | undefined;
  private readonly server: http.Server;
  /**
   * With TLS: the listener in front, which answers plain HTTP as Go's server does (a 400), not with silence.
   * Without TLS, on a socket systemd passed: one that hands each connection to the HTTP server, since Bun's
   * http.Server.listen({ fd }) ignores the fd (it opens a port of its own); net.Server's takes it.
   */
  private front: net.Server | undefined;
  private readonly frontSockets = new Set<net.Socket>();
  /** The store without close(): the per-request managers share it. */
  private readonly sharedStore: EtcdStore;

  constructor(private readonly options: RemoteServerOptions) {
    this.sharedStore = Object.create(options.store, { close: { value: () => undefined } }) as EtcdStore;
    const handler = (req: http.IncomingMessage, res: http.ServerResponse) => void this.handle(req, res);
    const tls = options.tls;
    this.server = http.createServer(handler);
    if (tls && (tls.cert || tls.key)) {
      // TLS ends in a tls.Server that hands each connection to the HTTP server (what node:https does inside):
      // Bun's node:https never answers a socket emitted into it; its tls.Server, like Node's, does.
      const server = this.server;
      const tlsServer = createTlsServer(
        {
          cert: tls.cert,
          key: tls.key,
          ca: tls.ca,
          // With a CA, v0.7 requires and verifies client certificates.
          requestCert: tls.ca !== undefined,
          rejectUnauthorized: tls.ca !== undefined,
          ALPNProtocols: ["http/1.1"],
        },
        (socket) => server.emit("connection", socket),
      );
      tlsServer.on("tlsClientError", (err) => options.warn(`TLS handshake failed: ${err.message}`));
      this.front = this.frontListener((socket) => {
        socket.once("data", (chunk: Buffer) => {
          socket.pause();
          if (chunk[0] === TLS_HANDSHAKE) {
            // The TLS socket reads what is buffered first, this chunk included.
            socket.unshift(chunk);
            tlsServer.emit("connection", socket);
          } else {
            socket.end(PLAIN_HTTP_TO_TLS);
          }
        });
        socket.on("error", () => undefined);
      });
    }
  }

  /** A listener in front of the HTTP server whose connections close() can end. */
  private frontListener(onConnection: (socket: net.Socket) => void): net.Server {
    return net.createServer((socket) => {
      this.frontSockets.add(socket);
      socket.once("close", () => this.frontSockets.delete(socket));
      onConnection(socket);
    });
  }

  listen(target: ListenTarget): Promise<AddressInfo | string> {
    if (!this.front && "fd" in target) {
      const server = this.server;
      this.front = this.frontListener((socket) => server.emit("connection", socket));
    }
    return new Promise((resolve, reject) => {
      const done = () => {
        (this.front ?? this.server).off("error", reject);
        resolve((this.front ?? this.server).address() ?? "");
      };
      const listener = this.front ?? this.server;
      listener.once("error", reject);
      if ("fd" in target) listener.listen({ fd: target.fd }, done);
      else listener.listen(target.port, target.host, done);
    });
  }

  async close(): Promise<void> {
    await Promise.all([...this.networks.values(), ...(this.names ? [this.names] : [])].map((n) => n.close()));
    this.server.closeAllConnections();
    const front = this.front;
    for (const socket of this.frontSockets) socket.destroy();
    if (front) await new Promise<void>((resolve) => front.close(() => resolve()));
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private prefixOf(network: string): string {
    return network === "_" ? this.options.prefix : `${this.options.prefix}/${network}`;
  }

  private leasesOf(network: string): NetworkLeases {
    let leases = this.networks.get(network);
    if (!leases) {
      leases = new NetworkLeases(this.options.store, this.prefixOf(network), this.options.warn);
      this.networks.set(network, leases);
    }
    return leases;
  }

  private async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const url = new URL(req.url ?? "/", "http://server");
    let status = 200;
    try {
      const [body, type] = await this.route(req, url, res);
      if (res.destroyed) return;
      send(res, 200, body, type);
    } catch (err) {
      status = err instanceof HttpError ? err.status : 500;
      if (!res.destroyed) send(res, status, describeError(err), "text/plain; charset=utf-8");
    }
    // v0.7's request log line, and who asked.
    this.options.log(
      `${req.method} ${boundText(req.url ?? "")} - ${status} (${req.socket.remoteAddress})`,
      1,
    );
  }

  private async route(
    req: http.IncomingMessage,
    url: URL,
    res: http.ServerResponse,
  ): Promise<[string, string | undefined]> {
    const json = "application/json; charset=utf-8";
    const parts = url.pathname.split("/").slice(1);
    if (parts[0] !== "v1") throw new HttpError(404, "404 page not found");
    if (parts.length === 2 && parts[1] === "" && req.method === "GET")
      return [await this.networksList(url, res), json];
    const [, network, resource, item, ...extra] = parts;
    // A network is one etcd path segment under the prefix, nothing that could climb out of it.
    if (!network || !NETWORK_NAME.test(network) || extra.length > 0) {
      throw new HttpError(404, "404 page not found");
    }
    const method = req.method ?? "GET";
    if (resource === "config" && item === undefined && method === "GET")
      return [await this.config(network), json];
    if (resource === "leases") {
      if (item === undefined && method === "POST")
        return [await this.acquire(network, await readBody(req)), json];
      if (item === undefined && method === "GET")
        return [await this.watch(network, url, res, undefined), json];
      if (item !== undefined) {
        const key = leaseKeyOf(item);
        if (method === "GET") return [await this.watch(network, url, res, key), json];
        if (method === "PUT") return [await this.renew(network, key, await readBody(req)), json];
        if (method === "DELETE") {
          await this.options.store.delete(`${this.prefixOf(network)}/subnets/${key}`);
          return ["", undefined];
        }
      }
    }
    if (resource === "reservations") {
      if (item === undefined && method === "GET") return [await this.reservations(network), json];
      if (item === undefined && method === "POST") {
        await this.reserve(network, await readBody(req));
        return ["", undefined];
      }
      if (item !== undefined && method === "DELETE") {
        await this.options.store.delete(`${this.prefixOf(network)}/subnets/${leaseKeyOf(item)}`);
        return ["", undefined];
      }
    }
    throw new HttpError(404, "404 page not found");
  }

  private async configText(network: string): Promise<string> {
    const prefix = this.prefixOf(network);
    const text = await this.options.store.get(`${prefix}/config`);
    if (text === undefined) {
      // v0.7's text (etcd v2's "Key not found"), with etcd v3's revision for v2's index.
      const { revision } = await this.options.store.list(`${prefix}/config`);
      throw new HttpError(500, `100: Key not found (${prefix}) [${revision}]`);
    }
    return text;
  }

  private async config(network: string): Promise<string> {
    return encodeApiConfig(parseNetworkConfig(await this.configText(network)));
  }

  /** GET /v1/[?next=<cursor>]: the networks (names with a config under the prefix) and their changes. */
  private async networksList(url: URL, res: http.ServerResponse): Promise<string> {
    const cursor = parseCursor(url.searchParams.get("next"));
    if (!this.names)
      this.names = new NetworkNames(this.options.store, this.options.prefix, this.options.warn);
    const names = this.names;
    await names.ready;
    return longPoll(res, names, () => names.answer(cursor));
  }

  /** POST leases: the etcd manager's own acquisition (reuse the lease carrying the address, else a free one). */
  private async acquire(network: string, body: string): Promise<string> {
    const attrs = decodeApiLease({ Subnet: "0.0.0.0/0", Attrs: parseJson(body) }).lease.attrs;
    await this.configText(network); // v0.7's error for a network without a config
    const manager = new EtcdSubnetManager(this.sharedStore, {
      prefix: this.prefixOf(network),
      leaseTtlSeconds: LEASE_TTL_SECONDS,
      // The client renews; this manager is dropped right after the acquisition.
      renewMarginSeconds: 0,
      log: (m) => this.options.log(`${network}: ${m}`),
    });
    const expiration = formatGoTime(new Date(Date.now() + LEASE_TTL_SECONDS * 1000));
    try {
      // v0.7's request names no subnet: the one this address held last (revoked, expired) is tried first.
      const leases = this.leasesOf(network);
      await leases.ready;
      const lease = await manager.acquireLease({
        attrs,
        previousSubnet: leases.lastSubnetOf(attrs.publicIP),
        previousIPv6Subnet: undefined,
      });
      if (lease.reservation) return encodeApiLease({ lease, expiration: ZERO_TIME });
      await this.noteCurrentExpiration(network, lease.key, expiration);
      return encodeApiLease({ lease, expiration });
    } finally {
      await manager.close();
    }
  }

  private async noteCurrentExpiration(network: string, key: string, expiration: string): Promise<void> {
    const stored = await this.options.store.getStored(`${this.prefixOf(network)}/subnets/${key}`);
    if (stored && stored.leaseId !== "0") this.leasesOf(network).noteExpiration(stored.leaseId, expiration);
  }

  /** PUT leases/<subnet>: the lease written again under a new 24 h etcd lease. */
  private async renew(network: string, key: string, body: string): Promise<string> {
    const sent = decodeApiLease(parseJson(body));
    if (sent.lease.key !== key) {
      throw new HttpError(400, `the lease's Subnet (${sent.lease.key}) is not the one in the URL (${key})`);
    }
    const leaseId = await this.options.store.grantLease(LEASE_TTL_SECONDS);
    const expiration = formatGoTime(new Date(Date.now() + LEASE_TTL_SECONDS * 1000));
    this.leasesOf(network).noteExpiration(leaseId, expiration);
    await this.options.store.put(
      `${this.prefixOf(network)}/subnets/${key}`,
      encodeLeaseAttrs(sent.lease.attrs),
      leaseId,
    );
    return encodeApiLease({ lease: sent.lease, expiration });
  }

  private async reservations(network: string): Promise<string> {
    if (!this.networks.has(network)) await this.configText(network);
    const leases = this.leasesOf(network);
    await leases.ready;
    const list = leases.log
      .leases()
      .filter((l) => l.lease.reservation)
      .map(
        (l) =>
          `{"Subnet":${JSON.stringify(formatCIDR(l.lease.subnet!))},"PublicIP":${JSON.stringify(l.lease.attrs.publicIP ?? "0.0.0.0")}}`,
      );
    return `[${list.join(",")}]`;
  }

  private async reserve(network: string, body: string): Promise<void> {
    const value = parseJson(body) as { Subnet?: unknown; PublicIP?: unknown };
    const lease = decodeApiLease({ Subnet: value.Subnet, Attrs: { PublicIP: value.PublicIP } }).lease;
    await this.options.store.put(
      `${this.prefixOf(network)}/subnets/${lease.key}`,
      encodeLeaseAttrs(lease.attrs),
      "0",
    );
  }

  /**
   * GET leases[/<subnet>][?next=<cursor>]: without a cursor a snapshot; with one, the next event after it,
   * held open (a long poll) until there is one. Answered from the shared event log, never from etcd.
   */
  private async watch(
    network: string,
    url: URL,
    res: http.ServerResponse,
    key: string | undefined,
  ): Promise<string> {
    const cursor = parseCursor(url.searchParams.get("next"));
    // A network is checked for its config once; after that a long poll costs etcd nothing.
    if (!this.networks.has(network)) await this.configText(network);
    const leases = this.leasesOf(network);
    await leases.ready;
    return longPoll(res, leases.log, () => {
      const answer = leases.log.answer(cursor, key);
      return answer && encodeWatchAnswer(answer);
    });
  }
}

/** v0.7's cursor: an unsigned 64-bit number, or none (a snapshot). */
function parseCursor(next: string | null): bigint | undefined {
  if (next === null || next === "") return undefined;
  if (!/^[0-9]+$/.test(next) || BigInt(next) > 0xffffffffffffffffn) {
    throw new HttpError(
      500,
      `failed to parse cursor: strconv.ParseUint: parsing ${JSON.stringify(next)}: invalid syntax`,
    );
  }
  return BigInt(next);
}

/** Answers now if there is an answer, else at the first change that gives one, or "" if the client left. */
function longPoll(
  res: http.ServerResponse,
  source: { onChange(wake: () => void): () => void },
  answer: () => string | undefined,
): Promise<string> {
  return new Promise((resolve) => {
    const first = answer();
    if (first !== undefined) return resolve(first);
    const stop = source.onChange(() => {
      const found = answer();
      if (found !== undefined) {
        stop();
        resolve(found);
      }
    });
    res.once("close", () => {
      stop();
      resolve("");
    });
  });
}

function send(res: http.ServerResponse, status: number, body: string, type: string | undefined): void {
  // Go's JSON encoder ends each value with a newline; error texts have none.
  const bytes = Buffer.from(status === 200 && type?.startsWith("application/json") ? `${body}\n` : body);
  // v0.7's header order: Content-Type, Date, Content-Length.
  if (type && status === 200) res.setHeader("Content-Type", type);
  res.setHeader("Date", new Date().toUTCString());
  res.setHeader("Content-Length", bytes.length);
  if (type && status !== 200) res.setHeader("Content-Type", type);
  res.writeHead(status);
  res.end(bytes);
}

function readBody(req: http.IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on("data", (chunk: Buffer) => {
      size += chunk.length;
      if (size > BODY_MAX) {
        reject(new HttpError(413, `request body over ${BODY_MAX} bytes`));
        req.destroy();
      } else chunks.push(chunk);
    });
    req.on("end", () => resolve(Buffer.concat(chunks).toString("utf8")));
    req.on("error", reject);
  });
}

function parseJson(body: string): unknown {
  try {
    return JSON.parse(body);
  } catch {
    throw new HttpError(400, "JSON decoding error: the request body is not JSON");
  }
}

/** "10.66.49.0-24" in a URL: the lease's key, checked. */
function leaseKeyOf(item: string): string {
  const net = parseCIDR(item.replace("-", "/"));
  if (net?.family !== 4) throw new HttpError(400, `${boundText(item)} is not a subnet like 10.66.49.0-24`);
  return subnetKey(net, undefined);
}

/** --listen's value: "host:port", ":port", or "fd://" (systemd socket activation: LISTEN_FDS, fd 3). */
export function parseListenTarget(text: string, env: NodeJS.ProcessEnv, pid = process.pid): ListenTarget {
  if (text.startsWith("fd://")) {
    if (env.LISTEN_PID !== String(pid) || !(Number(env.LISTEN_FDS) >= 1)) {
      throw new UserError(
        `--listen=${text} needs a socket from systemd (LISTEN_PID=${pid}, LISTEN_FDS>=1); start weftd from a .socket unit or give host:port`,
      );
    }
    return { fd: 3 };
  }
  const match = /^(?:\[([^\]]+)\]|([^:]*)):([0-9]{1,5})$/.exec(text);
  const port = match ? Number(match[3]) : Number.NaN;
  if (!match || port < 1 || port > 65535) {
    throw new UserError(`--listen=${boundText(text)} is not host:port or fd://`);
  }
  return { host: match[1] ?? (match[2] || "0.0.0.0"), port };
}
