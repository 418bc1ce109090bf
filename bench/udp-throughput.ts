/**
 * TCP throughput pod to pod over weftd's udp backend, beside vxlan in the same run, and how long a
 * restart of weftd on udp interrupts traffic. Two lab hosts, each with a pod: a network namespace behind
 * a veth on the host's cni0 bridge, with the MTU subnet.env gives, as the bridge CNI plugin sets it up.
 *
 *   node dist/bench/udp-throughput.js [rounds=3] [seconds=10]
 *
 * Per round, in rotating order: vxlan; udp as weft ships it (flannel0's queue 2000); udp with flannel0's
 * queue set back to the kernel's 500 (flanneld's). Each is iperf3 -t <seconds>, one stream, from pod 1 to
 * pod 2: received bits/s and the sender's TCP retransmits. Then the restart: pod 1 pings pod 2 every
 * 10 ms while weftd on host 1 gets SIGTERM and starts again; the lost replies give the interruption.
 * Needs root, iperf3 and etcd; everything lives in the lab's namespaces and is removed at the end.
 */
import { cpus, loadavg, release } from "node:os";
import { Lab, type LabHost, type LabProcess } from "../test/lab/lab.js";
import { runChecked, runCommand } from "../test/lab/lab-command.js";
import { PREFIX, readLease, waitFor, waitForLeases } from "../test/lab/weft-cluster.js";

const VXLAN = '{"Network":"10.244.0.0/16","Backend":{"Type":"vxlan"}}';
const UDP = '{"Network":"10.244.0.0/16","Backend":{"Type":"udp","Port":8285}}';
const PING_INTERVAL_S = 0.01;

interface Variant {
  readonly label: string;
  readonly config: string;
  /** flannel0's transmit queue set after start (undefined: as weftd leaves it). */
  readonly txqlen?: number;
}

const VARIANTS: readonly Variant[] = [
  { label: "vxlan", config: VXLAN },
  { label: "udp", config: UDP },
  { label: "udp, qlen 500 (flanneld's)", config: UDP, txqlen: 500 },
];

interface Pod {
  readonly ns: string;
  readonly ip: string;
}

/** A pod as the bridge plugin makes one: veth into cni0 (gateway .1), the pod at .2, subnet.env's MTU. */
async function addPod(lab: Lab, host: LabHost, name: string): Promise<Pod> {
  const lease = await readLease(lab, host);
  if (!lease) throw new Error(`no subnet.env on ${host.name}`);
  const env = await lab.run(host, ["cat", lab.subnetFile(host)]);
  const mtu = /^FLANNEL_MTU=(\d+)$/m.exec(env)?.[1] ?? "1500";
  const ns = `${host.name}-${name}`;
  const ip = `${lease.base}.2`;
  await lab.addPodAddress(host, `${lease.base}.1/24`);
  // Made from here: `ip netns add` inside `ip netns exec` would bind-mount it in a throwaway mount namespace.
  await runChecked(["ip", "netns", "add", ns]);
  await lab.run(host, [
    "ip",
    "link",
    "add",
    "veth-bench",
    "mtu",
    mtu,
    "type",
    "veth",
    "peer",
    "name",
    "eth0",
    "netns",
    ns,
  ]);
  await lab.run(host, ["ip", "link", "set", "veth-bench", "master", "cni0", "up"]);
  for (const argv of [
    ["ip", "link", "set", "lo", "up"],
    ["ip", "link", "set", "eth0", "mtu", mtu, "up"],
    ["ip", "addr", "add", `${ip}/24`, "dev", "eth0"],
    ["ip", "route", "add", "default", "via", `${lease.base}.1`],
  ]) {
    await lab.run(host, ["ip", "netns", "exec", ns, ...argv]);
  }
  return { ns, ip };
}

const inPod = (pod: Pod, argv: readonly string[]) => ["ip", "netns", "exec", pod.ns, ...argv];

async function startWeftds(lab: Lab, config: string): Promise<LabProcess[]> {
  await lab.etcdctl(["del", "--prefix", `${PREFIX}/`]);
  await lab.etcdctl(["put", `${PREFIX}/config`, config]);
  const weftds = await Promise.all(lab.hosts.map((h) => lab.startWeftd(h)));
  await waitForLeases(lab, weftds, 20_000);
  for (const weftd of weftds) await weftd.waitForOutput(/datapath programmed/, 20_000);
  return weftds;
}

async function reachable(lab: Lab, host: LabHost, from: Pod, to: Pod): Promise<void> {
  await waitFor(
    `${from.ip} reaching ${to.ip}`,
    async () => (await lab.exec(host, inPod(from, ["ping", "-c", "1", "-W", "1", to.ip]))).code === 0,
    20_000,
    100,
  );
}

interface Throughput {
  readonly bitsPerSecond: number;
  readonly retransmits: number;
}

async function iperf3(
  lab: Lab,
  client: [LabHost, Pod],
  server: [LabHost, Pod],
  seconds: number,
): Promise<Throughput> {
  const srv = await lab.spawn(server[0], [
    "timeout",
    String(seconds + 30),
    ...inPod(server[1], ["iperf3", "-s", "-1", "--forceflush", "-B", server[1].ip]),
  ]);
  try {
    await srv.waitForOutput(/Server listening/, 10_000);
    const result = await lab.exec(
      client[0],
      inPod(client[1], ["iperf3", "-c", server[1].ip, "-t", String(seconds), "-J"]),
      {
        timeoutMs: seconds * 1000 + 20_000,
      },
    );
    const report = JSON.parse(result.stdout) as {
      error?: string;
      end?: { sum_received?: { bits_per_second?: number }; sum_sent?: { retransmits?: number } };
    };
    if (report.error) throw new Error(`iperf3: ${report.error}`);
    return {
      bitsPerSecond: report.end?.sum_received?.bits_per_second ?? Number.NaN,
      retransmits: report.end?.sum_sent?.retransmits ?? Number.NaN,
    };
  } finally {
    await srv.stop("SIGTERM", 2_000);
  }
}

async function measureVariant(variant: Variant, seconds: number): Promise<Throughput> {
  const lab = await Lab.create({ hosts: 2, tag: "udpbench" });
  try {
    await lab.startEtcd();
    await startWeftds(lab, variant.config);
    if (variant.txqlen !== undefined) {
      for (const host of lab.hosts)
        await lab.run(host, ["ip", "link", "set", "flannel0", "txqueuelen", String(variant.txqlen)]);
    }
    const [h1, h2] = [lab.host(1), lab.host(2)];
    const p1 = await addPod(lab, h1, "pod");
    const p2 = await addPod(lab, h2, "pod");
    await reachable(lab, h1, p1, p2);
    return await iperf3(lab, [h1, p1], [h2, p2], seconds);
  } finally {
    for (const host of lab.hosts) await runCommand(["ip", "netns", "del", `${host.name}-pod`]);
    await lab.destroy();
  }
}

interface Restart {
  readonly sent: number;
  readonly lost: number;
  /** Longest run of consecutive lost replies, times the interval. */
  readonly gapMs: number;
  /** SIGTERM to the new weftd's "datapath programmed". */
  readonly restartMs: number;
}

async function measureRestart(): Promise<Restart> {
  const lab = await Lab.create({ hosts: 2, tag: "udprst" });
  try {
    await lab.startEtcd();
    const weftds = await startWeftds(lab, UDP);
    const [h1, h2] = [lab.host(1), lab.host(2)];
    const p1 = await addPod(lab, h1, "pod");
    const p2 = await addPod(lab, h2, "pod");
    await reachable(lab, h1, p1, p2);
    const count = 600; // 6 s at 10 ms
    const ping = lab.exec(
      h1,
      inPod(p1, ["ping", "-n", "-i", String(PING_INTERVAL_S), "-c", String(count), "-W", "1", p2.ip]),
      {
        timeoutMs: 30_000,
      },
    );
    await new Promise((r) => setTimeout(r, 1500));
    const stopAt = Date.now();
    await weftds[0]!.stop("SIGTERM", 5_000);
    const again = await lab.startWeftd(h1);
    await again.waitForOutput(/datapath programmed/, 20_000);
    const restartMs = Date.now() - stopAt;
    const out = (await ping).stdout;
    const seqs = new Set([...out.matchAll(/icmp_seq=(\d+) ttl/g)].map((m) => Number(m[1])));
    let longest = 0;
    let run = 0;
    for (let seq = 1; seq <= count; seq++) {
      run = seqs.has(seq) ? 0 : run + 1;
      longest = Math.max(longest, run);
    }
    return {
      sent: count,
      lost: count - seqs.size,
      gapMs: Math.round(longest * PING_INTERVAL_S * 1000),
      restartMs,
    };
  } finally {
    for (const host of lab.hosts) await runCommand(["ip", "netns", "del", `${host.name}-pod`]);
    await lab.destroy();
  }
}

const median = (values: number[]) => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)]!;
};

async function main(): Promise<void> {
  const rounds = Number(process.argv[2] ?? 3);
  const seconds = Number(process.argv[3] ?? 10);
  console.log(
    `${new Date().toISOString()} ${cpus().length} x ${cpus()[0]?.model} kernel ${release()} load ${loadavg()
      .map((l) => l.toFixed(2))
      .join(" ")}`,
  );
  const results = new Map<string, Throughput[]>(VARIANTS.map((v) => [v.label, []]));
  for (let round = 0; round < rounds; round++) {
    // Rotate the order so a busier moment of the machine does not always hit the same variant.
    const order = VARIANTS.map((_, i) => VARIANTS[(i + round) % VARIANTS.length]!);
    for (const variant of order) {
      const t = await measureVariant(variant, seconds);
      results.get(variant.label)!.push(t);
      console.log(
        `round ${round + 1} ${variant.label}: ${(t.bitsPerSecond / 1e9).toFixed(2)} Gbit/s, ${t.retransmits} retransmits (load ${loadavg()[0]!.toFixed(2)})`,
      );
    }
  }
  console.log(`\nmedian of ${rounds} rounds, iperf3 ${seconds} s pod to pod:`);
  for (const [label, list] of results) {
    const gbits = list.map((t) => t.bitsPerSecond / 1e9);
    const retr = list.map((t) => t.retransmits);
    console.log(
      `  ${label}: ${median(gbits).toFixed(2)} Gbit/s (${Math.min(...gbits).toFixed(2)}-${Math.max(...gbits).toFixed(2)}), retransmits ${median(retr)} (${Math.min(...retr)}-${Math.max(...retr)})`,
    );
  }
  for (let i = 0; i < rounds; i++) {
    const r = await measureRestart();
    console.log(
      `restart ${i + 1}: ${r.lost} of ${r.sent} pings lost, longest gap ${r.gapMs} ms; SIGTERM -> new weftd programmed ${r.restartMs} ms`,
    );
  }
}

await main();
