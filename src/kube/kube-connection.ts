/**
 * Where the Kubernetes API is and how to authenticate, resolved as flanneld's
 * clientcmd.BuildConfigFromFlags(--kube-api-url, --kubeconfig-file) does: a kubeconfig (its current
 * context), with --kube-api-url overriding its server; with neither, the in-cluster service account.
 */
import { join } from "node:path";
import { readSmallFile } from "../fs/read-small-file.js";
import { boundText } from "../text/untrusted-text.js";
import { requirePemCertificates } from "../tls/pem-files.js";
import { UserError } from "../user-error.js";
import type { ExecPluginConfig } from "./exec-credential.js";

export interface KubeConnection {
  readonly server: string;
  readonly ca: Buffer | undefined;
  readonly insecureSkipTlsVerify: boolean;
  readonly token: string | undefined;
  /** Re-read on each request, as a projected service-account token rotates. */
  readonly tokenFile: string | undefined;
  readonly cert: Buffer | undefined;
  readonly key: Buffer | undefined;
  /** A kubeconfig user's exec credential plugin: its token or certificate replace the ones above. */
  readonly exec?: ExecPluginConfig;
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
    // Only a kubeconfig needs the YAML library: loaded here, not at weftd's start.
    const { loadKubeconfig } = await import("./kubeconfig.js");
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
  requirePemCertificates(
    ca,
    `the service account CA ${join(dir, "ca.crt")}`,
    "check the pod's volume mounts",
  );
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

export async function readOrFail(path: string, what: string): Promise<Buffer> {
  try {
    return readSmallFile(path, 16 * 1024 * 1024); // bounded, never blocking: not /dev/zero or a FIFO
  } catch (err) {
    throw new UserError(
      `cannot read ${what} ${boundText(path, 300)}: ${(err as NodeJS.ErrnoException).code ?? boundText((err as Error).message, 200)}`,
      "check the path and the pod's volume mounts",
    );
  }
}

export function checkUrl(url: string, what: string): string {
  if (!/^https?:\/\/[^/]+/.test(url))
    throw new UserError(
      `${what} ${JSON.stringify(boundText(url, 200))} is not a URL`,
      "write it like https://10.0.0.1:6443",
    );
  return url.replace(/\/+$/, "");
}
