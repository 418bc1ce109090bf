/**
 * Plain REST clients for the two Google endpoints the gce backend needs: the metadata server (identity
 * and the service account's access token) and the Compute Engine v1 routes API. Plain HTTP with the
 * metadata token: google-auth-library would add 23 packages and ~12 MB of memory for one GET (BENCHMARKS.md).
 * Shapes: https://cloud.google.com/compute/docs/metadata/querying-metadata (Metadata-Flavor: Google),
 * https://cloud.google.com/compute/docs/access/authenticate-workloads (token: access_token, expires_in,
 * token_type), https://cloud.google.com/compute/docs/reference/rest/v1/routes (list/get/insert/delete),
 * https://cloud.google.com/compute/docs/reference/rest/v1/globalOperations (get/wait), and the error
 * body of https://cloud.google.com/compute/docs/api/how-tos/api-requests-responses#handling_api_errors:
 * {"error":{"code":403,"message":"...","errors":[{"domain":"usageLimits","reason":"quotaExceeded","message":"..."}]}}.
 */

import { type HttpAnswer, type HttpCall, httpCall } from "../../http/http-call.js";
import { UserError } from "../../user-error.js";
import { networkPath } from "./gce-route.js";

export const DEFAULT_METADATA_HOST = "metadata.google.internal";
export const DEFAULT_COMPUTE_BASE = "https://compute.googleapis.com/compute/v1/";
/** A token is refreshed this long before it expires. */
const TOKEN_MARGIN_MS = 60_000;
const REQUEST_TIMEOUT_MS = 15_000;

/** Where the endpoints are: GCE_METADATA_HOST (host:port) and gcloud's CLOUDSDK_API_ENDPOINT_OVERRIDES_COMPUTE. */
export function gceEndpoints(env: NodeJS.ProcessEnv): { metadataBase: string; computeBase: string } {
  const host = env.GCE_METADATA_HOST?.trim() || DEFAULT_METADATA_HOST;
  let compute = env.CLOUDSDK_API_ENDPOINT_OVERRIDES_COMPUTE?.trim() || DEFAULT_COMPUTE_BASE;
  if (!/^https?:\/\//.test(compute))
    throw new UserError(
      `CLOUDSDK_API_ENDPOINT_OVERRIDES_COMPUTE must be a URL such as ${DEFAULT_COMPUTE_BASE}, not ${JSON.stringify(compute)}`,
    );
  if (!compute.endsWith("/")) compute += "/";
  return { metadataBase: `http://${host}/computeMetadata/v1/`, computeBase: compute };
}

/** An error answer of a Google API (or of an operation), with the first reason. */
export class GceApiError extends Error {
  constructor(
    readonly status: number,
    readonly reason: string | undefined,
    message: string,
  ) {
    super(message);
    this.name = "GceApiError";
  }
  /** Worth retrying: rate limits, server errors (connection errors are not GceApiErrors). */
  get transient(): boolean {
    return (
      this.status === 429 ||
      this.status >= 500 ||
      this.reason === "rateLimitExceeded" ||
      this.reason === "userRateLimitExceeded"
    );
  }
}

/** Parses Google's error body; falls back to the status line for a body that is not one. */
export function parseApiError(status: number, body: string): GceApiError {
  try {
    const parsed = JSON.parse(body) as {
      error?: { code?: number; message?: string; errors?: { reason?: string }[] };
    };
    const error = parsed.error;
    if (error && typeof error === "object") {
      const reason = error.errors?.[0]?.reason;
      return new GceApiError(error.code ?? status, reason, error.message ?? `HTTP ${status}`);
    }
  } catch {
    // not JSON: fall through
  }
  return new GceApiError(status, undefined, `HTTP ${status}: ${body.slice(0, 200)}`);
}

/** The error of a DONE operation ({"error":{"errors":[{"code":"QUOTA_EXCEEDED","message":...}]}}), if any. */
export function operationError(op: GceOperation): GceApiError | undefined {
  const first = op.error?.errors?.[0];
  if (!first) return undefined;
  const code = first.code ?? "UNKNOWN";
  const reason =
    code === "QUOTA_EXCEEDED" ? "quotaExceeded" : code === "RESOURCE_ALREADY_EXISTS" ? "alreadyExists" : code;
  const status = op.httpErrorStatusCode ?? (code === "RESOURCE_NOT_FOUND" ? 404 : 400);
  return new GceApiError(status, reason, first.message ?? code);
}

export interface GceOperation {
  readonly name: string;
  readonly status: "PENDING" | "RUNNING" | "DONE";
  readonly httpErrorStatusCode?: number;
  readonly error?: { errors?: { code?: string; message?: string }[] };
}

export interface GceRouteResource {
  readonly name: string;
  readonly network?: string;
  readonly destRange?: string;
  readonly nextHopInstance?: string;
  readonly creationTimestamp?: string;
  readonly priority?: number;
}

/** The metadata server: plain GETs with the Metadata-Flavor header. */
export class MetadataClient {
  constructor(
    private readonly base: string,
    private readonly http: HttpCall = httpCall,
  ) {}

  async get(path: string): Promise<string> {
    const url = this.base + path;
    let res: HttpAnswer;
    try {
      res = await this.http(url, { headers: { "Metadata-Flavor": "Google" }, timeoutMs: REQUEST_TIMEOUT_MS });
    } catch (err) {
      throw new Error(`cannot reach the GCE metadata server at ${url}: ${(err as Error).message}`);
    }
    const body = res.body;
    if (res.status !== 200)
      throw new GceApiError(
        res.status,
        undefined,
        `metadata ${path}: HTTP ${res.status} ${body.slice(0, 200)}`,
      );
    return body;
  }
}

/** The default service account's token, cached until shortly before it expires. */
export class TokenSource {
  private token: { value: string; expiresAt: number } | undefined;

  constructor(
    private readonly metadata: MetadataClient,
    private readonly now: () => number = Date.now,
  ) {}

  async get(): Promise<string> {
    if (this.token && this.now() < this.token.expiresAt - TOKEN_MARGIN_MS) return this.token.value;
    const body = JSON.parse(await this.metadata.get("instance/service-accounts/default/token")) as {
      access_token?: unknown;
      expires_in?: unknown;
    };
    if (typeof body.access_token !== "string" || typeof body.expires_in !== "number")
      throw new Error("the metadata server's token answer has no access_token/expires_in");
    this.token = { value: body.access_token, expiresAt: this.now() + body.expires_in * 1000 };
    return body.access_token;
  }

  /** After a 401: the next get() asks again. */
  invalidate(): void {
    this.token = undefined;
  }
}

/** Compute Engine v1, the calls on routes, instances and global operations. */
export class ComputeClient {
  constructor(
    private readonly base: string,
    readonly project: string,
    private readonly tokens: TokenSource,
    private readonly http: HttpCall = httpCall,
  ) {}

  /** The full URL of a resource path such as "zones/z/instances/i" (the form selfLink takes). */
  url(path: string): string {
    return `${this.base}projects/${this.project}/${path}`;
  }

  async request(method: string, path: string, body?: unknown): Promise<unknown> {
    for (let attempt = 0; ; attempt++) {
      const token = await this.tokens.get();
      const url = path.startsWith("http") ? path : this.url(path);
      let res: HttpAnswer;
      try {
        res = await this.http(url, {
          method,
          headers: {
            authorization: `Bearer ${token}`,
            ...(body === undefined ? {} : { "content-type": "application/json" }),
          },
          ...(body === undefined ? {} : { body: JSON.stringify(body) }),
          // globalOperations.wait holds the request up to 2 minutes.
          timeoutMs: path.endsWith("/wait") ? 150_000 : REQUEST_TIMEOUT_MS,
        });
      } catch (err) {
        throw new Error(`cannot reach the Compute Engine API at ${url}: ${(err as Error).message}`);
      }
      const text = res.body;
      if (res.status === 401 && attempt === 0) {
        this.tokens.invalidate(); // expired or revoked early: one more try with a fresh token
        continue;
      }
      if (res.status < 200 || res.status > 299) throw parseApiError(res.status, text);
      return text ? JSON.parse(text) : {};
    }
  }

  /**
   * routes.list of one network, every page (pageToken / nextPageToken). The filter is a regular
   * expression on the path (list filter "field eq regex", RE2, whole value) because routes name their
   * network as https://www.googleapis.com/compute/v1/... whatever endpoint served them; results are
   * checked again here.
   */
  async listRoutes(networkUrl: string): Promise<GceRouteResource[]> {
    const all: GceRouteResource[] = [];
    const wanted = networkPath(networkUrl);
    let pageToken: string | undefined;
    for (let page = 0; page < 1000; page++) {
      const query = new URLSearchParams({ filter: `network eq ".*/${wanted}"`, maxResults: "500" });
      if (pageToken) query.set("pageToken", pageToken);
      const res = (await this.request("GET", `global/routes?${query}`)) as {
        items?: GceRouteResource[];
        nextPageToken?: string;
      };
      all.push(...(res.items ?? []).filter((r) => networkPath(r.network) === wanted));
      pageToken = res.nextPageToken;
      if (!pageToken) return all;
    }
    throw new Error("routes.list returned more than 1000 pages");
  }

  getRoute(name: string): Promise<GceRouteResource> {
    return this.request("GET", `global/routes/${encodeURIComponent(name)}`) as Promise<GceRouteResource>;
  }

  insertRoute(body: Record<string, unknown>): Promise<GceOperation> {
    return this.request("POST", "global/routes", body) as Promise<GceOperation>;
  }

  deleteRoute(name: string): Promise<GceOperation> {
    return this.request("DELETE", `global/routes/${encodeURIComponent(name)}`) as Promise<GceOperation>;
  }

  getInstance(zone: string, name: string): Promise<{ selfLink?: string; canIpForward?: boolean }> {
    return this.request("GET", `zones/${zone}/instances/${name}`) as Promise<{
      selfLink?: string;
      canIpForward?: boolean;
    }>;
  }

  /** Waits for a global operation (globalOperations.wait, which may return before DONE) and throws its error. */
  async waitOperation(op: GceOperation, deadlineMs = 300_000): Promise<void> {
    const started = Date.now();
    let current = op;
    while (current.status !== "DONE") {
      if (Date.now() - started > deadlineMs)
        throw new Error(`operation ${op.name} did not finish in ${deadlineMs / 1000} s`);
      current = (await this.request(
        "POST",
        `global/operations/${encodeURIComponent(op.name)}/wait`,
      )) as GceOperation;
    }
    const error = operationError(current);
    if (error) throw error;
  }
}

/** The permission each call needs (https://cloud.google.com/compute/docs/access/iam-permissions). */
const PERMISSIONS: Record<string, string> = {
  insert:
    "compute.routes.create and compute.networks.updatePolicy (and compute.instances.use on the next hop)",
  delete: "compute.routes.delete",
  list: "compute.routes.list",
  get: "compute.routes.get",
  instance: "compute.instances.get",
};

/** One operator-facing line for an API failure of `call`, naming the fix where there is one. */
export function explainApiError(err: unknown, call: keyof typeof PERMISSIONS, project: string): Error {
  if (!(err instanceof GceApiError)) return err as Error;
  if (err.reason === "quotaExceeded" || /quota/i.test(err.message))
    return new UserError(
      `the project ${project} has no route quota left (${err.message}); GCE allows 100 routes per project by default`,
      "remove unused routes (gcloud compute routes list) or ask Google for a higher ROUTES quota",
    );
  if (err.status === 403)
    return new UserError(
      `the instance's service account may not call ${call === "instance" ? "instances.get" : `routes.${call}`} in project ${project}: ${err.message}`,
      `grant it ${PERMISSIONS[call]} (e.g. roles/compute.networkAdmin) and the compute scope`,
    );
  if (err.status === 401)
    return new UserError(
      `the Compute Engine API refused the metadata server's token: ${err.message}`,
      "give the instance a service account with the https://www.googleapis.com/auth/compute scope",
    );
  return err;
}
