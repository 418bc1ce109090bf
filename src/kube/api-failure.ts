/**
 * What a failed Kubernetes API request means: transient (the API, its etcd or the network is having a bad
 * moment; retrying fixes it) or permanent (our credentials, RBAC or request are wrong; retrying the same
 * thing cannot help). Permanent failures become one operator-facing line naming the request and what to do.
 */
import { UserError } from "../user-error.js";
import { ExecPluginError } from "./exec-credential.js";
import { KubeApiError, KubeConnectionError } from "./kube-client.js";

export type ApiFailure =
  | { readonly transient: true; readonly retryAfterMs: number | undefined }
  | { readonly transient: false };

/**
 * 408, 409 (a write raced another), 410 (a list's continue token expired: list again), 429 (overload, with Retry-After), 500 (etcd leader lost, "etcdserver:
 * request timed out"), 502/503/504 (an API server restarting, "the server is currently unable to handle
 * the request"), and any Status that suggests a delay, as client-go's SuggestsClientDelay.
 */
const TRANSIENT_CODES = new Set([408, 409, 410, 429, 500, 502, 503, 504]);

/** Connection errors that retrying cannot fix: the server's certificate is not one we trust. */
const TLS_TRUST_CODES = /^(CERT_|ERR_TLS_CERT|UNABLE_TO_|DEPTH_ZERO_SELF_SIGNED_CERT|SELF_SIGNED_CERT)/;

export function classifyApiFailure(err: unknown): ApiFailure {
  if (err instanceof KubeApiError) {
    // 409 AlreadyExists is a fact, not a race: only a Conflict is worth trying again.
    const alreadyExists = err.code === 409 && err.reason === "AlreadyExists";
    if (
      (TRANSIENT_CODES.has(err.code) && !alreadyExists) ||
      err.retryAfterSeconds !== undefined ||
      err.reason === "BadResponse"
    )
      return {
        transient: true,
        retryAfterMs: err.retryAfterSeconds === undefined ? undefined : err.retryAfterSeconds * 1000,
      };
    return { transient: false };
  }
  if (err instanceof KubeConnectionError) {
    if (err.code === "TOKEN" || (err.code !== undefined && TLS_TRUST_CODES.test(err.code)))
      return { transient: false };
    // Refused, reset, timed out, unreachable, DNS not answering: the API may be back in a moment.
    return { transient: true, retryAfterMs: undefined };
  }
  // The credential plugin exited non-zero or hung (its identity provider may be unreachable): try again.
  if (err instanceof ExecPluginError) return { transient: true, retryAfterMs: undefined };
  return { transient: false };
}

/** The RBAC verb and resource a request needs, e.g. PATCH /api/v1/nodes/n1/status -> patch nodes/status. */
export function rbacOf(method: string, path: string): { verb: string; resource: string } {
  const [pathname = "", query = ""] = path.split("?");
  let parts = pathname.split("/").filter(Boolean);
  parts = parts[0] === "api" ? parts.slice(2) : parts[0] === "apis" ? parts.slice(3) : parts;
  if (parts[0] === "namespaces" && parts.length >= 3) parts = parts.slice(2);
  const [resource = "", name, subresource] = parts;
  const watch = /(^|&)watch=(true|1)(&|$)/.test(query);
  const verbs: Record<string, string> = { POST: "create", PUT: "update", PATCH: "patch" };
  const verb =
    method === "GET"
      ? watch
        ? "watch"
        : name
          ? "get"
          : "list"
      : method === "DELETE"
        ? name
          ? "delete"
          : "deletecollection"
        : (verbs[method] ?? method.toLowerCase());
  return { verb, resource: subresource ? `${resource}/${subresource}` : resource };
}

/**
 * One line for a permanent failure: what we were doing, what the API said, and what to do about it.
 * `notFoundHint` says what a 404 means for this request.
 */
export function permanentApiError(err: unknown, what: string, notFoundHint?: string): Error {
  if (err instanceof KubeApiError) {
    const request = `${err.method} ${err.path.split("?")[0]}`;
    if (err.code === 401)
      return new UserError(
        `cannot ${what}: the Kubernetes API refused our credentials (401 Unauthorized on ${request})`,
        "check the token or client certificate in the kubeconfig, or the pod's service account token",
      );
    if (err.code === 403) {
      const { verb, resource } = rbacOf(err.method, err.path);
      return new UserError(
        `cannot ${what}: ${err.apiMessage} (403 Forbidden on ${request})`,
        `grant verb "${verb}" on resource "${resource}" to weft's service account (the ClusterRole in deploy/kube-weft.yml: nodes get/list/watch, nodes/status patch)`,
      );
    }
    if (err.code === 404)
      return new UserError(
        `cannot ${what}: ${request}: 404 NotFound: ${err.apiMessage}`,
        notFoundHint ?? "check that --kube-api-url or the kubeconfig points at the Kubernetes API server",
      );
    if (err.code === 400 || err.code === 422)
      return new UserError(
        `cannot ${what}: the Kubernetes API rejected ${request} (${err.code} ${err.reason}: ${err.apiMessage})`,
        "an admission webhook or policy may refuse it; otherwise report this line as a weft bug",
      );
    return new UserError(`cannot ${what}: ${request}: ${err.code} ${err.reason}: ${err.apiMessage}`);
  }
  if (err instanceof KubeConnectionError) {
    if (err.code === "TOKEN")
      return new UserError(
        `cannot ${what}: ${err.message}`,
        "check the token file and the pod's volume mounts",
      );
    return new UserError(
      `cannot ${what}: ${err.message}`,
      "check the API server's CA (certificate-authority in the kubeconfig, or the service account's ca.crt)",
    );
  }
  return err instanceof Error ? err : new Error(String(err));
}
