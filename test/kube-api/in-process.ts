/** Starts the test API server inside the test process on a free port of 127.0.0.1, for unit tests. */
import { mkdtempSync, rmSync } from "node:fs";
import { request } from "node:https";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { KubeApiServer } from "./api-server.js";
import type { FaultRule } from "./faults.js";
import { ADMIN_USER, DEFAULT_ADMIN_TOKEN, DEFAULT_WEFT_TOKEN, WEFT_USER } from "./identities.js";
import { writeKubeconfig } from "./kubeconfig-file.js";
import { CLIENT_CERT_CN, makeTlsMaterial, type TlsMaterial } from "./tls-material.js";

export interface RunningApi {
  readonly server: KubeApiServer;
  readonly url: string;
  readonly tls: TlsMaterial;
  readonly dir: string;
  readonly adminKubeconfig: string;
  readonly weftKubeconfig: string;
  readonly certKubeconfig: string;
  /** A raw request as the admin (or the given token); resolves with status and parsed JSON body. */
  call(
    method: string,
    path: string,
    body?: unknown,
    contentType?: string,
    token?: string,
  ): Promise<{ status: number; body: any }>;
  close(): Promise<void>;
}

export async function startApiInProcess(
  options: { bookmarkIntervalMs?: number; historyLimit?: number; faults?: FaultRule[] } = {},
): Promise<RunningApi> {
  const dir = mkdtempSync(join(tmpdir(), "weft-kube-api-"));
  const tls = makeTlsMaterial(dir);
  const server = new KubeApiServer({
    host: "127.0.0.1",
    port: 0,
    tls,
    tokens: new Map([
      [DEFAULT_ADMIN_TOKEN, { name: ADMIN_USER, role: "admin" }],
      [DEFAULT_WEFT_TOKEN, { name: WEFT_USER, role: "flannel" }],
    ]),
    certificateRoles: new Map([[CLIENT_CERT_CN, "flannel"]]),
    historyLimit: options.historyLimit ?? 1000,
    bookmarkIntervalMs: options.bookmarkIntervalMs ?? 60_000,
    ...(options.faults ? { faults: options.faults } : {}),
  });
  const url = await server.listen();
  const call: RunningApi["call"] = (
    method,
    path,
    body,
    contentType = "application/json",
    token = DEFAULT_ADMIN_TOKEN,
  ) =>
    new Promise((resolve, reject) => {
      const text = body === undefined ? undefined : typeof body === "string" ? body : JSON.stringify(body);
      const req = request(
        `${url}${path}`,
        {
          method,
          ca: tls.caCert,
          headers: {
            authorization: `Bearer ${token}`,
            ...(text !== undefined ? { "content-type": contentType } : {}),
          },
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on("data", (c: Buffer) => chunks.push(c));
          res.on("end", () => {
            const raw = Buffer.concat(chunks).toString("utf8");
            let parsed: unknown = raw;
            try {
              parsed = JSON.parse(raw);
            } catch {}
            resolve({ status: res.statusCode ?? 0, body: parsed });
          });
        },
      );
      req.on("error", reject);
      req.end(text);
    });
  return {
    server,
    url,
    tls,
    dir,
    adminKubeconfig: writeKubeconfig(join(dir, "admin.kubeconfig"), url, tls.caFile, {
      token: DEFAULT_ADMIN_TOKEN,
    }),
    weftKubeconfig: writeKubeconfig(join(dir, "weft.kubeconfig"), url, tls.caFile, {
      token: DEFAULT_WEFT_TOKEN,
    }),
    certKubeconfig: writeKubeconfig(join(dir, "cert.kubeconfig"), url, tls.caFile, {
      clientCertificate: tls.clientCertFile,
      clientKey: tls.clientKeyFile,
    }),
    call,
    close: async () => {
      await server.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** A Node object as a cluster would have it before any network agent ran. */
export function nodeObject(
  name: string,
  podCIDRs: string[],
  internalIP: string,
  annotations: Record<string, string> = {},
): object {
  return {
    apiVersion: "v1",
    kind: "Node",
    metadata: {
      name,
      labels: { "kubernetes.io/hostname": name },
      ...(Object.keys(annotations).length ? { annotations } : {}),
    },
    spec: podCIDRs.length > 0 ? { podCIDR: podCIDRs[0], podCIDRs } : {},
    status: {
      addresses: [
        { type: "InternalIP", address: internalIP },
        { type: "Hostname", address: name },
      ],
      conditions: [
        {
          type: "Ready",
          status: "True",
          reason: "KubeletReady",
          message: "kubelet is posting ready status",
          lastHeartbeatTime: "2026-01-01T00:00:00Z",
          lastTransitionTime: "2026-01-01T00:00:00Z",
        },
      ],
    },
  };
}
