/**
 * A stand-in for the two Google services the gce backend uses, faithful to Google's published shapes
 * (not to what weft sends):
 * - the metadata server, http://<host>/computeMetadata/v1/... , which answers only with the header
 *   "Metadata-Flavor: Google" (https://cloud.google.com/compute/docs/metadata/querying-metadata) and
 *   tells the calling VM (found by its source address, as on GCE) its project, zone, name, network and
 *   its service account's token {"access_token","expires_in","token_type":"Bearer"};
 * - Compute Engine v1 under /compute/v1/projects/{project}/: instances.get, routes.list (filter, maxResults,
 *   pageToken/nextPageToken), routes.get, routes.insert, routes.delete, globalOperations.get and .wait
 *   (https://cloud.google.com/compute/docs/reference/rest/v1/routes, .../globalOperations). Mutations
 *   return an Operation that is PENDING, then RUNNING, then DONE; the route changes when it is DONE.
 * Errors use Google's body {"error":{"code","message","errors":[{"domain","reason","message"}],"status"}}:
 * 401 without a valid Bearer token, 403 forbidden for a denied permission, 403 quotaExceeded past the
 * ROUTES quota, 404 notFound, 409 alreadyExists, 400 invalid. Eventual consistency: a route is listed
 * by routes.list only listLagMs after its operation is DONE (routes.get sees it at once).
 */
import { randomBytes } from "node:crypto";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";

export interface StandinInstance {
  readonly name: string;
  readonly zone: string;
  /** Its address on the network: metadata requests from it are this instance's; routes to it go here. */
  readonly ip: string;
  readonly canIpForward?: boolean;
  /** Permissions its service account lacks, e.g. ["compute.routes.create"]. */
  readonly denied?: readonly string[];
}

export interface StandinOptions {
  readonly project: string;
  readonly projectNumber?: string;
  readonly network?: string;
  readonly instances: readonly StandinInstance[];
  /** The project's ROUTES quota (GCE's default in the seeds' era: 100). */
  readonly routeQuota?: number;
  /** How long a route stays unlisted after its operation is DONE. */
  readonly listLagMs?: number;
  /** How long an operation is PENDING, then RUNNING. */
  readonly operationStepMs?: number;
  readonly tokenLifetimeSeconds?: number;
  /** A token that may do everything, as a console user's (for tests acting as the operator). */
  readonly adminToken?: string;
  /** Called with every route after each change (the lab installs them in the fabric). */
  readonly onRoutesChanged?: (routes: readonly StoredRoute[]) => void;
  /** Called for each accepted insert or delete: "insert flannel-10-244-3-0-24". */
  readonly onMutation?: (what: string) => void;
}

export interface StoredRoute {
  readonly kind: "compute#route";
  readonly id: string;
  readonly creationTimestamp: string;
  readonly name: string;
  readonly description?: string;
  readonly network: string;
  readonly destRange: string;
  readonly priority: number;
  readonly nextHopInstance?: string;
  readonly nextHopIp?: string;
  readonly selfLink: string;
  /** Not part of the resource: when routes.list starts showing it. */
  readonly listedFrom: number;
}

interface Operation {
  kind: "compute#operation";
  id: string;
  name: string;
  operationType: "insert" | "delete";
  targetLink: string;
  status: "PENDING" | "RUNNING" | "DONE";
  progress: number;
  insertTime: string;
  user: string;
  selfLink: string;
  endTime?: string;
  done: Promise<void>;
}

class HttpError extends Error {
  constructor(
    readonly code: number,
    readonly reason: string,
    message: string,
    readonly domain = "global",
  ) {
    super(message);
  }
}

const STATUS: Record<number, string> = {
  400: "INVALID_ARGUMENT",
  401: "UNAUTHENTICATED",
  403: "PERMISSION_DENIED",
  404: "NOT_FOUND",
  409: "ALREADY_EXISTS",
};
const NAME_RE = /^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$/;

export class GceStandin {
  readonly routes = new Map<string, StoredRoute>();
  /** Every request, "METHOD path" (for tests that count inserts). */
  readonly requests: string[] = [];
  private readonly operations = new Map<string, Operation>();
  private readonly tokens = new Map<string, { instance: StandinInstance | undefined; expiresAt: number }>();
  private server: Server | undefined;
  /** routes.list page size (Google caps maxResults at 500; smaller here to exercise paging). */
  pageSize = 500;
  private baseUrl = "";
  private ids = 1000;
  private readonly projectNumber: string;
  private readonly network: string;

  constructor(readonly options: StandinOptions) {
    this.projectNumber = options.projectNumber ?? "123456789012";
    this.network = options.network ?? "default";
    if (options.adminToken) this.tokens.set(options.adminToken, { instance: undefined, expiresAt: Infinity });
  }

  /** Listens; `publicBase` is how clients address it (defaults to the bound address). */
  async listen(port = 0, host = "127.0.0.1", publicBase?: string): Promise<string> {
    this.server = createServer((req, res) => void this.handle(req, res));
    await new Promise<void>((resolve) => this.server!.listen(port, host, resolve));
    const addr = this.server.address() as AddressInfo;
    this.baseUrl = publicBase ?? `http://${host}:${addr.port}`;
    return this.baseUrl;
  }

  get hostPort(): string {
    return this.baseUrl.replace(/^https?:\/\//, "");
  }
  get computeBase(): string {
    return `${this.baseUrl}/compute/v1/`;
  }
  networkUrl(): string {
    return `${this.computeBase}projects/${this.options.project}/global/networks/${this.network}`;
  }
  instanceUrl(i: StandinInstance): string {
    return `${this.computeBase}projects/${this.options.project}/zones/${i.zone}/instances/${i.name}`;
  }

  async close(): Promise<void> {
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
    this.server?.closeAllConnections();
  }

  /** The next `count` Compute API requests fail with `status` (429 rateLimitExceeded, 503 backendError). */
  failNext(status: 429 | 500 | 503, count: number): void {
    this.failures = { status, count };
  }
  private failures = { status: 503, count: 0 };

  /** Every token issued so far stops working (as if revoked or expired early). */
  revokeTokens(): void {
    for (const [token, t] of this.tokens) if (t.instance) this.tokens.delete(token);
  }

  /** As an operator in the console: remove a route now (no operation to wait for). */
  deleteRouteNow(name: string): boolean {
    const had = this.routes.delete(name);
    if (had) this.changed();
    return had;
  }

  /** As another tool: put a route in place directly (listed at once). */
  addRouteNow(route: { name: string; destRange: string; nextHopInstance: string; ageMs?: number }): void {
    this.routes.set(route.name, {
      kind: "compute#route",
      id: String(this.ids++),
      creationTimestamp: new Date(Date.now() - (route.ageMs ?? 0)).toISOString(),
      name: route.name,
      network: this.networkUrl(),
      destRange: route.destRange,
      priority: 1000,
      nextHopInstance: route.nextHopInstance,
      selfLink: `${this.computeBase}projects/${this.options.project}/global/routes/${route.name}`,
      listedFrom: 0,
    });
    this.changed();
  }

  private changed(): void {
    this.options.onRoutesChanged?.([...this.routes.values()]);
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? "/", "http://standin");
    this.requests.push(`${req.method} ${url.pathname}`);
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const body = Buffer.concat(chunks).toString("utf8");
    try {
      if (url.pathname.startsWith("/computeMetadata/v1/")) return this.metadata(req, res, url);
      if (url.pathname.startsWith("/compute/v1/projects/")) {
        const result = await this.compute(req, url, body);
        return send(res, 200, JSON.stringify(result), "application/json; charset=UTF-8");
      }
      throw new HttpError(404, "notFound", `The requested URL ${url.pathname} was not found on this server.`);
    } catch (err) {
      if (!(err instanceof HttpError)) throw err;
      send(
        res,
        err.code,
        JSON.stringify({
          error: {
            code: err.code,
            message: err.message,
            errors: [{ message: err.message, domain: err.domain, reason: err.reason }],
            status: STATUS[err.code] ?? "UNKNOWN",
          },
        }),
        "application/json; charset=UTF-8",
      );
    }
  }

  private caller(req: IncomingMessage): StandinInstance | undefined {
    const ip = (req.socket.remoteAddress ?? "").replace(/^::ffff:/, "");
    return (
      this.options.instances.find((i) => i.ip === ip) ??
      (ip === "127.0.0.1" ? this.options.instances[0] : undefined)
    );
  }

  private metadata(req: IncomingMessage, res: ServerResponse, url: URL): void {
    // The real server's answer to a request without the header (querying-metadata: "403 Forbidden").
    if (req.headers["metadata-flavor"] !== "Google")
      return void send(res, 403, "Missing required header: Metadata-Flavor: Google\n", "text/html");
    const vm = this.caller(req);
    if (!vm) return void send(res, 404, "no instance at this address\n", "text/html");
    const path = url.pathname.slice("/computeMetadata/v1/".length);
    const text: Record<string, string> = {
      "project/project-id": this.options.project,
      "project/numeric-project-id": this.projectNumber,
      "instance/name": vm.name,
      "instance/hostname": `${vm.name}.${vm.zone}.c.${this.options.project}.internal`,
      "instance/zone": `projects/${this.projectNumber}/zones/${vm.zone}`,
      "instance/network-interfaces/0/network": `projects/${this.projectNumber}/networks/${this.network}`,
      "instance/network-interfaces/0/ip": vm.ip,
    };
    if (path === "instance/service-accounts/default/token") {
      const token = `ya29.standin-${randomBytes(12).toString("hex")}`;
      const lifetime = this.options.tokenLifetimeSeconds ?? 3599;
      this.tokens.set(token, { instance: vm, expiresAt: Date.now() + lifetime * 1000 });
      return void send(
        res,
        200,
        JSON.stringify({ access_token: token, expires_in: lifetime, token_type: "Bearer" }),
        "application/json",
      );
    }
    const value = text[path];
    if (value === undefined) return void send(res, 404, "Not Found\n", "text/html");
    send(res, 200, value, "application/text");
  }

  /** The 401 Google returns without valid credentials. */
  private authenticate(req: IncomingMessage): { instance: StandinInstance | undefined } {
    const token = req.headers.authorization?.match(/^Bearer (.+)$/)?.[1];
    const known = token ? this.tokens.get(token) : undefined;
    if (!known || known.expiresAt <= Date.now())
      throw new HttpError(
        401,
        "required",
        "Request is missing required authentication credential. Expected OAuth 2 access token, login cookie or other valid authentication credential.",
      );
    return known;
  }

  private require(
    who: { instance: StandinInstance | undefined },
    permission: string,
    resource: string,
  ): void {
    if (who.instance?.denied?.includes(permission))
      throw new HttpError(403, "forbidden", `Required '${permission}' permission for '${resource}'`);
  }

  private async compute(req: IncomingMessage, url: URL, body: string): Promise<unknown> {
    if (this.failures.count > 0) {
      this.failures.count--;
      const { status } = this.failures;
      if (status === 429) throw new HttpError(429, "rateLimitExceeded", "Rate Limit Exceeded", "usageLimits");
      throw new HttpError(
        status,
        "backendError",
        "Internal error. Please try again or contact Google Support.",
      );
    }
    const who = this.authenticate(req);
    const parts = url.pathname.slice("/compute/v1/projects/".length).split("/").map(decodeURIComponent);
    const [project, ...rest] = parts;
    if (project !== this.options.project)
      throw new HttpError(404, "notFound", `The resource 'projects/${project}' was not found`);
    const method = req.method ?? "GET";
    const p = `projects/${project}`;
    // zones/{zone}/instances/{name}
    if (rest[0] === "zones" && rest[2] === "instances" && rest.length === 4 && method === "GET") {
      this.require(who, "compute.instances.get", `${p}/zones/${rest[1]}/instances/${rest[3]}`);
      const vm = this.options.instances.find((i) => i.zone === rest[1] && i.name === rest[3]);
      if (!vm)
        throw new HttpError(
          404,
          "notFound",
          `The resource '${p}/zones/${rest[1]}/instances/${rest[3]}' was not found`,
        );
      return {
        kind: "compute#instance",
        id: String(100 + this.options.instances.indexOf(vm)),
        name: vm.name,
        zone: `${this.computeBase}${p}/zones/${vm.zone}`,
        status: "RUNNING",
        canIpForward: vm.canIpForward ?? true,
        networkInterfaces: [{ network: this.networkUrl(), networkIP: vm.ip, name: "nic0" }],
        selfLink: this.instanceUrl(vm),
      };
    }
    if (rest[0] === "global" && rest[1] === "routes") {
      if (rest.length === 2 && method === "GET") {
        this.require(who, "compute.routes.list", `${p}`);
        return this.listRoutes(url);
      }
      if (rest.length === 2 && method === "POST") return this.insertRoute(who, body);
      const name = rest[2]!;
      const resource = `${p}/global/routes/${name}`;
      if (rest.length === 3 && method === "GET") {
        this.require(who, "compute.routes.get", resource);
        const route = this.routes.get(name);
        if (!route) throw new HttpError(404, "notFound", `The resource '${resource}' was not found`);
        return publicRoute(route);
      }
      if (rest.length === 3 && method === "DELETE") {
        this.require(who, "compute.routes.delete", resource);
        if (!this.routes.has(name))
          throw new HttpError(404, "notFound", `The resource '${resource}' was not found`);
        return this.startOperation("delete", resource, () => {
          this.routes.delete(name);
        });
      }
    }
    if (rest[0] === "global" && rest[1] === "operations" && rest[2]) {
      const op = this.operations.get(rest[2]);
      if (!op)
        throw new HttpError(
          404,
          "notFound",
          `The resource '${p}/global/operations/${rest[2]}' was not found`,
        );
      if (rest[3] === "wait" && method === "POST") {
        // globalOperations.wait: returns when DONE or after a deadline (here 2 s) with the current status.
        await Promise.race([op.done, new Promise((r) => setTimeout(r, 2000))]);
      }
      return publicOperation(op);
    }
    throw new HttpError(400, "invalid", `Invalid request: ${method} ${url.pathname}`);
  }

  private listRoutes(url: URL): unknown {
    const filter = url.searchParams.get("filter");
    const match = filter ? parseFilter(filter) : () => true;
    const max = Math.min(this.pageSize, Number(url.searchParams.get("maxResults") ?? 500) || 500);
    const now = Date.now();
    const visible = [...this.routes.values()]
      .filter((r) => r.listedFrom <= now && match(r as unknown as Record<string, unknown>))
      .sort((a, b) => a.name.localeCompare(b.name));
    const start = Number(url.searchParams.get("pageToken") ?? 0);
    const page = visible.slice(start, start + max);
    return {
      kind: "compute#routeList",
      id: `projects/${this.options.project}/global/routes`,
      items: page.map(publicRoute),
      ...(start + max < visible.length ? { nextPageToken: String(start + max) } : {}),
      selfLink: `${this.computeBase}projects/${this.options.project}/global/routes`,
    };
  }

  private insertRoute(who: { instance: StandinInstance | undefined }, body: string): unknown {
    let r: Record<string, unknown>;
    try {
      r = JSON.parse(body) as Record<string, unknown>;
    } catch {
      throw new HttpError(400, "parseError", "This API does not support parsing form-encoded input.");
    }
    const p = `projects/${this.options.project}`;
    const name = r.name;
    if (typeof name !== "string" || !NAME_RE.test(name))
      throw new HttpError(
        400,
        "invalid",
        `Invalid value for field 'resource.name': '${String(name)}'. Must be a match of regex '(?:[a-z](?:[-a-z0-9]{0,61}[a-z0-9])?)'`,
      );
    const resource = `${p}/global/routes/${name}`;
    this.require(who, "compute.routes.create", resource);
    if (typeof r.network !== "string" || !r.network.endsWith(`${p}/global/networks/${this.network}`))
      throw new HttpError(
        400,
        "invalid",
        `Invalid value for field 'resource.network': '${String(r.network)}'. The referenced network resource cannot be found.`,
      );
    if (typeof r.destRange !== "string" || !/^\d+\.\d+\.\d+\.\d+\/\d+$/.test(r.destRange))
      throw new HttpError(
        400,
        "invalid",
        `Invalid value for field 'resource.destRange': '${String(r.destRange)}'. Must be a valid IPv4 CIDR address range.`,
      );
    const hops = ["nextHopInstance", "nextHopIp", "nextHopGateway", "nextHopVpnTunnel", "nextHopIlb"].filter(
      (k) => r[k] !== undefined,
    );
    if (hops.length !== 1)
      throw new HttpError(
        400,
        "invalid",
        "Invalid value for field 'resource': exactly one of nextHopInstance, nextHopIp, nextHopGateway, nextHopVpnTunnel, nextHopIlb must be set.",
      );
    let nextHopInstance: string | undefined;
    if (r.nextHopInstance !== undefined) {
      const path = String(r.nextHopInstance).match(/projects\/([^/]+)\/zones\/([^/]+)\/instances\/([^/]+)$/);
      const vm =
        path &&
        path[1] === this.options.project &&
        this.options.instances.find((i) => i.zone === path[2] && i.name === path[3]);
      if (!vm)
        throw new HttpError(
          400,
          "invalid",
          `Invalid value for field 'resource.nextHopInstance': '${String(r.nextHopInstance)}'. The referenced instance resource cannot be found.`,
        );
      nextHopInstance = this.instanceUrl(vm);
    }
    if (this.routes.has(name))
      throw new HttpError(409, "alreadyExists", `The resource '${resource}' already exists`);
    const quota = this.options.routeQuota ?? 100;
    if (this.routes.size >= quota)
      throw new HttpError(
        403,
        "quotaExceeded",
        `Quota 'ROUTES' exceeded.  Limit: ${quota.toFixed(1)} globally.`,
        "usageLimits",
      );
    const priority = typeof r.priority === "number" ? r.priority : 1000;
    return this.startOperation("insert", resource, () => {
      this.routes.set(name, {
        kind: "compute#route",
        id: String(this.ids++),
        creationTimestamp: new Date().toISOString(),
        name,
        ...(typeof r.description === "string" ? { description: r.description } : {}),
        network: this.networkUrl(),
        destRange: r.destRange as string,
        priority,
        ...(nextHopInstance ? { nextHopInstance } : {}),
        ...(typeof r.nextHopIp === "string" ? { nextHopIp: r.nextHopIp } : {}),
        selfLink: `${this.computeBase}${resource}`,
        listedFrom: Date.now() + (this.options.listLagMs ?? 0),
      });
    });
  }

  private startOperation(type: "insert" | "delete", target: string, apply: () => void): unknown {
    const name = `operation-${Date.now()}-${randomBytes(6).toString("hex")}`;
    this.options.onMutation?.(`${type} ${target.split("/").pop()}`);
    const step = this.options.operationStepMs ?? 100;
    let finish: () => void = () => {};
    const op: Operation = {
      kind: "compute#operation",
      id: String(this.ids++),
      name,
      operationType: type,
      targetLink: `${this.computeBase}${target}`,
      status: "PENDING",
      progress: 0,
      insertTime: new Date().toISOString(),
      user: "standin@developer.gserviceaccount.com",
      selfLink: `${this.computeBase}projects/${this.options.project}/global/operations/${name}`,
      done: new Promise<void>((resolve) => {
        finish = resolve;
      }),
    };
    this.operations.set(name, op);
    setTimeout(() => {
      op.status = "RUNNING";
      op.progress = 50;
      setTimeout(() => {
        apply();
        op.status = "DONE";
        op.progress = 100;
        op.endTime = new Date().toISOString();
        this.changed();
        finish();
      }, step).unref();
    }, step).unref();
    return publicOperation(op);
  }
}

function publicRoute(r: StoredRoute): Record<string, unknown> {
  const { listedFrom: _, ...rest } = r;
  return rest;
}

function publicOperation(op: Operation): Record<string, unknown> {
  const { done: _, ...rest } = op;
  return rest;
}

/** The list filter grammar for one comparison: `field = "value"`, `field != "value"`, `field eq regex`, `field ne regex`. */
export function parseFilter(filter: string): (r: Record<string, unknown>) => boolean {
  const cmp = filter.trim().match(/^\(?\s*(\w+)\s*(=|!=)\s*"([^"]*)"\s*\)?$/);
  if (cmp) {
    const [, field, op, value] = cmp;
    return (r) => (String(r[field!] ?? "") === value) === (op === "=");
  }
  const re = filter.trim().match(/^(\w+)\s+(eq|ne)\s+(.+)$/);
  if (re) {
    const [, field, op, pattern] = re;
    const full = new RegExp(`^(?:${pattern!.replace(/^['"]|['"]$/g, "")})$`);
    return (r) => full.test(String(r[field!] ?? "")) === (op === "eq");
  }
  throw new HttpError(
    400,
    "invalid",
    `Invalid value for field 'filter': '${filter}'. Invalid list filter expression.`,
  );
}

function send(res: ServerResponse, status: number, body: string, type: string): void {
  res.writeHead(status, { "content-type": type, "metadata-flavor": "Google" });
  res.end(body);
}
