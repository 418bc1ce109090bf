/**
 * Pods made by the real `flannel` CNI plugin as a runtime makes them: the plugin runs in the host's
 * namespace, each pod is a fresh netns named after the lab, the delegate is the reference bridge +
 * host-local. Every pod namespace is deleted by removeAll(), and at process exit if a run dies first.
 */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { existsSync, rmSync } from "node:fs";
import { join } from "node:path";
import { pluginArgv, pluginPath } from "../helpers/cni-plugin.js";
import type { CommandResult, Lab, LabHost, LabProcess } from "./lab.js";

export const CNI_BIN = "/usr/lib/cni";

/** Why the real pods cannot be made here, or false. */
export function missingCniPrerequisite(): string | false {
  if (process.getuid?.() !== 0) return "needs root (network namespaces)";
  for (const p of ["bridge", "host-local"]) {
    if (!existsSync(join(CNI_BIN, p)))
      return `needs ${CNI_BIN}/${p} (apt-get install containernetworking-plugins)`;
  }
  return false;
}

const livePodNamespaces = new Set<string>();
process.on("exit", () => {
  for (const ns of livePodNamespaces) {
    try {
      execFileSync("ip", ["netns", "del", ns], { stdio: "ignore", timeout: 5_000 });
    } catch {
      // already gone
    }
  }
});

export interface CniPod {
  readonly host: LabHost;
  /** The pod's netns name (also its CNI_CONTAINERID). */
  readonly ns: string;
  /** ADD's addresses without prefix length, in the result's order. */
  readonly ips: readonly string[];
  readonly v4: string | undefined;
  readonly v6: string | undefined;
}

export class CniPods {
  readonly pods: CniPod[] = [];
  private readonly plugin = pluginPath;
  private readonly network: string;

  constructor(private readonly lab: Lab) {
    if (!existsSync(this.plugin))
      throw new Error(`the flannel plugin is not built: ${this.plugin} (npm run build)`);
    this.network = `cbr0-${lab.name}`;
  }

  private netConf(host: LabHost): string {
    return JSON.stringify({
      cniVersion: "1.0.0",
      name: this.network,
      type: "flannel",
      subnetFile: this.lab.subnetFile(host),
      dataDir: join(this.lab.hostDir(host), "cni-flannel"),
      ipam: { dataDir: join(this.lab.hostDir(host), "cni-ipam") },
      delegate: { hairpinMode: true, isDefaultGateway: true },
    });
  }

  private runPlugin(command: "ADD" | "DEL", host: LabHost, ns: string): Promise<CommandResult> {
    return this.lab.exec(host, pluginArgv(this.plugin), {
      env: {
        CNI_COMMAND: command,
        CNI_CONTAINERID: ns,
        CNI_NETNS: `/run/netns/${ns}`,
        CNI_IFNAME: "eth0",
        CNI_PATH: CNI_BIN,
      },
      input: this.netConf(host),
      timeoutMs: 30_000,
    });
  }

  /** A pod on `host` (`label` makes its name unique); asserts ADD succeeded. */
  async add(host: LabHost, label: string): Promise<CniPod> {
    const ns = `${this.lab.name}-h${host.index}${label}`;
    execFileSync("ip", ["netns", "add", ns], { timeout: 10_000 });
    livePodNamespaces.add(ns);
    execFileSync("ip", ["-n", ns, "link", "set", "lo", "up"], { timeout: 10_000 });
    const add = await this.runPlugin("ADD", host, ns);
    if (add.code !== 0) {
      this.forget(ns);
      assert.fail(`CNI ADD ${ns}: ${add.stdout} ${add.stderr}`);
    }
    const result = JSON.parse(add.stdout) as { ips?: { address: string }[] };
    const ips = (result.ips ?? []).map((ip) => ip.address.split("/")[0]!);
    const pod: CniPod = {
      host,
      ns,
      ips,
      v4: ips.find((ip) => !ip.includes(":")),
      v6: ips.find((ip) => ip.includes(":")),
    };
    this.pods.push(pod);
    return pod;
  }

  /** argv run inside the pod (`ip netns exec` from the pod's host: the lab runs only in its namespaces). */
  exec(pod: CniPod, argv: readonly string[], timeoutMs = 15_000): Promise<CommandResult> {
    return this.lab.exec(pod.host, ["ip", "netns", "exec", pod.ns, ...argv], { timeoutMs });
  }

  /** A long-running process in a pod; `timeout` in the host namespace bounds it and passes SIGTERM on. */
  spawn(pod: CniPod, argv: readonly string[]): Promise<LabProcess> {
    return this.lab.spawn(pod.host, ["timeout", "60", "ip", "netns", "exec", pod.ns, ...argv]);
  }

  /** CNI DEL for every pod, then their namespaces and host-local's default dir. Best effort. */
  async removeAll(): Promise<void> {
    for (const pod of this.pods.splice(0)) {
      await this.runPlugin("DEL", pod.host, pod.ns).catch(() => {});
      this.forget(pod.ns);
    }
    rmSync(`/var/lib/cni/networks/${this.network}`, { recursive: true, force: true });
  }

  private forget(ns: string): void {
    try {
      execFileSync("ip", ["netns", "del", ns], { stdio: "ignore", timeout: 10_000 });
    } catch {
      // already gone
    }
    livePodNamespaces.delete(ns);
  }
}
