/**
 * Where the Kubernetes API is and how to authenticate, resolved as flanneld's
 * clientcmd.BuildConfigFromFlags(--kube-api-url, --kubeconfig-file) does: a kubeconfig (its current
 * context), with --kube-api-url overriding its server; with neither, the in-cluster service account.
 */
import { readFile } from "node:fs/promises";
import { dirname, isAbsolute, join } from "node:path";
import { UserError } from "../user-error.js";
import { parseYamlSubset, YamlError } from "./yaml-subset.js";

export interface KubeConnection {
  readonly server: string;
  readonly ca: Buffer | undefined;
  readonly insecureSkipTlsVerify: boolean;
  readonly token: string | undefined;
  /** Re-read on each request, as a projected service-account token rotates. */
  readonly tokenFile: string | undefined;
  readonly cert: Buffer | undefined;
  readonly key: Buffer | undefined;
  /** Where this came from, for messages. */
  readonly source: string;
}

export const SERVICE_ACCOUNT_DIR = "/var/run/secrets/kubernetes.io/serviceaccount";

export interface ConnectionInputs {
  readonly apiUrl: string;
  readonly kubeconfigFile: string;
  readonly env: NodeJS.ProcessEnv;
  readonly serviceAccountDir?: string;
}

export async function resolveConnection(inputs: ConnectionInputs): Promise<KubeConnection> {
  if (inputs.kubeconfigFile) {
    const fromFile = await loadKubeconfig(inputs.kubeconfigFile);
    return inputs.apiUrl ? { ...fromFile, server: checkUrl(inputs.apiUrl, "--kube-api-url") } : fromFile;
  }
  if (inputs.apiUrl) {
    return {
      server: checkUrl(inputs.apiUrl, "--kube-api-url"),
      ca: undefined,
      insecureSkipTlsVerify: false,
      token: undefined,
      tokenFile: undefined,
      cert: undefined,
      key: undefined,
      source: "--kube-api-url",
    };
  }
  return inClusterConnection(inputs.env, inputs.serviceAccountDir ?? SERVICE_ACCOUNT_DIR);
}

async function inClusterConnection(env: NodeJS.ProcessEnv, dir: string): Promise<KubeConnection> {
  const host = env.KUBERNETES_SERVICE_HOST;
  const port = env.KUBERNETES_SERVICE_PORT;
  if (!host || !port) {
    throw new UserError(
      "no Kubernetes API to talk to: KUBERNETES_SERVICE_HOST/PORT are not set (not running in a pod)",
      "pass --kubeconfig-file, or --kube-api-url",
    );
  }
  const tokenFile = join(dir, "token");
  const ca = await readOrFail(join(dir, "ca.crt"), "the service account CA");
  await readOrFail(tokenFile, "the service account token");
  const hostPart = host.includes(":") ? `[${host}]` : host;
  return {
    server: `https://${hostPart}:${port}`,
    ca,
    insecureSkipTlsVerify: false,
    token: undefined,
    tokenFile,
    cert: undefined,
    key: undefined,
    source: "in-cluster service account",
  };
}

function checkUrl(url: string, what: string): string {
  if (!/^https?:\/\/[^/]+/.test(url))
    throw new UserError(`${what} ${JSON.stringify(url)} is not a URL`, "write it like https://10.0.0.1:6443");
  return url.replace(/\/+$/, "");
}

async function readOrFail(path: string, what: string): Promise<Buffer> {
  try {
    return await readFile(path);
  } catch (err) {
    throw new UserError(
      `cannot read ${what} ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`,
      "check the path and the pod's volume mounts",
    );
  }
}

type Named<T> = { name?: unknown } & { [key: string]: unknown } & T;

function asRecord(value: unknown): Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value)
    ? (value as Record<string, unknown>)
    : {};
}

function findNamed(list: unknown, name: string, what: string, file: string): Record<string, unknown> {
  const entry = (Array.isArray(list) ? list : []).find((e) => asRecord(e).name === name) as
    | Named<object>
    | undefined;
  if (!entry)
    throw new UserError(
      `kubeconfig ${file} has no ${what} named ${JSON.stringify(name)}`,
      "fix the file (kubectl config view)",
    );
  return asRecord(entry[what]);
}

/** Reads a kubeconfig's current context into a connection; paths in it are relative to the file. */
export async function loadKubeconfig(file: string): Promise<KubeConnection> {
  const text = (await readOrFail(file, "the kubeconfig")).toString("utf8");
  let doc: Record<string, unknown>;
  try {
    doc = asRecord(parseYamlSubset(text));
  } catch (err) {
    if (err instanceof YamlError)
      throw new UserError(
        `cannot parse kubeconfig ${file}: ${err.message}`,
        "check it with kubectl config view",
      );
    throw err;
  }
  const contextName = typeof doc["current-context"] === "string" ? doc["current-context"] : "";
  if (!contextName)
    throw new UserError(
      `kubeconfig ${file} has no current-context`,
      "set one with kubectl config use-context",
    );
  const context = findNamed(doc.contexts, contextName, "context", file);
  const cluster = findNamed(doc.clusters, String(context.cluster ?? ""), "cluster", file);
  const user = context.user ? findNamed(doc.users, String(context.user), "user", file) : {};
  const base = dirname(file);
  const resolvePath = (p: unknown) =>
    typeof p === "string" && p !== "" ? (isAbsolute(p) ? p : join(base, p)) : undefined;
  const dataOrFile = async (data: unknown, path: unknown, what: string) => {
    if (typeof data === "string" && data !== "") return Buffer.from(data, "base64");
    const resolved = resolvePath(path);
    return resolved ? readOrFail(resolved, `${what} named in ${file}`) : undefined;
  };
  if (user.exec || user["auth-provider"])
    throw new UserError(
      `kubeconfig ${file}: user ${String(context.user)} uses an exec or auth-provider plugin, which weft does not run`,
      "use a token or a client certificate",
    );
  if (typeof cluster.server !== "string" || cluster.server === "")
    throw new UserError(
      `kubeconfig ${file}: cluster ${String(context.cluster)} has no server`,
      "fix the file",
    );
  const tokenFile = resolvePath(user.tokenFile);
  return {
    server: checkUrl(cluster.server, `the server in ${file}`),
    ca: await dataOrFile(cluster["certificate-authority-data"], cluster["certificate-authority"], "the CA"),
    insecureSkipTlsVerify:
      cluster["insecure-skip-tls-verify"] === true || cluster["insecure-skip-tls-verify"] === "true",
    token: typeof user.token === "string" && user.token !== "" ? user.token : undefined,
    tokenFile,
    cert: await dataOrFile(
      user["client-certificate-data"],
      user["client-certificate"],
      "the client certificate",
    ),
    key: await dataOrFile(user["client-key-data"], user["client-key"], "the client key"),
    source: `kubeconfig ${file}`,
  };
}
