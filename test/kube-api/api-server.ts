/**
 * A Kubernetes API test server: core/v1 Nodes, Pods, Namespaces, ServiceAccounts, ConfigMaps, apps/v1
 * DaemonSets and RBAC ClusterRoles/Bindings over HTTPS, with bearer-token and client-certificate
 * authentication, RBAC-like refusals, get/list/watch/create/update/patch/delete, server-side dry-run and
 * discovery. It follows the real API's wire behaviour (status codes, Status bodies, resourceVersion and
 * watch semantics, subresource rules) so that kubectl works against it unchanged; it is never shaped to
 * whatever a client under test happens to send.
 *
 * Test-only endpoints live under /weft-test/ (admin only): compact the event history, drop open watches,
 * read the request log, set the fault plan and read which faults were injected.
 */
import { randomBytes } from "node:crypto";
import { createServer as createHttpServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { createServer as createTlsServer, type TLSSocket, type Server as TlsServer } from "node:tls";
import { type Attributes, allowed, forbiddenMessage, type User } from "./access-control.js";
import { FaultPlan, type FaultRule, parseFaultRules } from "./faults.js";
import { applyJsonPatch } from "./json-patch.js";
import { clone, isObject, type Json, type JsonObject, PatchError } from "./json-value.js";
import { applyMergePatch } from "./merge-patch.js";
import { type EventType, ObjectStore } from "./object-store.js";
import { findType, groupList, RESOURCE_TYPES, type ResourceType, resourceList } from "./resources.js";
import { ApiError, notFound } from "./status.js";
import { applyStrategicMergePatch } from "./strategic-merge-patch.js";
import type { TlsMaterial } from "./tls-material.js";

export interface ApiServerOptions {
  readonly host: string;
  readonly port: number;
  readonly tls: TlsMaterial;
  /** bearer token -> user */
  readonly tokens: ReadonlyMap<string, User>;
  /** client certificate CN -> role (certificates must be signed by the server's CA) */
  readonly certificateRoles: ReadonlyMap<string, string>;
  /** Bounded event history (a watch from before it gets 410 Gone). */
  readonly historyLimit?: number;
  /** How often a watch with allowWatchBookmarks gets a BOOKMARK (the real API: about a minute). */
  readonly bookmarkIntervalMs?: number;
  /** Upper bound on a watch without timeoutSeconds. */
  readonly maxWatchSeconds?: number;
  /** Requests that fail first (see faults.ts); replaced at run time by POST /weft-test/faults. */
  readonly faults?: readonly FaultRule[];
  /** Called for every request (the server also keeps the last ones for GET /weft-test/requests). */
  readonly onRequest?: (entry: RequestLogEntry) => void;
}

export interface RequestLogEntry {
  readonly method: string;
  readonly url: string;
  readonly contentType: string;
  readonly body: string;
  readonly user: string;
}

interface Target {
  readonly resource: ResourceType;
  readonly namespace: string | undefined;
  readonly name: string | undefined;
  readonly subresource: string;
}

const MAX_BODY = 3 * 1024 * 1024;
const REQUEST_LOG_LIMIT = 20_000;
const NAME = /^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/;
const SERVER_VERSION = {
  major: "1",
  minor: "32",
  gitVersion: "v1.32.0-weft-test",
  gitCommit: "0000000000000000000000000000000000000000",
  gitTreeState: "clean",
  buildDate: "2025-01-01T00:00:00Z",
  goVersion: "go1.23.0",
  compiler: "gc",
  platform: "linux/amd64",
};

export class KubeApiServer {
  readonly store: ObjectStore;
  readonly requests: RequestLogEntry[] = [];
  readonly faults = new FaultPlan();
  private readonly server: TlsServer;
  private readonly connections = new Set<TLSSocket>();
  private readonly openWatches = new Set<() => void>();

  constructor(private readonly options: ApiServerOptions) {
    this.store = new ObjectStore(options.historyLimit ?? 1000);
    this.faults.set(options.faults ?? []);
    for (const name of ["default", "kube-system", "kube-public", "kube-node-lease"]) {
      const type = findType("", "v1", "namespaces")!;
      this.store.create(
        type,
        this.store.prepareCreate(type, {
          metadata: { name },
          spec: { finalizers: ["kubernetes"] },
          status: { phase: "Active" },
        }),
      );
    }
    // TLS is ended here and each connection handed to an HTTP server (what node:https does inside), so a
    // request's socket is the TLSSocket with the client certificate: Bun's node:https gives a request a
    // socket without getPeerCertificate.
    const http = createHttpServer((req, res) => void this.handle(req, res));
    this.server = createTlsServer(
      {
        key: options.tls.serverKey,
        cert: options.tls.serverCert,
        ca: options.tls.caCert,
        requestCert: true,
        rejectUnauthorized: false,
        ALPNProtocols: ["http/1.1"],
        noDelay: true, // as node:https sets it: a watch event is not held back by Nagle
      },
      (socket) => {
        this.connections.add(socket);
        socket.once("close", () => this.connections.delete(socket));
        http.emit("connection", socket);
      },
    );
  }

  async listen(): Promise<string> {
    await new Promise<void>((resolve, reject) => {
      this.server.once("error", reject);
      this.server.listen(this.options.port, this.options.host, () => resolve());
    });
    const address = this.server.address() as AddressInfo;
    const host = address.family === "IPv6" ? `[${address.address}]` : address.address;
    return `https://${host}:${address.port}`;
  }

  /** Ends every open watch stream (as an API server restart would). */
  closeWatches(): void {
    for (const close of [...this.openWatches]) close();
  }

  async close(): Promise<void> {
    this.closeWatches();
    this.faults.releaseStalled();
    for (const socket of this.connections) socket.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private authenticate(req: IncomingMessage): User | undefined {
    const header = req.headers.authorization;
    if (header?.startsWith("Bearer ")) return this.options.tokens.get(header.slice(7).trim());
    const socket = req.socket as TLSSocket;
    if (socket.authorized) {
      const cn = socket.getPeerCertificate()?.subject?.CN;
      const role = typeof cn === "string" ? this.options.certificateRoles.get(cn) : undefined;
      if (cn && role) return { name: String(cn), role };
    }
    return undefined;
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    let body = "";
    let user: User | undefined;
    try {
      body = await readBody(req);
      user = this.authenticate(req);
      this.log({
        method: req.method ?? "",
        url: req.url ?? "",
        contentType: req.headers["content-type"] ?? "",
        body,
        user: user?.name ?? "",
      });
      if (!user) throw new ApiError(401, "Unauthorized", "Unauthorized");
      await this.route(req, res, body, user);
    } catch (err) {
      const error =
        err instanceof ApiError
          ? err
          : err instanceof PatchError
            ? new ApiError(err.code, err.code === 400 ? "BadRequest" : "Invalid", err.message)
            : new ApiError(500, "InternalError", `Internal error occurred: ${(err as Error).message}`);
      if (!res.headersSent) sendJson(res, error.code, error.toStatus());
      else res.end();
    }
  }

  private log(entry: RequestLogEntry): void {
    this.requests.push(entry);
    if (this.requests.length > REQUEST_LOG_LIMIT)
      this.requests.splice(0, this.requests.length - REQUEST_LOG_LIMIT);
    this.options.onRequest?.(entry);
  }

  private async route(req: IncomingMessage, res: ServerResponse, body: string, user: User): Promise<void> {
    const url = new URL(req.url ?? "/", "https://server");
    const path = url.pathname.replace(/\/+$/, "") || "/";
    const method = req.method ?? "GET";
    if (path.startsWith("/weft-test/")) return this.testControl(method, path, body, res, user);
    if (method === "GET") {
      const discovery = this.discovery(path);
      if (discovery !== undefined) {
        sendJson(res, 200, discovery);
        return;
      }
      if (["/healthz", "/livez", "/readyz"].includes(path)) {
        res.writeHead(200, { "content-type": "text/plain; charset=utf-8" });
        res.end("ok");
        return;
      }
    }
    const target = parseTarget(path);
    if (!target) throw new ApiError(404, "NotFound", "the server could not find the requested resource");
    const query = url.searchParams;
    const verb = verbOf(method, target, query);
    const resourceName = target.subresource
      ? `${target.resource.plural}/${target.subresource}`
      : target.resource.plural;
    const fault = this.faults.take(verb, resourceName, user.name);
    if (fault) {
      this.faults.apply(fault, verb, req, res);
      return;
    }
    const attrs: Attributes = {
      verb,
      group: target.resource.group,
      resource: target.resource.plural,
      subresource: target.subresource,
      namespace: target.namespace,
      name: target.name,
    };
    if (!allowed(user, attrs)) {
      throw new ApiError(403, "Forbidden", forbiddenMessage(user, attrs), {
        ...(target.name ? { name: target.name } : {}),
        ...(target.resource.group ? { group: target.resource.group } : {}),
        kind: target.resource.plural,
      });
    }
    const dryRun = parseDryRun(query);
    switch (verb) {
      case "get": {
        sendJson(res, 200, this.getObject(target));
        return;
      }
      case "list": {
        sendJson(res, 200, this.listObjects(target, query));
        return;
      }
      case "watch":
        return this.watch(req, res, target, query);
      case "create":
        checkJsonBody(req);
        return this.createObject(res, target, parseJson(body), dryRun);
      case "update":
        checkJsonBody(req);
        return this.updateObject(res, target, parseJson(body), dryRun);
      case "patch":
        return this.patchObject(res, target, body, req.headers["content-type"] ?? "", dryRun);
      case "delete":
        return this.deleteObject(res, target, dryRun);
      default:
        throw new ApiError(
          405,
          "MethodNotAllowed",
          `the server does not allow this method on the requested resource`,
        );
    }
  }

  private discovery(path: string): object | undefined {
    if (path === "/version") return SERVER_VERSION;
    if (path === "/api") {
      return {
        kind: "APIVersions",
        versions: ["v1"],
        serverAddressByClientCIDRs: [
          { clientCIDR: "0.0.0.0/0", serverAddress: `${this.options.host}:${this.options.port}` },
        ],
      };
    }
    if (path === "/api/v1") return resourceList("", "v1");
    if (path === "/apis") return groupList();
    const group = /^\/apis\/([^/]+)\/([^/]+)$/.exec(path);
    if (group) return resourceList(group[1]!, group[2]!);
    return undefined;
  }

  private testControl(method: string, path: string, body: string, res: ServerResponse, user: User): void {
    if (user.role !== "admin") throw new ApiError(403, "Forbidden", `User "${user.name}" cannot use ${path}`);
    if (method === "POST" && path === "/weft-test/compact") {
      this.store.compact();
      sendJson(res, 200, { compactedThrough: this.store.resourceVersion });
      return;
    }
    if (method === "POST" && path === "/weft-test/close-watches") {
      const count = this.openWatches.size;
      this.closeWatches();
      sendJson(res, 200, { closed: count });
      return;
    }
    if (method === "POST" && path === "/weft-test/faults") {
      try {
        this.faults.set(parseFaultRules(JSON.parse(body)));
      } catch (err) {
        throw new ApiError(400, "BadRequest", (err as Error).message);
      }
      sendJson(res, 200, {});
      return;
    }
    if (method === "GET" && path === "/weft-test/faults") {
      sendJson(res, 200, this.faults.injected);
      return;
    }
    if (method === "GET" && path === "/weft-test/requests") {
      sendJson(res, 200, this.requests);
      return;
    }
    if (method === "DELETE" && path === "/weft-test/requests") {
      this.requests.length = 0;
      sendJson(res, 200, {});
      return;
    }
    throw new ApiError(404, "NotFound", "the server could not find the requested resource");
  }

  private getObject(target: Target): JsonObject {
    const object = this.store.get(target.resource, target.namespace, target.name!);
    if (!object) throw notFound(target.resource.plural, target.resource.group, target.name!);
    return object;
  }

  private listObjects(target: Target, query: URLSearchParams): JsonObject {
    const { resource } = target;
    const filter = selectorFilter(query);
    let items = this.store.list(resource, target.namespace).filter(filter);
    let rv = String(this.store.resourceVersion);
    const metadata: JsonObject = {};
    const limit = Number(query.get("limit") ?? "0");
    const token = query.get("continue");
    // A list at resourceVersion=0 is served from the watch cache, which ignores limit (as the real API does).
    if (token || (limit > 0 && query.get("resourceVersion") !== "0")) {
      let after = "";
      if (token) {
        try {
          const decoded = JSON.parse(Buffer.from(token, "base64url").toString("utf8")) as {
            rv: string;
            after: string;
          };
          rv = decoded.rv;
          after = decoded.after;
        } catch {
          throw new ApiError(400, "BadRequest", "continue key is not valid: illegal base64 data");
        }
        if (Number(rv) < this.store.oldestResourceVersion)
          throw new ApiError(
            410,
            "Expired",
            "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter.",
          );
      }
      items = items.filter((item) => keyOfObject(item) > after);
      if (limit > 0 && items.length > limit) {
        const remaining = items.length - limit;
        items = items.slice(0, limit);
        metadata.continue = Buffer.from(
          JSON.stringify({ rv, after: keyOfObject(items[items.length - 1]!) }),
        ).toString("base64url");
        metadata.remainingItemCount = remaining;
      }
    }
    metadata.resourceVersion = rv;
    return {
      kind: `${resource.kind}List`,
      apiVersion: resource.group ? `${resource.group}/${resource.version}` : resource.version,
      metadata: { resourceVersion: rv, ...metadata },
      items: items.map(({ kind: _k, apiVersion: _a, ...rest }) => rest),
    };
  }

  private watch(req: IncomingMessage, res: ServerResponse, target: Target, query: URLSearchParams): void {
    const { resource } = target;
    const filter = selectorFilter(query);
    const matches = (object: JsonObject) =>
      (!target.namespace || (object.metadata as JsonObject).namespace === target.namespace) &&
      (!target.name || (object.metadata as JsonObject).name === target.name) &&
      filter(object);
    const rvParam = query.get("resourceVersion") ?? "";
    if (rvParam !== "" && !/^\d+$/.test(rvParam))
      throw new ApiError(400, "BadRequest", `resourceVersion: Invalid value: "${rvParam}": must be a number`);
    res.writeHead(200, {
      "content-type": "application/json",
      "cache-control": "no-cache, private",
      "transfer-encoding": "chunked",
    });
    const write = (type: string, object: JsonObject) => {
      if (!res.writableEnded) res.write(`${JSON.stringify({ type, object })}\n`);
    };
    const send = (type: EventType, object: JsonObject) => write(type, object);
    const fromRv = Number(rvParam || "0");
    let unsubscribe: (() => void) | undefined;
    if (rvParam === "" || rvParam === "0") {
      // "Any" resourceVersion: the current state as synthetic ADDED events, then changes.
      for (const object of this.store.list(resource, target.namespace))
        if (matches(object)) send("ADDED", object);
      unsubscribe = this.store.follow({ resource, matches, send });
    } else {
      unsubscribe = this.store.watchFrom(fromRv, { resource, matches, send });
      if (!unsubscribe) {
        const status = new ApiError(
          410,
          "Expired",
          `too old resource version: ${fromRv} (${this.store.oldestResourceVersion + 1})`,
        ).toStatus();
        write("ERROR", status as unknown as JsonObject);
        res.end();
        return;
      }
    }
    const timers: NodeJS.Timeout[] = [];
    if (query.get("allowWatchBookmarks") === "true") {
      const interval = setInterval(() => {
        write("BOOKMARK", {
          kind: resource.kind,
          apiVersion: resource.group ? `${resource.group}/${resource.version}` : resource.version,
          metadata: { resourceVersion: String(this.store.resourceVersion), creationTimestamp: null },
        });
      }, this.options.bookmarkIntervalMs ?? 60_000);
      timers.push(interval);
    }
    const timeoutSeconds =
      Number(query.get("timeoutSeconds") ?? "0") || (this.options.maxWatchSeconds ?? 1800);
    const close = () => {
      for (const timer of timers) clearInterval(timer);
      unsubscribe?.();
      this.openWatches.delete(close);
      if (!res.writableEnded) res.end();
    };
    timers.push(setTimeout(close, timeoutSeconds * 1000));
    this.openWatches.add(close);
    req.on("close", close);
    res.on("close", close);
  }

  private createObject(res: ServerResponse, target: Target, body: Json, dryRun: boolean): void {
    const { resource } = target;
    if (target.name || target.subresource)
      throw new ApiError(
        405,
        "MethodNotAllowed",
        "the server does not allow this method on the requested resource",
      );
    if (!isObject(body))
      throw new ApiError(400, "BadRequest", "the body of the request was in an unknown format");
    checkKind(resource, body);
    const metadata = isObject(body.metadata) ? clone(body.metadata) : {};
    if (!metadata.name && typeof metadata.generateName === "string")
      metadata.name = metadata.generateName + randomBytes(3).toString("hex").slice(0, 5);
    const name = metadata.name;
    if (typeof name !== "string" || name === "")
      throw invalid(resource, "", [
        { field: "metadata.name", message: "Required value: name or generateName is required" },
      ]);
    if (resource.namespaced) {
      if (metadata.namespace !== undefined && metadata.namespace !== target.namespace)
        throw new ApiError(
          400,
          "BadRequest",
          "the namespace of the provided object does not match the namespace sent on the request",
        );
      metadata.namespace = target.namespace ?? "default";
      const namespaces = findType("", "v1", "namespaces")!;
      if (!this.store.get(namespaces, undefined, metadata.namespace as string))
        throw notFound("namespaces", "", metadata.namespace as string);
    } else delete metadata.namespace;
    let object = this.store.prepareCreate(resource, { ...body, metadata });
    object = normalize(resource, undefined, object, "");
    if (this.store.get(resource, target.namespace, name))
      throw new ApiError(409, "AlreadyExists", `${qualified(resource)} "${name}" already exists`, {
        name,
        ...(resource.group ? { group: resource.group } : {}),
        kind: resource.plural,
      });
    sendJson(res, 201, dryRun ? object : this.store.create(resource, object));
  }

  private updateObject(res: ServerResponse, target: Target, body: Json, dryRun: boolean): void {
    if (!target.name)
      throw new ApiError(
        405,
        "MethodNotAllowed",
        "the server does not allow this method on the requested resource",
      );
    const old = this.getObject(target);
    if (!isObject(body))
      throw new ApiError(400, "BadRequest", "the body of the request was in an unknown format");
    checkKind(target.resource, body);
    this.commit(res, target, old, body, dryRun);
  }

  private patchObject(
    res: ServerResponse,
    target: Target,
    body: string,
    contentType: string,
    dryRun: boolean,
  ): void {
    if (!target.name)
      throw new ApiError(
        405,
        "MethodNotAllowed",
        "the server does not allow this method on the requested resource",
      );
    const old = this.getObject(target);
    const patch = parseJson(body);
    const type = contentType.split(";")[0]!.trim();
    let next: Json;
    switch (type) {
      case "application/merge-patch+json":
        next = applyMergePatch(old, patch);
        break;
      case "application/strategic-merge-patch+json":
        next = applyStrategicMergePatch(old, patch, target.resource.mergeSchema);
        break;
      case "application/json-patch+json":
        next = applyJsonPatch(old, patch);
        break;
      default:
        throw new ApiError(
          415,
          "UnsupportedMediaType",
          `the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml, application/strategic-merge-patch+json`,
        );
    }
    if (!isObject(next)) throw new ApiError(422, "Invalid", "the patched object is not a JSON object");
    this.commit(res, target, old, next, dryRun);
  }

  /** Checks and stores an update (from PUT or PATCH) against the object it replaces. */
  private commit(
    res: ServerResponse,
    target: Target,
    old: JsonObject,
    next: JsonObject,
    dryRun: boolean,
  ): void {
    const { resource } = target;
    const oldMeta = old.metadata as JsonObject;
    const meta = isObject(next.metadata) ? next.metadata : {};
    if (meta.name !== oldMeta.name)
      throw new ApiError(
        400,
        "BadRequest",
        `the name of the object (${String(meta.name)}) does not match the name on the URL (${String(oldMeta.name)})`,
      );
    if (meta.resourceVersion !== undefined && meta.resourceVersion !== oldMeta.resourceVersion) {
      throw new ApiError(
        409,
        "Conflict",
        `Operation cannot be fulfilled on ${qualified(resource)} "${oldMeta.name}": the object has been modified; please apply your changes to the latest version and try again`,
        {
          name: oldMeta.name as string,
          ...(resource.group ? { group: resource.group } : {}),
          kind: resource.plural,
        },
      );
    }
    const updated: JsonObject = {
      ...next,
      metadata: {
        ...meta,
        uid: oldMeta.uid!,
        creationTimestamp: oldMeta.creationTimestamp!,
        resourceVersion: oldMeta.resourceVersion!,
      },
    };
    if (resource.namespaced) (updated.metadata as JsonObject).namespace = oldMeta.namespace!;
    const normalized = normalize(resource, old, updated, target.subresource);
    if (dryRun) {
      sendJson(res, 200, normalized);
      return;
    }
    // A no-op write does not bump the resourceVersion or make an event, as in the real API.
    if (JSON.stringify(normalized) === JSON.stringify(old)) {
      sendJson(res, 200, old);
      return;
    }
    sendJson(res, 200, this.store.update(resource, normalized));
  }

  private deleteObject(res: ServerResponse, target: Target, dryRun: boolean): void {
    if (!target.name || target.subresource)
      throw new ApiError(
        405,
        "MethodNotAllowed",
        "the server does not allow this method on the requested resource",
      );
    const old = this.getObject(target);
    const deleted = dryRun ? old : this.store.delete(target.resource, target.namespace, target.name)!;
    if (target.resource.plural === "pods") {
      sendJson(res, 200, deleted);
      return;
    }
    sendJson(res, 200, {
      kind: "Status",
      apiVersion: "v1",
      metadata: {},
      status: "Success",
      details: {
        name: target.name,
        ...(target.resource.group ? { group: target.resource.group } : {}),
        kind: target.resource.plural,
        uid: (old.metadata as JsonObject).uid,
      },
    });
  }
}

function qualified(resource: ResourceType): string {
  return resource.group ? `${resource.plural}.${resource.group}` : resource.plural;
}

function invalid(
  resource: ResourceType,
  name: string,
  causes: { field: string; message: string }[],
): ApiError {
  const text = causes.map((c) => `${c.field}: ${c.message}`).join(", ");
  return new ApiError(422, "Invalid", `${resource.kind} "${name}" is invalid: ${text}`, {
    name,
    ...(resource.group ? { group: resource.group } : {}),
    kind: resource.kind,
    causes: causes.map((c) => ({ reason: causeReason(c.message), message: c.message, field: c.field })),
  });
}

function causeReason(message: string): string {
  if (message.startsWith("Forbidden")) return "FieldValueForbidden";
  if (message.startsWith("Required")) return "FieldValueRequired";
  return "FieldValueInvalid";
}

function checkKind(resource: ResourceType, body: JsonObject): void {
  const apiVersion = resource.group ? `${resource.group}/${resource.version}` : resource.version;
  if (body.apiVersion !== undefined && body.apiVersion !== apiVersion)
    throw new ApiError(
      400,
      "BadRequest",
      `the API version in the data (${String(body.apiVersion)}) does not match the expected API version (${apiVersion})`,
    );
  if (body.kind !== undefined && body.kind !== resource.kind)
    throw new ApiError(
      400,
      "BadRequest",
      `the kind in the data (${String(body.kind)}) does not match the expected kind (${resource.kind})`,
    );
}

/** The strategy and validation the real registry applies on create and update. */
function normalize(
  resource: ResourceType,
  old: JsonObject | undefined,
  next: JsonObject,
  subresource: string,
): JsonObject {
  const object = clone(next);
  object.apiVersion = resource.group ? `${resource.group}/${resource.version}` : resource.version;
  object.kind = resource.kind;
  const meta = object.metadata as JsonObject;
  const name = String(meta.name);
  const causes: { field: string; message: string }[] = [];
  if (!NAME.test(name) || name.length > 253)
    causes.push({
      field: "metadata.name",
      message: `Invalid value: "${name}": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character`,
    });
  for (const field of ["annotations", "labels"]) {
    const map = meta[field];
    if (map === undefined || map === null || (isObject(map) && Object.keys(map).length === 0)) {
      // Go's omitempty: an empty map is not written.
      delete meta[field];
      continue;
    }
    if (!isObject(map) || Object.values(map).some((v) => typeof v !== "string"))
      throw new ApiError(
        400,
        "BadRequest",
        `json: cannot unmarshal into Go struct field ObjectMeta.metadata.${field} of type string`,
      );
  }
  if (old && resource.hasStatus) {
    // Status writes go through /status; there, the spec stays as it was (and the reverse on the main resource).
    if (subresource === "status") {
      if (old.spec !== undefined) object.spec = clone(old.spec);
      else delete object.spec;
    } else if (old.status !== undefined) object.status = clone(old.status);
    else delete object.status;
  }
  if (resource.kind === "Node") causes.push(...normalizeNodeSpec(old, object));
  if (causes.length > 0) throw invalid(resource, name, causes);
  return object;
}

/** spec.podCIDR and spec.podCIDRs mirror each other and may only go from unset to set. */
function normalizeNodeSpec(
  old: JsonObject | undefined,
  node: JsonObject,
): { field: string; message: string }[] {
  const spec = isObject(node.spec) ? node.spec : {};
  node.spec = spec;
  const causes: { field: string; message: string }[] = [];
  if (spec.podCIDR && !spec.podCIDRs) spec.podCIDRs = [spec.podCIDR];
  if (Array.isArray(spec.podCIDRs) && spec.podCIDRs.length > 0 && !spec.podCIDR)
    spec.podCIDR = spec.podCIDRs[0]!;
  if (Array.isArray(spec.podCIDRs)) {
    if (spec.podCIDRs[0] !== spec.podCIDR)
      causes.push({
        field: "spec.podCIDRs[0]",
        message: `Invalid value: "${String(spec.podCIDRs[0])}": must match spec.podCIDR`,
      });
    if (spec.podCIDRs.length > 2)
      causes.push({
        field: "spec.podCIDRs",
        message: "Invalid value: may specify no more than one CIDR for each IP family",
      });
    spec.podCIDRs.forEach((cidr, i) => {
      if (typeof cidr !== "string" || !/^[0-9a-fA-F:.]+\/\d{1,3}$/.test(cidr))
        causes.push({
          field: `spec.podCIDRs[${i}]`,
          message: `Invalid value: "${String(cidr)}": must be a valid CIDR`,
        });
    });
  }
  const oldSpec = old && isObject(old.spec) ? old.spec : {};
  if (oldSpec.podCIDRs && JSON.stringify(oldSpec.podCIDRs) !== JSON.stringify(spec.podCIDRs))
    causes.push({
      field: "spec.podCIDRs",
      message: `Forbidden: node updates may not change podCIDR except from "" to valid`,
    });
  return causes;
}

function keyOfObject(object: JsonObject): string {
  const meta = object.metadata as JsonObject;
  return meta.namespace ? `${String(meta.namespace)}/${String(meta.name)}` : String(meta.name);
}

function fieldValue(object: JsonObject, path: string): string {
  let node: Json | undefined = object;
  for (const part of path.split(".")) node = isObject(node) ? node[part] : undefined;
  return node === undefined || node === null ? "" : String(node);
}

/** fieldSelector (field=value, field!=value) and labelSelector (key=value, key!=value, key, !key). */
function selectorFilter(query: URLSearchParams): (object: JsonObject) => boolean {
  const checks: ((object: JsonObject) => boolean)[] = [];
  for (const term of (query.get("fieldSelector") ?? "").split(",").filter(Boolean)) {
    const m = /^([^!=]+)(==|!=|=)(.*)$/.exec(term);
    if (!m) throw new ApiError(400, "BadRequest", `invalid field selector: ${term}`);
    const [, field, op, value] = m;
    checks.push((o) => (fieldValue(o, field!) === value) === (op !== "!="));
  }
  for (const term of (query.get("labelSelector") ?? "").split(",").filter(Boolean)) {
    const labels = (o: JsonObject) =>
      isObject((o.metadata as JsonObject).labels) ? ((o.metadata as JsonObject).labels as JsonObject) : {};
    const m = /^([^!=]+)(==|!=|=)(.*)$/.exec(term);
    if (m) checks.push((o) => (labels(o)[m[1]!] === m[3]) === (m[2] !== "!="));
    else if (term.startsWith("!")) checks.push((o) => !(term.slice(1) in labels(o)));
    else checks.push((o) => term in labels(o));
  }
  return (object) => checks.every((check) => check(object));
}

function parseTarget(path: string): Target | undefined {
  const parts = path.split("/").filter(Boolean);
  let rest: string[];
  let group = "";
  let version: string;
  if (parts[0] === "api" && parts.length >= 3) {
    version = parts[1]!;
    rest = parts.slice(2);
  } else if (parts[0] === "apis" && parts.length >= 4) {
    group = parts[1]!;
    version = parts[2]!;
    rest = parts.slice(3);
  } else return undefined;
  let namespace: string | undefined;
  if (rest[0] === "namespaces" && rest.length >= 3) {
    const inner = findType(group, version, rest[2]!);
    if (inner?.namespaced) {
      namespace = rest[1];
      rest = rest.slice(2);
    }
  }
  const resource = findType(group, version, rest[0]!);
  if (!resource || rest.length > 3) return undefined;
  if (resource.namespaced && !namespace && rest.length > 1) return undefined;
  const subresource = rest[2] ?? "";
  if (subresource && !(subresource === "status" && resource.hasStatus)) return undefined;
  return { resource, namespace, name: rest[1], subresource };
}

function verbOf(method: string, target: Target, query: URLSearchParams): string {
  const watch = query.get("watch") === "true" || query.get("watch") === "1";
  switch (method) {
    case "GET":
      return target.name ? (watch ? "watch" : "get") : watch ? "watch" : "list";
    case "POST":
      return "create";
    case "PUT":
      return "update";
    case "PATCH":
      return "patch";
    case "DELETE":
      return target.name ? "delete" : "deletecollection";
    default:
      return method.toLowerCase();
  }
}

/** This server speaks JSON only (as for custom resources): protobuf and YAML bodies get 415. */
function checkJsonBody(req: IncomingMessage): void {
  const type = (req.headers["content-type"] ?? "application/json").split(";")[0]!.trim();
  if (type !== "application/json")
    throw new ApiError(
      415,
      "UnsupportedMediaType",
      `the body of the request was in an unknown format - accepted media types include: application/json`,
    );
}

function parseDryRun(query: URLSearchParams): boolean {
  const values = query.getAll("dryRun");
  for (const value of values)
    if (value !== "All")
      throw new ApiError(400, "BadRequest", `dryRun: Unsupported value: "${value}": supported values: "All"`);
  return values.length > 0;
}

function parseJson(body: string): Json {
  try {
    return JSON.parse(body) as Json;
  } catch (err) {
    throw new ApiError(400, "BadRequest", `error decoding patch: ${(err as Error).message}`);
  }
}

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on("data", (chunk: Buffer) => {
      size += chunk.length;
      if (size > MAX_BODY) {
        reject(new ApiError(413, "RequestEntityTooLarge", "Request entity too large"));
        req.destroy();
        return;
      }
      chunks.push(chunk);
    });
    req.on("end", () => resolve(Buffer.concat(chunks).toString("utf8")));
    req.on("error", reject);
  });
}

function sendJson(res: ServerResponse, code: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(code, {
    "content-type": "application/json",
    "content-length": Buffer.byteLength(text),
    "cache-control": "no-cache, private",
  });
  res.end(text);
}

export { RESOURCE_TYPES };
