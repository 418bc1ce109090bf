/**
 * The test API server inside a lab's fabric namespace (172.31.0.254:6443, the only address hosts reach),
 * driven from the test with the real kubectl run in the fabric as the admin.
 */
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import type { Lab, LabHost, LabProcess } from "../lab/lab.js";
import type { FaultRule } from "./faults.js";
import { DEFAULT_ADMIN_TOKEN, DEFAULT_WEFT_TOKEN } from "./identities.js";
import { nodeObject } from "./in-process.js";
import { writeKubeconfig } from "./kubeconfig-file.js";

export const LAB_API_URL = "https://172.31.0.254:6443";

export interface LabApi {
  readonly process: LabProcess;
  readonly dir: string;
  readonly caFile: string;
  readonly adminKubeconfig: string;
  /** kubectl as the admin, run in the fabric; resolves with stdout. */
  kubectl(args: readonly string[], input?: string): Promise<string>;
  createNode(
    name: string,
    podCIDRs: string[],
    internalIP: string,
    annotations?: Record<string, string>,
  ): Promise<void>;
  getNode(name: string): Promise<any>;
  /** Writes a kubeconfig for weft's service account into the host's dir; returns its path. */
  weftKubeconfig(host: LabHost): string;
  /** Writes net-conf.json into the host's dir; returns its path. */
  netConf(host: LabHost, conf: object): string;
  /** weftd's kube-mode flags for a host (kubeconfig, API URL, net-conf). */
  weftdArgs(host: LabHost, conf: object, extra?: string[]): string[];
}

export async function startLabApi(
  lab: Lab,
  options: { bookmarkIntervalMs?: number; faults?: FaultRule[] } = {},
): Promise<LabApi> {
  const dir = join(lab.tempDir, "kube-api");
  const server = join(process.cwd(), "dist", "test", "kube-api", "server-main.js");
  const serverProcess = await lab.spawn(lab.fabric, [
    process.execPath,
    server,
    `--listen=${lab.fabricIp}:6443`,
    `--dir=${dir}`,
    `--bookmark-interval-ms=${options.bookmarkIntervalMs ?? 1000}`,
    ...(options.faults ? [`--faults=${JSON.stringify(options.faults)}`] : []),
  ]);
  await serverProcess.waitForOutput(/"url":"https:\/\/[^"]+"/, 20_000);
  const caFile = join(dir, "ca.crt");
  const adminKubeconfig = writeKubeconfig(join(dir, "admin.kubeconfig"), LAB_API_URL, caFile, {
    token: DEFAULT_ADMIN_TOKEN,
  });
  const kubectl = (args: readonly string[], input?: string) =>
    lab.run(lab.fabric, ["kubectl", `--kubeconfig=${adminKubeconfig}`, "--request-timeout=5s", ...args], {
      timeoutMs: 15_000,
      ...(input !== undefined ? { input } : {}),
    });
  const netConf = (host: LabHost, conf: object) => {
    const path = join(lab.hostDir(host), "net-conf.json");
    writeFileSync(path, JSON.stringify(conf));
    return path;
  };
  const weftKubeconfig = (host: LabHost) =>
    writeKubeconfig(join(lab.hostDir(host), "weft.kubeconfig"), LAB_API_URL, caFile, {
      token: DEFAULT_WEFT_TOKEN,
    });
  return {
    process: serverProcess,
    dir,
    caFile,
    adminKubeconfig,
    kubectl,
    createNode: async (name, podCIDRs, internalIP, annotations = {}) => {
      await kubectl(
        ["create", "--validate=false", "-f", "-"],
        JSON.stringify(nodeObject(name, podCIDRs, internalIP, annotations)),
      );
    },
    getNode: async (name) => JSON.parse(await kubectl(["get", "node", name, "-o", "json"])),
    weftKubeconfig,
    netConf,
    weftdArgs: (host, conf, extra = []) => [
      "--kube-subnet-mgr",
      `--kube-api-url=${LAB_API_URL}`,
      `--kubeconfig-file=${weftKubeconfig(host)}`,
      `--net-config-path=${netConf(host, conf)}`,
      "--iface=eth0",
      ...extra,
    ],
  };
}
