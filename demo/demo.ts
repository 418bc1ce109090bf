/**
 * The weft demo: three hosts (network namespaces on a shared bridge), etcd, and weftd on each host.
 * It shows the leases weftd took, then pings every host's pod subnet from every other one.
 *
 *   sudo scripts/demo.sh [--backend vxlan|host-gw] [--no-iperf] [--hold]
 *
 * Nothing outside the lab's namespaces is touched; everything is removed on exit, error or Ctrl-C.
 */
import { Lab, type LabHost, type LabProcess } from "../test/lab/lab.js";

const PREFIX = "/coreos.com/network";
const NETWORK = "10.244.0.0/16";
const HOSTS = 3;
/** weftd normally programs its peers well under a second; this only bounds a broken run. */
const READY_TIMEOUT_MS = 30_000;
const POLL_MS = 100;
/** --hold keeps the lab up for exploring, but never forever. */
const HOLD_MAX_MS = 60 * 60_000;

const BACKENDS = ["vxlan", "host-gw"] as const;
type BackendType = (typeof BACKENDS)[number];

interface Options {
  backend: BackendType;
  iperf: boolean;
  hold: boolean;
}

interface HostLease {
  host: LabHost;
  subnet: string;
  /** The pod address given to the host's cni0 bridge: the subnet's .1. */
  podIp: string;
  publicIp: string;
  vtepMac: string | undefined;
}

const USAGE = `usage: demo [--backend vxlan|host-gw] [--no-iperf] [--hold]
  --backend   weft backend to run (default vxlan)
  --no-iperf  skip the iperf3 throughput run between h1 and h2
  --hold      keep the lab up after the checks, until Ctrl-C (at most 1 h)
`;

class DemoError extends Error {}

/** Set on Ctrl-C: the lab's own handler tears down; the demo only stays quiet about what that interrupts. */
let interrupted = false;

function parseArgs(argv: readonly string[]): Options {
  const options: Options = { backend: "vxlan", iperf: true, hold: false };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    const [name, inline] = arg.split(/=(.*)/s, 2) as [string, string | undefined];
    if (name === "--backend") {
      const value = inline ?? argv[++i];
      if (!BACKENDS.includes(value as BackendType)) {
        throw new DemoError(`--backend must be one of ${BACKENDS.join(", ")}, not ${JSON.stringify(value)}`);
      }
      options.backend = value as BackendType;
    } else if (arg === "--no-iperf") options.iperf = false;
    else if (arg === "--hold") options.hold = true;
    else if (arg === "-h" || arg === "--help") {
      process.stdout.write(USAGE);
      process.exit(0);
    } else throw new DemoError(`unknown argument ${JSON.stringify(arg)}\n${USAGE}`);
  }
  return options;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const seconds = (since: number) => `${((performance.now() - since) / 1000).toFixed(1)} s`;
const step = (text: string, since: number) => console.log(`  ${text.padEnd(52, " ")}${seconds(since)}`);

/** Reads the leases from etcd, as any flannel tool would, and matches them to hosts by PublicIP. */
async function readLeases(
  lab: Lab,
): Promise<Map<string, { subnet: string; publicIp: string; vtepMac: string | undefined }>> {
  const leases = new Map<string, { subnet: string; publicIp: string; vtepMac: string | undefined }>();
  for (const { key, value } of await lab.etcdGetPrefix(`${PREFIX}/subnets/`)) {
    // Keys look like /coreos.com/network/subnets/10.244.23.0-24.
    const subnet = key.slice(key.lastIndexOf("/") + 1).replace(/-(\d+)$/, "/$1");
    try {
      const attrs = JSON.parse(value) as { PublicIP?: string; BackendData?: { VtepMAC?: string } };
      if (attrs.PublicIP) {
        leases.set(attrs.PublicIP, { subnet, publicIp: attrs.PublicIP, vtepMac: attrs.BackendData?.VtepMAC });
      }
    } catch {
      // Not a lease weftd wrote; the wait below reports the host that has none.
    }
  }
  return leases;
}

/** Fails with the tail of its log if a weftd has exited. */
function checkAlive(weftds: readonly LabProcess[]): void {
  for (const weftd of weftds) {
    if (!weftd.running) {
      const tail = weftd.output().trim().split("\n").slice(-15).join("\n");
      throw new DemoError(`weftd in ${weftd.namespace} exited:\n${tail}`);
    }
  }
}

/** Waits (bounded) until every host has a lease and a route to every other host's subnet. */
async function waitForDatapath(lab: Lab, weftds: readonly LabProcess[]): Promise<HostLease[]> {
  const deadline = Date.now() + READY_TIMEOUT_MS;
  let missing = "leases";
  while (Date.now() < deadline) {
    checkAlive(weftds);
    const byIp = await readLeases(lab);
    if (lab.hosts.every((host) => byIp.has(host.ip))) {
      const leases = lab.hosts.map((host) => {
        const lease = byIp.get(host.ip)!;
        const podIp = lease.subnet.replace(/\.0\/\d+$/, ".1");
        return { host, podIp, ...lease };
      });
      const gaps: string[] = [];
      for (const { host } of leases) {
        const routes = new Set(
          (await lab.run(host, ["ip", "-4", "route", "show"])).split("\n").map((line) => line.split(" ")[0]),
        );
        for (const peer of leases) {
          if (peer.host !== host && !routes.has(peer.subnet)) gaps.push(`${shortName(host)}→${peer.subnet}`);
        }
      }
      if (gaps.length === 0) return leases;
      missing = `routes ${gaps.join(", ")}`;
    }
    await sleep(POLL_MS);
  }
  throw new DemoError(
    `weftd did not program the datapath within ${READY_TIMEOUT_MS / 1000} s (missing ${missing})`,
  );
}

function shortName(host: LabHost): string {
  return `h${host.index}`;
}

function table(rows: readonly string[][]): string {
  const widths = rows[0]!.map((_, column) => Math.max(...rows.map((row) => [...row[column]!].length)));
  return rows
    .map((row) => `  ${row.map((cell, column) => cell.padEnd(widths[column]! + 2, " ")).join("")}`.trimEnd())
    .join("\n");
}

/** Pings a pod address from another host's pod address; the average rtt from ping's summary line. */
async function pingPair(lab: Lab, from: HostLease, to: HostLease): Promise<{ ok: boolean; ms?: number }> {
  const result = await lab.ping(from.host, to.podIp, { source: from.podIp, count: 3, intervalSeconds: 0.2 });
  const rtt = /= [\d.]+\/([\d.]+)\//.exec(result.output);
  // Every reply must come back: a lossy path is not a working one.
  return { ok: result.received === result.transmitted, ms: rtt ? Number(rtt[1]) : undefined };
}

async function run(lab: Lab, options: Options): Promise<boolean> {
  const started = performance.now();
  await lab.startEtcd();
  const config = JSON.stringify({ Network: NETWORK, Backend: { Type: options.backend } });
  await lab.etcdctl(["put", `${PREFIX}/config`, config]);
  step(`lab up: etcd + ${HOSTS} hosts on 172.31.0.0/16`, started);

  const weftdStarted = performance.now();
  const weftds = await Promise.all(lab.hosts.map((host) => lab.startWeftd(host)));
  const leases = await waitForDatapath(lab, weftds);
  step(`weftd on ${lab.hosts.map(shortName).join(" ")}: leases taken, peers programmed`, weftdStarted);
  await Promise.all(
    leases.map((lease) => lab.addPodAddress(lease.host, `${lease.podIp}/${lease.subnet.split("/")[1]}`)),
  );

  console.log(`\nleases in etcd (${PREFIX}/subnets, config ${config}):`);
  console.log(
    table([
      ["host", "public IP", "subnet", "VTEP MAC", "pod address"],
      ...leases.map((l) => [shortName(l.host), l.publicIp, l.subnet, l.vtepMac ?? "-", l.podIp]),
    ]),
  );

  // Six pings at once: each pair is independent and this keeps the demo short.
  const pairs = leases.flatMap((from) => leases.filter((to) => to !== from).map((to) => ({ from, to })));
  const results = await Promise.all(pairs.map(({ from, to }) => pingPair(lab, from, to)));
  const cell = (from: HostLease, to: HostLease) => {
    if (from === to) return "·";
    const result = results[pairs.findIndex((p) => p.from === from && p.to === to)]!;
    const latency = result.ms === undefined ? "" : ` ${result.ms.toFixed(2)} ms`;
    return `${result.ok ? "✓" : "✗"}${latency}`;
  };
  console.log(`\nping pod → pod (3 each, average round trip), ${options.backend}:`);
  console.log(
    table([
      ["from \\ to", ...leases.map((l) => `${shortName(l.host)} ${l.podIp}`)],
      ...leases.map((from) => [
        `${shortName(from.host)} ${from.podIp}`,
        ...leases.map((to) => cell(from, to)),
      ]),
    ]),
  );
  const failed = results.filter((r) => !r.ok).length;

  if (options.iperf && failed === 0) {
    const [h1, h2] = [leases[0]!, leases[1]!];
    const bits = await lab.iperf3(h2.host, h1.host, h2.podIp, { seconds: 2 });
    console.log(`\niperf3 h1 → h2 pod ${h2.podIp}, 2 s: ${(bits / 1e9).toFixed(2)} Gbit/s`);
  }

  console.log(
    failed === 0
      ? `\nall ${pairs.length} pairs reachable over ${options.backend}`
      : `\n${failed} of ${pairs.length} pairs unreachable`,
  );
  if (options.hold) await hold(lab, leases);
  return failed === 0;
}

/** Keeps the lab up for poking around; Ctrl-C tears it down (the lab's own signal handler). */
async function hold(lab: Lab, leases: readonly HostLease[]): Promise<void> {
  const [h1, h2] = [leases[0]!, leases[1]!];
  console.log(`\nthe lab stays up until Ctrl-C (at most ${HOLD_MAX_MS / 60_000} min). Try:`);
  console.log(`  ip netns exec ${h1.host.name} ping -I ${h1.podIp} ${h2.podIp}`);
  console.log(`  ip -n ${h1.host.name} -d route; ip -n ${h1.host.name} neigh; bridge -n ${h1.host.name} fdb`);
  console.log(`  ip netns exec ${lab.fabric} etcdctl --endpoints=${lab.etcdEndpoint} get --prefix ${PREFIX}`);
  await sleep(HOLD_MAX_MS);
}

async function main(): Promise<number> {
  let options: Options;
  try {
    options = parseArgs(process.argv.slice(2));
  } catch (err) {
    process.stderr.write(`demo: ${(err as Error).message}\n`);
    return 2;
  }
  if (process.getuid?.() !== 0) {
    process.stderr.write("demo: needs root to create network namespaces (sudo scripts/demo.sh)\n");
    return 2;
  }
  process.on("SIGINT", () => {
    interrupted = true;
  });
  console.log(`weft demo: ${HOSTS} hosts, backend ${options.backend}, network ${NETWORK}`);
  const lab = await Lab.create({ hosts: HOSTS, tag: "demo" });
  let code = 130;
  // A Ctrl-C that came before the lab registered its own handler: skip the run, still tear down.
  if (!interrupted) {
    try {
      code = (await run(lab, options)) ? 0 : 1;
    } catch (err) {
      code = 1;
      if (!interrupted) {
        const message = err instanceof DemoError ? err.message : (err as Error).stack;
        process.stderr.write(`\ndemo failed: ${message}\n`);
      }
    }
  }
  const teardown = performance.now();
  await lab.destroy();
  if (interrupted) return 130;
  console.log("");
  step("torn down: no namespaces or processes left", teardown);
  return code;
}

main().then(
  (code) => process.exit(interrupted ? 130 : code),
  (err: Error) => {
    process.stderr.write(`demo failed: ${err.stack}\n`);
    process.exit(1);
  },
);
