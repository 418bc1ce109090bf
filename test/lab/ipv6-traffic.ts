/** Shared steps of the IPv6 lab tests: read subnet.env's pod addresses, ping -6 a full mesh, see masquerade. */
import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import type { Lab, LabHost, LabProcess } from "./lab.js";
import { waitFor } from "./weft-cluster.js";

/** The pod addresses subnet.env gives a host: FLANNEL_SUBNET / FLANNEL_IPV6_SUBNET (the subnet's first address). */
export interface PodAddresses {
  v4: string | undefined;
  v6: string | undefined;
  /** With prefix length, as written: "10.244.3.1/24", "fd44:0:0:3c::1/64". */
  v4Cidr: string | undefined;
  v6Cidr: string | undefined;
  text: string;
}

export async function readPodAddresses(lab: Lab, host: LabHost): Promise<PodAddresses | undefined> {
  let text: string;
  try {
    text = await readFile(lab.subnetFile(host), "utf8");
  } catch {
    return undefined;
  }
  const get = (key: string) => text.match(new RegExp(`^${key}=(.*)$`, "m"))?.[1];
  const v4Cidr = get("FLANNEL_SUBNET");
  const v6Cidr = get("FLANNEL_IPV6_SUBNET");
  return { v4: v4Cidr?.split("/")[0], v6: v6Cidr?.split("/")[0], v4Cidr, v6Cidr, text };
}

/** Waits until every host's weftd wrote subnet.env with the families asked for; gives each host its pods. */
export async function waitForPods(
  lab: Lab,
  weftds: readonly LabProcess[],
  families: { v4: boolean; v6: boolean },
  timeoutMs = 20_000,
): Promise<PodAddresses[]> {
  const pods: PodAddresses[] = [];
  for (const [i, host] of lab.hosts.entries()) {
    let found: PodAddresses | undefined;
    await waitFor(
      `subnet.env of ${host.name}`,
      async () => {
        if (!weftds[i]!.running) throw new Error(`weftd on ${host.name} exited:\n${weftds[i]!.output()}`);
        found = await readPodAddresses(lab, host);
        return found !== undefined && (!families.v4 || !!found.v4) && (!families.v6 || !!found.v6);
      },
      timeoutMs,
    );
    pods.push(found!);
    for (const cidr of [found!.v4Cidr, found!.v6Cidr]) if (cidr) await lab.addPodAddress(host, cidr);
  }
  return pods;
}

/** Pings every other host's pod address of one family, from this host's pod address, until all answer. */
export async function assertMeshReachable(
  lab: Lab,
  pods: readonly PodAddresses[],
  family: 4 | 6,
  weftds: readonly LabProcess[],
  timeoutMs = 15_000,
): Promise<void> {
  for (const [i, from] of lab.hosts.entries()) {
    for (const [j, to] of pods.entries()) {
      if (i === j) continue;
      const source = family === 4 ? pods[i]!.v4! : pods[i]!.v6!;
      const target = family === 4 ? to.v4! : to.v6!;
      let last = "";
      await waitFor(
        `ping -${family} ${from.name} (${source}) -> ${target}`,
        async () => {
          const result = await lab.ping(from, target, { count: 1, source, intervalSeconds: 0.1 });
          last = result.output;
          return result.reachable;
        },
        timeoutMs,
        200,
      ).catch((error: Error) => {
        throw new Error(`${error.message}\n${last}\nweftd log:\n${weftds[i]?.output().slice(-3000)}`);
      });
    }
  }
}

/**
 * Opens a TCP connection from `source` on `host` to a server on `serverIp` in the fabric namespace and
 * returns the source address the server saw (masquerade shows the host's own address). With podNs the
 * client runs in that pod namespace on the host.
 */
export async function sourceSeenByFabric(
  lab: Lab,
  host: LabHost,
  source: string,
  serverIp: string,
  options: { podNs?: string; port?: number } = {},
): Promise<string> {
  const port = options.port ?? 7300;
  const inPod = options.podNs ? ["ip", "netns", "exec", options.podNs] : [];
  const server = await lab.spawn(lab.fabric, [
    process.execPath,
    "-e",
    `const s=require("net").createServer((c)=>{console.log("peer "+c.remoteAddress);c.end();s.close()});` +
      `s.listen(${port},${JSON.stringify(serverIp)},()=>console.log("listening"));setTimeout(()=>process.exit(2),15000)`,
  ]);
  try {
    await server.waitForOutput(/listening/, 10_000);
    await lab.run(
      host,
      [
        ...inPod,
        process.execPath,
        "-e",
        `const c=require("net").connect({host:${JSON.stringify(serverIp)},port:${port},localAddress:${JSON.stringify(source)}});` +
          `c.on("error",(e)=>{console.error(e.message);process.exit(1)});c.on("close",()=>process.exit(0));c.resume();` +
          `setTimeout(()=>{console.error("no answer from the fabric (not masqueraded?)");process.exit(3)},4000)`,
      ],
      { timeoutMs: 10_000 },
    );
    const seen = (await server.waitForOutput(/peer (\S+)/, 5_000))[1];
    assert.ok(seen, `the fabric's server printed no peer: ${server.output()}`);
    return seen;
  } finally {
    await server.stop("SIGTERM", 2_000);
  }
}
