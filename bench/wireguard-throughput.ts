/**
 * TCP throughput pod to pod over weftd's wireguard backend (userspace: wireguard-go, as this kernel has no
 * WireGuard module), beside vxlan in the same run, and the cost of wireguard-go: its resident memory and
 * the CPU it burns per Gbit/s carried (both hosts' wireguard-go, user + system time over the transfer).
 *
 *   node dist/bench/wireguard-throughput.js [rounds=2] [seconds=8]
 *
 * Two lab hosts; per round, in rotating order, vxlan then wireguard (a fresh lab each): iperf3 -t <seconds>,
 * one stream, from host 1's pod address (.1 on cni0) to host 2's, so the packets take the pod route
 * through the backend's device. Needs root, iperf3, etcd and wireguard-go; all inside the lab's namespaces.
 */
import { readFileSync } from "node:fs";
import { cpus, loadavg, release } from "node:os";
import { Lab } from "../test/lab/lab.js";
import { addPods, PREFIX, waitFor, waitForLeases } from "../test/lab/weft-cluster.js";
import {
  removeWireguardMountPoint,
  startWireguardWeftd,
  wireguardGoPid,
} from "../test/lab/wireguard-hosts.js";

const VXLAN = '{"Network":"10.244.0.0/16","Backend":{"Type":"vxlan"}}';
const WIREGUARD = '{"Network":"10.244.0.0/16","Backend":{"Type":"wireguard"}}';
const TICKS_PER_SECOND = 100; // USER_HZ on Linux

interface Result {
  readonly bitsPerSecond: number;
  /** wireguard-go on both hosts: CPU seconds per second of transfer, and resident KiB after it. */
  readonly cpuSeconds?: number;
  readonly rssKiB?: number[];
}

function cpuTicks(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]!.split(" ");
  return Number(fields[11]) + Number(fields[12]); // utime, stime
}

function rssKiB(pid: number): number {
  return Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, "utf8"))?.[1] ?? Number.NaN);
}

async function measure(type: "vxlan" | "wireguard", seconds: number): Promise<Result> {
  const lab = await Lab.create({ hosts: 2, tag: "wgbench" });
  try {
    await lab.startEtcd();
    await lab.etcdctl(["put", `${PREFIX}/config`, type === "vxlan" ? VXLAN : WIREGUARD]);
    const weftds = await Promise.all(
      lab.hosts.map((h) => (type === "vxlan" ? lab.startWeftd(h) : startWireguardWeftd(lab, h))),
    );
    const leases = await waitForLeases(lab, weftds, 20_000);
    for (const weftd of weftds) await weftd.waitForOutput(/datapath programmed/, 20_000);
    const pods = await addPods(lab, leases);
    const [h1, h2] = [lab.host(1), lab.host(2)];
    await waitFor(
      "pod 1 reaching pod 2",
      async () => (await lab.ping(h1, pods[1]!, { count: 1, source: pods[0], timeoutMs: 1000 })).reachable,
      20_000,
      100,
    );
    const wgPids = type === "wireguard" ? [await wireguardGoPid(lab, h1), await wireguardGoPid(lab, h2)] : [];
    const before = wgPids.map((pid) => cpuTicks(pid!));
    const started = Date.now();
    // lab.iperf3 binds the server to pod 2's address; the client's source follows the route to it.
    const bitsPerSecond = await lab.iperf3(h2, h1, pods[1]!, { seconds });
    const elapsed = (Date.now() - started) / 1000;
    if (type === "vxlan") return { bitsPerSecond };
    const used =
      wgPids.reduce<number>((sum, pid, i) => sum + cpuTicks(pid!) - before[i]!, 0) / TICKS_PER_SECOND;
    return { bitsPerSecond, cpuSeconds: used / elapsed, rssKiB: wgPids.map((pid) => rssKiB(pid!)) };
  } finally {
    await lab.destroy();
    removeWireguardMountPoint();
  }
}

const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!;

async function main(): Promise<void> {
  const rounds = Number(process.argv[2] ?? 2);
  const seconds = Number(process.argv[3] ?? 8);
  console.log(
    `kernel ${release()}, ${cpus().length} CPUs, load ${loadavg()[0]!.toFixed(2)}; ${rounds} rounds x ${seconds} s`,
  );
  const vxlan: number[] = [];
  const wg: Result[] = [];
  for (let round = 0; round < rounds; round++) {
    const order = round % 2 === 0 ? (["vxlan", "wireguard"] as const) : (["wireguard", "vxlan"] as const);
    for (const type of order) {
      const result = await measure(type, seconds);
      const extra =
        result.cpuSeconds === undefined
          ? ""
          : `, wireguard-go CPU ${result.cpuSeconds.toFixed(2)} cores (both hosts), RSS ${result.rssKiB!.join(" / ")} KiB`;
      console.log(`round ${round + 1} ${type}: ${(result.bitsPerSecond / 1e9).toFixed(2)} Gbit/s${extra}`);
      if (type === "vxlan") vxlan.push(result.bitsPerSecond);
      else wg.push(result);
    }
  }
  const wgGbps = median(wg.map((r) => r.bitsPerSecond)) / 1e9;
  const cpuPerGbit = median(wg.map((r) => r.cpuSeconds! / (r.bitsPerSecond / 1e9)));
  console.log(
    `median: vxlan ${(median(vxlan) / 1e9).toFixed(2)} Gbit/s, wireguard-go ${wgGbps.toFixed(2)} Gbit/s; ` +
      `wireguard-go ${cpuPerGbit.toFixed(2)} CPU cores per Gbit/s (sender + receiver), ` +
      `RSS ${median(wg.flatMap((r) => r.rssKiB!))} KiB per process`,
  );
}

await main();
