/**
 * weftd --remote: the subnet manager that asks a weftd or flanneld v0.7 server (--listen) over HTTP(S)
 * instead of etcd, with v0.7's requests: GET config, POST leases (acquire), PUT leases/<subnet> (renew),
 * and the lease watch as a long poll GET leases?next=<cursor> (a snapshot first, then events). While the
 * server is away every request is tried again each second, with one log line per cause; the watch
 * resumes from its cursor, and our own lease, if it disappears, is acquired again.
 */
import http from "node:http";
import https from "node:https";
import { type NetworkConfig, parseNetworkConfig } from "../../config/network-config.js";
import type { Lease } from "../../lease/lease.js";
import { sleep } from "../../retry/backoff.js";
import { boundText } from "../../text/untrusted-text.js";
import { describeError, UserError } from "../../user-error.js";
import type { LeaseRequest, LeaseWatcher, SubnetManager } from "../subnet-manager.js";
import {
  decodeApiLease,
  decodeWatchAnswer,
  encodeApiAttrs,
  encodeApiLease,
  ZERO_TIME,
} from "./remote-json.js";
import { type RemoteTlsFiles, usesTls } from "./remote-tls.js";

export interface RemoteSubnetManagerOptions {
  /** host:port of the server (--remote). */
  readonly server: string;
  /** "_" in single-network mode. */
  readonly network: string;
  readonly tls: RemoteTlsFiles;
  /** Renew this long before the lease expires (--subnet-lease-renew-margin). */
  readonly renewMarginSeconds: number;
  readonly log: (message: string) => void;
}

const RETRY_MS = 1000;
const SILENCE_MS = 10 * 60_000;
const ANSWER_MAX = 16 * 1024 * 1024;

/** An answer that is not 200: the server's text, as v0.7 shows it ("500 Internal Server Error: ..."). */
export class RemoteHttpError extends Error {
  constructor(
    readonly status: number,
    text: string,
  ) {
    super(text);
  }
}

export class RemoteSubnetManager implements SubnetManager {
  readonly name = "remote";
  private readonly base: string;
  private readonly agent: http.Agent;
  private closed = false;
  private own: Lease | undefined;
  /** The Expiration the server gave our lease; a renewal sends it back, as v0.7 does. */
  private ownExpiration = ZERO_TIME;
  private renewTimer: NodeJS.Timeout | undefined;
  private readonly requests = new Set<http.ClientRequest>();
  /** The last failure logged, so a server down for an hour leaves one line. */
  private lastFailure = "";

  constructor(private readonly options: RemoteSubnetManagerOptions) {
    const tls = usesTls(options.tls);
    this.base = `${tls ? "https" : "http"}://${options.server}/v1/${encodeURIComponent(options.network)}`;
    this.agent = tls
      ? new https.Agent({ keepAlive: true, ca: options.tls.ca, cert: options.tls.cert, key: options.tls.key })
      : new http.Agent({ keepAlive: true });
  }

  /** One HTTP exchange; a status other than 200 is a RemoteHttpError. */
  private request(method: string, path: string, body?: string): Promise<string> {
    const url = new URL(this.base + path);
    const mod = url.protocol === "https:" ? https : http;
    return new Promise((resolve, reject) => {
      const headers: Record<string, string | number> = { "User-Agent": "weftd" };
      if (body !== undefined) {
        headers["Content-Length"] = Buffer.byteLength(body);
        headers["Content-Type"] = "application/json";
      }
      const req = mod.request(url, { method, headers, agent: this.agent }, (res) => {
        const chunks: Buffer[] = [];
        let size = 0;
        res.on("data", (c: Buffer) => {
          size += c.length;
          if (size > ANSWER_MAX) req.destroy(new Error(`answer over ${ANSWER_MAX} bytes`));
          else chunks.push(c);
        });
        res.on("end", () => {
          const text = Buffer.concat(chunks).toString("utf8");
          if (res.statusCode === 200) resolve(text);
          else
            reject(
              new RemoteHttpError(
                res.statusCode ?? 0,
                `${res.statusCode} ${res.statusMessage}: ${boundText(text.trim(), 500)}`,
              ),
            );
        });
        res.on("error", reject);
      });
      // A long poll answers only at the next change: a new connection is the sign the server is back.
      req.on("socket", (socket) => socket.once("connect", () => this.reachable()));
      // A half-open connection would hold a long poll forever: after this much silence it is asked again
      // from the same cursor, which loses nothing.
      req.setTimeout(SILENCE_MS, () => req.destroy(new Error(`no answer for ${SILENCE_MS / 60_000} min`)));
      this.requests.add(req);
      req.on("close", () => this.requests.delete(req));
      req.on("error", reject);
      req.end(body);
    });
  }

  private reachable(): void {
    if (this.lastFailure) this.options.log(`server ${this.options.server} is reachable again`);
    this.lastFailure = "";
  }

  /** Retries `step` every second until it works (or we close), logging each distinct failure once. */
  private async persist<T>(what: string, step: () => Promise<T>): Promise<T> {
    for (;;) {
      try {
        const result = await step();
        this.reachable();
        return result;
      } catch (err) {
        if (this.closed) throw err;
        // A config the server cannot give (none for this network) waits like a down server, but is named.
        const text = describeError(err);
        if (text !== this.lastFailure) {
          this.options.log(`${what} from ${this.base}: ${text}; retrying every second`);
          this.lastFailure = text;
        }
        await sleep(RETRY_MS);
      }
    }
  }

  async getNetworkConfig(): Promise<NetworkConfig> {
    const text = await this.persist("waiting for the network config", () => this.request("GET", "/config"));
    return parseNetworkConfig(text);
  }

  async acquireLease(request: LeaseRequest): Promise<Lease> {
    if (!request.attrs.publicIP) {
      throw new UserError("--remote needs an IPv4 public address", "v0.7's API carries IPv4 leases only");
    }
    // An answer that is not a lease is retried like a failed request: the server may be mid-upgrade.
    const { lease, expiration } = await this.persist("acquiring a lease", async () =>
      decodeApiLease(parseAnswer(await this.request("POST", "/leases", encodeApiAttrs(request.attrs)))),
    );
    this.own = lease;
    this.ownExpiration = expiration;
    this.options.log(`lease acquired: ${lease.key} from ${this.options.server}`);
    this.scheduleRenew(expiration);
    return lease;
  }

  private scheduleRenew(expiration: string): void {
    clearTimeout(this.renewTimer);
    // A reservation never expires: renewing would give it a TTL.
    if (expiration === ZERO_TIME) return;
    const expires = Date.parse(expiration);
    const delayMs = Number.isNaN(expires)
      ? 60_000
      : Math.max(1000, expires - Date.now() - this.options.renewMarginSeconds * 1000);
    this.renewTimer = setTimeout(() => void this.renew(), Math.min(delayMs, 2 ** 31 - 1));
    this.renewTimer.unref();
  }

  private async renew(): Promise<void> {
    const own = this.own;
    if (!own || this.closed) return;
    try {
      const { expiration } = await this.persist("renewing the lease", async () =>
        decodeApiLease(
          parseAnswer(
            await this.request(
              "PUT",
              `/leases/${own.key}`,
              encodeApiLease({ lease: own, expiration: this.ownExpiration }),
            ),
          ),
        ),
      );

      this.ownExpiration = expiration;
      this.options.log(`lease ${own.key} renewed, new expiration: ${expiration}`);
      this.scheduleRenew(expiration);
    } catch {
      // closed
    }
  }

  watchLeases(watcher: LeaseWatcher): void {
    void this.watchLoop(watcher);
    void this.ownLeaseLoop(watcher);
  }

  /**
   * v0.7's second long poll, GET leases/<our subnet>?next=: it says when our lease is revoked (removed,
   * or missing from a snapshot, e.g. after it expired while the server was away).
   */
  private async ownLeaseLoop(watcher: LeaseWatcher): Promise<void> {
    let cursor: string | undefined;
    let key: string | undefined;
    while (!this.closed) {
      const own = this.own;
      if (!own) return;
      if (own.key !== key) {
        key = own.key;
        cursor = undefined;
      }
      const path = `/leases/${own.key}${cursor === undefined ? "" : `?next=${encodeURIComponent(cursor)}`}`;
      let answer: ReturnType<typeof decodeWatchAnswer>;
      try {
        answer = decodeWatchAnswer(await this.persist("watching leases", () => this.request("GET", path)));
      } catch (err) {
        if (this.closed) return;
        watcher.onWarning(
          `the server's answer about our lease is unusable (${describeError(err)}); starting over`,
        );
        cursor = undefined;
        await sleep(RETRY_MS);
        continue;
      }
      cursor = answer.cursor;
      const gone = answer.snapshot
        ? !answer.snapshot.some((l) => l.lease.key === own.key)
        : answer.events.at(-1)?.type === "removed";
      if (gone && this.own === own) await this.reacquire(watcher, own);
    }
  }

  /** The long poll: a snapshot, then one answer per change; the cursor survives a server restart. */
  private async watchLoop(watcher: LeaseWatcher): Promise<void> {
    const table = new Map<string, Lease>();
    let cursor: string | undefined;
    while (!this.closed) {
      const path = cursor === undefined ? "/leases" : `/leases?next=${encodeURIComponent(cursor)}`;
      let answerText: string;
      try {
        answerText = await this.persist("watching leases", () => this.request("GET", path));
      } catch {
        return; // closed
      }
      let answer: ReturnType<typeof decodeWatchAnswer>;
      try {
        answer = decodeWatchAnswer(answerText);
      } catch (err) {
        watcher.onWarning(`the server's watch answer is unusable (${describeError(err)}); starting over`);
        cursor = undefined;
        await sleep(RETRY_MS);
        continue;
      }
      if (answer.snapshot) {
        table.clear();
        for (const l of answer.snapshot) table.set(l.lease.key, l.lease);
      } else {
        for (const e of answer.events) {
          if (e.type === "added") table.set(e.lease.lease.key, e.lease.lease);
          else table.delete(e.lease.lease.key);
        }
      }
      cursor = answer.cursor;
      watcher.onLeases(table);
    }
  }

  /** Our lease revoked (deleted, expired): acquired again, as v0.7 does. */
  private async reacquire(watcher: LeaseWatcher, own: Lease): Promise<void> {
    watcher.onWarning(`our lease ${own.key} has been revoked; acquiring a lease again`);
    try {
      const lease = await this.acquireLease({
        attrs: own.attrs,
        previousSubnet: own.subnet,
        previousIPv6Subnet: undefined,
      });
      if (lease.key !== own.key) {
        watcher.onFatal(
          new UserError(
            `our lease ${own.key} was lost and the server gave ${lease.key} instead`,
            "weftd exits so pods restart on the new subnet; its supervisor should start it again",
          ),
        );
        return;
      }
      watcher.onOwnLease(lease);
    } catch (err) {
      if (!this.closed) watcher.onFatal(err instanceof Error ? err : new Error(String(err)));
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.renewTimer);
    for (const req of this.requests) req.destroy();
    this.agent.destroy();
  }
}

function parseAnswer(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    throw new Error(`the server's answer is not JSON: ${boundText(text, 200)}`);
  }
}
