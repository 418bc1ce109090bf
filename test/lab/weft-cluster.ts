/** Shared steps of the weftd lab tests: start a cluster, read leases, wait for routes, ping pods. */
import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import type { Lab, LabHost, LabProcess } from "./lab.js";

export const PREFIX = "/coreos.com/network";
export const VXLAN = '{"Network":"10.244.0.0/16","Backend":{"Type":"vxlan"}}';
export const HOST_GW = '{"Network":"10.244.0.0/16","Backend":{"Type":"host-gw"}}';

export const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Polls `check` every `everyMs` until it returns true; fails naming `what` after `timeoutMs`. */
export async function waitFor(
  what: string,
  check: () => Promise<boolean>,
  timeoutMs: number,
  everyMs = 50,
): Promise<number> {
  const started = Date.now();
  for (;;) {
    if (await check()) return Date.now() - started;
    if (Date.now() - started > timeoutMs)
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(everyMs);
  }
}

export interface HostLease {
  /** e.g. "10.244.63.0/24" */
  subnet: string;
  /** e.g. "10.244.63" */
  base: string;
  ipv6Subnet: string | undefined;
}

/** The host's lease as its subnet.env says (undefined until weftd wrote it). */
export async function readLease(lab: Lab, host: LabHost): Promise<HostLease | undefined> {
  let text: string;
  try {
    text = await readFile(lab.subnetFile(host), "utf8");
  } catch {
    return undefined;
  }
  const get = (key: string) => text.match(new RegExp(`^${key}=(.*)$`, "m"))?.[1];
  const subnetLine = get("FLANNEL_SUBNET");
  const v6Line = get("FLANNEL_IPV6_SUBNET");
  if (!subnetLine && !v6Line) return undefined;
  const [ip, len] = (subnetLine ?? "0.0.0.1/0").split("/");
  const base = ip!.split(".").slice(0, 3).join(".");
  return {
    subnet: `${base}.0/${len}`,
    base,
    ipv6Subnet: v6Line ? `${v6Line.split("/")[0]!.replace(/1$/, "")}/${v6Line.split("/")[1]}` : undefined,
  };
}

/** Destinations of the host's IPv4 routes through `dev` (or any device). */
export async function routeDestinations(lab: Lab, host: LabHost, family: 4 | 6 = 4): Promise<string[]> {
  const out = await lab.run(host, ["ip", `-${family}`, "-json", "route", "show"]);
  return (JSON.parse(out) as Array<{ dst: string }>).map((r) => r.dst);
}

export interface Cluster {
  weftds: LabProcess[];
  leases: HostLease[];
}

/** Puts the config, starts weftd on every host, waits until every host routes to every other's subnet. */
export async function startCluster(
  lab: Lab,
  config: string,
  args: string[] = [],
  timeoutMs = 15_000,
): Promise<Cluster> {
  if (!lab.etcd) await lab.startEtcd();
  await lab.etcdctl(["put", `${PREFIX}/config`, config]);
  const weftds = await Promise.all(lab.hosts.map((h) => lab.startWeftd(h, args)));
  const leases = await waitForLeases(lab, weftds, timeoutMs);
  await waitForFullMesh(lab, leases, timeoutMs, weftds);
  return { weftds, leases };
}

export async function waitForLeases(
  lab: Lab,
  weftds: LabProcess[],
  timeoutMs: number,
  hosts: readonly LabHost[] = lab.hosts,
): Promise<HostLease[]> {
  const leases: HostLease[] = [];
  for (const [i, host] of hosts.entries()) {
    await waitFor(
      `subnet.env of ${host.name}`,
      async () => {
        if (!weftds[i]!.running) throw new Error(`weftd on ${host.name} exited:\n${weftds[i]!.output()}`);
        return (await readLease(lab, host)) !== undefined;
      },
      timeoutMs,
    );
    leases.push((await readLease(lab, host))!);
  }
  return leases;
}

export async function waitForFullMesh(
  lab: Lab,
  leases: HostLease[],
  timeoutMs: number,
  weftds?: LabProcess[],
  hosts: readonly LabHost[] = lab.hosts,
): Promise<void> {
  for (const [i, host] of hosts.entries()) {
    const others = leases.filter((_, j) => j !== i).map((l) => l.subnet);
    await waitFor(
      `routes to ${others.length} peer subnets on ${host.name}`,
      async () => {
        const have = new Set(await routeDestinations(lab, host));
        return others.every((s) => have.has(s));
      },
      timeoutMs,
    ).catch((err: Error) => {
      throw new Error(`${err.message}\nweftd log:\n${weftds?.[i]?.output() ?? "(none)"}`);
    });
  }
}

/** Gives every host a pod address (.1 of its subnet) on a cni0 bridge. */
export async function addPods(
  lab: Lab,
  leases: HostLease[],
  hosts: readonly LabHost[] = lab.hosts,
): Promise<string[]> {
  const pods = leases.map((l) => `${l.base}.1`);
  for (const [i, host] of hosts.entries()) await lab.addPodAddress(host, `${pods[i]}/24`);
  return pods;
}

/** Asserts every host's pod reaches every other host's pod. */
export async function assertFullMeshPing(lab: Lab, pods: string[]): Promise<void> {
  const failures: string[] = [];
  for (const [i, host] of lab.hosts.entries()) {
    for (const [j, pod] of pods.entries()) {
      if (i === j) continue;
      const result = await lab.ping(host, pod, { count: 2, source: pods[i], intervalSeconds: 0.1 });
      if (!result.reachable)
        failures.push(`${host.name} (${pods[i]}) -> ${pod}: ${result.output.trim().split("\n").pop()}`);
    }
  }
  assert.deepEqual(failures, [], "pods that could not reach each other");
}
