// weftd at scale, in a one-host lab: 5,000 peer leases in etcd, then
//   1. cold start: start -> every route, neighbour and FDB entry in the kernel; RSS then,
//   2. one new lease: etcd put -> its route in the kernel (ip monitor), repeated,
//   3. restart with everything already programmed: start -> "datapath programmed", changing nothing,
//   4. one peer: all leases but one removed, cold start -> that peer programmed; RSS then and after a settle.
// Run as root after a build: node dist/bench/weftd-5000-leases.js [--leases 5000] [--runs 3]
//   [--samples 20] [--node-args "--max-semi-space-size=1"] [--cpu-prof DIR] [--json FILE]
//   [--flanneld PATH] [--show-log]
// Side by side with flanneld: --flanneld PATH (or env FLANNELD=PATH) names a flanneld binary (v0.20.2 is
// the reference); then every cold start (1 and 4) alternates weftd, flanneld, weftd, flanneld, ... in the
// same lab against the same etcd, and flanneld's lease latency (2) is taken too; the summary gives the
// ratios weftd/flanneld. Both run with the reference's command line
//   --etcd-endpoints=http://<etcd>:2379 --iface=eth0 --ip-masq --subnet-file=<file>
// under a clean environment (`env -i PATH=...`, as a service manager starts them: NODE_EXTRA_CA_CERTS
// alone adds ~50 ms to a Node start). Both find their own lease by the host's PublicIP and reuse it, so
// both see exactly the same peers; flannel.1 is deleted before every cold start.
// weftd's command is env WEFTD_CMD (split on spaces, e.g. `node --max-semi-space-size=1 dist/src/daemon/
// weftd-main.js` for the development build on Node) or, by default, the shipped Bun executable dist/bin/weftd.
// --node-args and --cpu-prof run the development build on this Node with those flags.
// The same file, with "writer" as first argument, is the etcd writer the bench runs inside the fabric
// namespace (etcd is only reachable there).
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { cpus, loadavg, release } from "node:os";
import { fileURLToPath } from "node:url";
import { Lab, type LabHost, type LabProcess, weftdCommand } from "../test/lab/lab.js";
import { runCommand } from "../test/lab/lab-command.js";

const PREFIX = "/coreos.com/network";
const CONFIG = '{"Network":"10.0.0.0/8","Backend":{"Type":"vxlan"}}';
const DEVICE = "flannel.1";
const POLL_MS = 50;
const PROGRAM_TIMEOUT_MS = 60_000;
const LEASE_LATENCY_TIMEOUT_MS = 5_000;
/** With one peer: how long after it is programmed the second memory reading is taken. */
/** Memory is read when the datapath is complete and again this long after (both daemons alike). */
const SETTLE_MS = 5_000;
/** The daemons' whole environment: a service manager's, without this shell's variables. */
const CLEAN_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
const SELF = fileURLToPath(import.meta.url);

// ---- the leases: peer i (0-based) is 10.<1 + i / 256>.<i % 256>.0/24 on host 172.31.<1 + i / 250>.<1 + i % 250>.
// The addresses need not exist: FDB entries point at them, nothing is sent. 172.31.0.x is the lab's own.

function leaseSubnet(i: number): string {
  return `10.${1 + (i >> 8)}.${i & 255}.0/24`;
}

function leaseKey(i: number): string {
  return `${PREFIX}/subnets/${leaseSubnet(i).replace("/", "-")}`;
}

/** Exactly what flanneld v0.20.2 writes for a vxlan host. */
function leaseValue(i: number): string {
  const publicIP = `172.31.${1 + Math.floor(i / 250)}.${1 + (i % 250)}`;
  const mac = ["0e", "77", i >> 16, (i >> 8) & 255, i & 255, 1]
    .map((b) => (typeof b === "string" ? b : b.toString(16).padStart(2, "0")))
    .join(":");
  return `{"PublicIP":"${publicIP}","PublicIPv6":null,"BackendType":"vxlan","BackendData":{"VNI":1,"VtepMAC":"${mac}"}}`;
}

// ---- writer mode: `writer put|del <endpoint> <first> <count>` or `writer clear <endpoint>`, inside the
// fabric namespace.

async function writer(args: string[]): Promise<void> {
  const [op, endpoint, firstText, countText] = args;
  const first = Number(firstText);
  const count = Number(countText);
  const b64 = (text: string) => Buffer.from(text).toString("base64");
  // etcd's JSON gateway, as weftd itself talks to etcd: no client library needed.
  const call = async (path: string, body: unknown) => {
    const response = await fetch(`${endpoint}${path}`, {
      method: "POST",
      body: JSON.stringify(body),
      signal: AbortSignal.timeout(20_000),
    });
    const json = (await response.json()) as { ID?: string; error?: string };
    if (!response.ok || json.error) throw new Error(`${path}: ${response.status} ${json.error ?? ""}`);
    return json;
  };
  if (op === "put") {
    // One etcd lease for all, 24 h as flanneld's: real peer leases carry one.
    const lease = count > 1 ? (await call("/v3/lease/grant", { TTL: 86_400 })).ID! : "0";
    await call("/v3/kv/range", { key: b64(`${PREFIX}/config`) }); // connected before the clock starts
    const started = process.hrtime.bigint();
    // Transactions of 128 puts (etcd's default --max-txn-ops): 40 commits for 5,000, not 5,000.
    for (let from = first; from < first + count; from += 128) {
      const ops = [];
      for (let i = from; i < Math.min(first + count, from + 128); i++) {
        ops.push({ request_put: { key: b64(leaseKey(i)), value: b64(leaseValue(i)), lease } });
      }
      await call("/v3/kv/txn", { success: ops });
    }
    // CLOCK_MONOTONIC, the same clock as the bench's hrtime, so the two can be compared.
    process.stdout.write(`${started} ${process.hrtime.bigint()}\n`);
  } else if (op === "del") {
    for (let k = 0; k < count; k++) await call("/v3/kv/deleterange", { key: b64(leaseKey(first + k)) });
  } else if (op === "clear") {
    // Every lease, the daemons' own too (they acquire one again at their next start).
    const prefix = `${PREFIX}/subnets/`;
    const end = prefix.slice(0, -1) + String.fromCharCode(prefix.charCodeAt(prefix.length - 1) + 1);
    await call("/v3/kv/deleterange", { key: b64(prefix), range_end: b64(end) });
  } else throw new Error(`writer: unknown op ${op}`);
}

// ---- the bench

interface Options {
  leases: number;
  runs: number;
  samples: number;
  nodeArgs: string[];
  cpuProf: string | undefined;
  json: string | undefined;
  /** Print weftd's log of the first cold start and restart (its klog timestamps show where startup time goes). */
  showLog: boolean;
  /** A flanneld binary to run side by side with weftd, or undefined for weftd alone. */
  flanneld: string | undefined;
}

function parseOptions(argv: string[]): Options {
  const options: Options = {
    leases: 5000,
    runs: 3,
    samples: 20,
    nodeArgs: [],
    cpuProf: undefined,
    json: undefined,
    showLog: false,
    flanneld: process.env["FLANNELD"] || undefined,
  };
  for (let i = 0; i < argv.length; i++) {
    const value = () => {
      const v = argv[++i];
      if (v === undefined) throw new Error(`${argv[i - 1]} needs a value`);
      return v;
    };
    const arg = argv[i];
    if (arg === "--leases") options.leases = Number(value());
    else if (arg === "--runs") options.runs = Number(value());
    else if (arg === "--samples") options.samples = Number(value());
    else if (arg === "--node-args") options.nodeArgs = value().split(/\s+/).filter(Boolean);
    else if (arg === "--cpu-prof") options.cpuProf = value();
    else if (arg === "--json") options.json = value();
    else if (arg === "--show-log") options.showLog = true;
    else if (arg === "--flanneld") options.flanneld = value();
    else throw new Error(`unknown argument ${arg}`);
  }
  if (!(options.leases >= 1 && options.leases <= 60_000)) throw new Error("--leases is 1..60000");
  if (!(options.runs >= 1)) throw new Error("--runs is at least 1");
  if (process.env["WEFTD_CMD"] && (options.nodeArgs.length > 0 || options.cpuProf))
    throw new Error("--node-args and --cpu-prof apply to the default weftd command, not to WEFTD_CMD");
  if (options.flanneld && !existsSync(options.flanneld))
    throw new Error(
      `flanneld: ${options.flanneld} does not exist (build flanneld v0.20.2, or drop --flanneld)`,
    );
  return options;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const nowMs = () => Number(process.hrtime.bigint()) / 1e6;

function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
}

function machine(): Record<string, string> {
  return {
    date: new Date().toISOString(),
    cpus: String(cpus().length),
    model: cpus()[0]?.model.trim() ?? "?",
    kernel: release(),
    node: process.version,
    etcd: "3.4 (Debian etcd-server), in the fabric namespace",
    load: loadavg()
      .map((l) => l.toFixed(2))
      .join(" "),
  };
}

async function writeLeases(
  lab: Lab,
  op: "put" | "del" | "clear",
  first: number,
  count: number,
): Promise<[number, number]> {
  const out = await lab.run(
    lab.fabric,
    [process.execPath, SELF, "writer", op, lab.etcdEndpoint, String(first), String(count)],
    { timeoutMs: 60_000 },
  );
  const [started, done] = out
    .trim()
    .split(" ")
    .map((t) => Number(BigInt(t)) / 1e6);
  return [started ?? 0, done ?? 0];
}

async function countLines(argv: string[], pattern: RegExp): Promise<number> {
  const result = await runCommand(argv, { timeoutMs: 10_000 });
  return result.code === 0 ? result.stdout.split("\n").filter((l) => pattern.test(l)).length : 0;
}

function countRoutes(host: LabHost): Promise<number> {
  return countLines(["ip", "-n", host.name, "-4", "route", "show", "dev", DEVICE], /onlink/);
}

/** Routes, permanent neighbours and FDB entries with a destination on flannel.1, counted with iproute2. */
async function counts(host: LabHost): Promise<{ routes: number; neighs: number; fdbs: number }> {
  const neighArgv = ["ip", "-n", host.name, "-4", "neigh", "show", "dev", DEVICE, "nud", "permanent"];
  const [routes, neighs, fdbs] = await Promise.all([
    countRoutes(host),
    countLines(neighArgv, /lladdr/),
    countLines(["bridge", "-n", host.name, "fdb", "show", "dev", DEVICE], / dst /),
  ]);
  return { routes, neighs, fdbs };
}

/** RSS (what flanneld's 49 MB is), its peak, and the anonymous part (heap; RSS minus the mapped node binary). */
function memory(pid: number): { rssMB: number; hwmMB: number; anonMB: number } {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  const mb = (field: string) =>
    Number(new RegExp(`^${field}:\\s+(\\d+) kB`, "m").exec(status)?.[1] ?? Number.NaN) / 1024;
  return { rssMB: mb("VmRSS"), hwmMB: mb("VmHWM"), anonMB: mb("RssAnon") };
}

/** One of the daemons under test: weftd, or flanneld beside it. */
interface Daemon {
  readonly name: "weftd" | "flanneld";
  /** The program and its own leading arguments, per start (a CPU profile is named by the start's label). */
  readonly command: (label: string) => string[];
  /** Flags beyond the reference's command line. */
  readonly extraFlags: string[];
}

function weftdDaemon(options: Options): Daemon {
  const override = process.env["WEFTD_CMD"]?.split(/\s+/).filter(Boolean);
  const command = (label: string) => {
    if (override?.length) return override;
    if (options.nodeArgs.length === 0 && !options.cpuProf) return weftdCommand();
    const nodeArgs = [...options.nodeArgs];
    if (options.cpuProf)
      nodeArgs.push("--cpu-prof", `--cpu-prof-dir=${options.cpuProf}`, `--cpu-prof-name=${label}.cpuprofile`);
    return [
      process.execPath,
      ...nodeArgs,
      fileURLToPath(new URL("../src/daemon/weftd-main.js", import.meta.url)),
    ];
  };
  // -v=1: weftd logs a summary line for each reconcile that changed the kernel (a restart must not).
  return { name: "weftd", command, extraFlags: ["-v=1"] };
}

function flanneldDaemon(path: string): Daemon {
  return { name: "flanneld", command: () => [path], extraFlags: [] };
}

/** Starts a daemon as the reference started flanneld, with a clean environment. */
async function startDaemon(lab: Lab, host: LabHost, daemon: Daemon, label: string): Promise<LabProcess> {
  return lab.spawn(host, [
    "env",
    "-i",
    `PATH=${CLEAN_PATH}`,
    ...daemon.command(label),
    `--etcd-endpoints=${lab.etcdEndpoint}`,
    "--iface=eth0",
    "--ip-masq",
    `--subnet-file=${lab.subnetFile(host)}`,
    ...daemon.extraFlags,
  ]);
}

/** weftd's own "datapath programmed" line, as ms on our monotonic clock (klog stamps are wall-clock ms). */
async function programmedAt(weftd: LabProcess, timeoutMs: number): Promise<number> {
  const match = await weftd.waitForOutput(
    /^I\d{4} (\d\d):(\d\d):(\d\d)\.(\d{3})\d* +\d+ weftd\] datapath programmed/m,
    timeoutMs,
  );
  const now = new Date();
  const stamp = Date.UTC(
    now.getUTCFullYear(),
    now.getUTCMonth(),
    now.getUTCDate(),
    +match[1]!,
    +match[2]!,
    +match[3]!,
    +match[4]!,
  );
  return nowMs() - (Date.now() - stamp);
}

/** Load average (1 min) now: two cores, so another helper's test suite shows in every figure. */
const load1 = () => Number(loadavg()[0]!.toFixed(2));

/** Cold host -> `want` routes, neighbours and FDB entries programmed by daemon; memory at that moment. */
async function coldStart(lab: Lab, host: LabHost, daemon: Daemon, want: number, label: string) {
  // A cold host: no device, so no routes, neighbours or FDB entries.
  await runCommand(["ip", "-n", host.name, "link", "del", DEVICE]);
  const loadBefore = load1();
  const started = nowMs();
  const startedAt = new Date().toISOString();
  const proc = await startDaemon(lab, host, daemon, label);
  const deadline = started + PROGRAM_TIMEOUT_MS;
  let seen = { routes: 0, neighs: 0, fdbs: 0 };
  while (nowMs() < deadline) {
    if (!proc.running) throw new Error(`${daemon.name} exited:\n${proc.output().slice(-3000)}`);
    // Routes alone while they are missing (one dump instead of three keeps the poll off the daemon's CPU);
    // then all three. Either way the time is only taken once all three are complete.
    const routes = await countRoutes(host);
    seen = routes === want ? await counts(host) : { routes, neighs: -1, fdbs: -1 };
    if (seen.routes === want && seen.neighs === want && seen.fdbs === want) {
      // The end of the first poll that saw everything: an upper bound.
      const elapsed = nowMs() - started;
      const mem = memory(proc.pid);
      // Only weftd logs when its datapath is programmed.
      const logged = daemon.name === "weftd" ? (await programmedAt(proc, 5_000)) - started : Number.NaN;
      return { proc, startedAt, elapsedMs: elapsed, loggedMs: logged, load: loadBefore, ...mem };
    }
    await sleep(POLL_MS);
  }
  throw new Error(
    `${daemon.name} cold start: after ${PROGRAM_TIMEOUT_MS} ms only ${JSON.stringify(seen)} of ${want}\n` +
      proc.output().slice(-3000),
  );
}

/** Put -> route samples, and how much of each the etcd put itself took (commit, until acked). */
async function leaseLatency(
  lab: Lab,
  host: LabHost,
  options: Options,
): Promise<{ samples: number[]; acks: number[] }> {
  const monitor = await lab.spawn(host, ["ip", "monitor", "route"]);
  await sleep(300); // subscribed long before the first put
  const samples: number[] = [];
  const acks: number[] = [];
  try {
    for (let k = 0; k < options.samples; k++) {
      const i = options.leases + k;
      const escaped = leaseSubnet(i).replace(/\./g, "\\.");
      const seen = monitor
        .waitForOutput(new RegExp(`^${escaped} via`, "m"), LEASE_LATENCY_TIMEOUT_MS)
        .then(nowMs);
      const [putStarted, putAcked] = await writeLeases(lab, "put", i, 1);
      samples.push((await seen) - putStarted);
      acks.push(putAcked - putStarted);
      await sleep(100);
    }
  } finally {
    await monitor.stop("SIGTERM", 2_000);
  }
  // Back to exactly options.leases peers for the restart.
  await writeLeases(lab, "del", options.leases, options.samples);
  const deadline = nowMs() + 10_000;
  while ((await counts(host)).routes !== options.leases && nowMs() < deadline) await sleep(POLL_MS);
  return { samples, acks };
}

async function restart(lab: Lab, host: LabHost, weftd: LabProcess, daemon: Daemon, run: number) {
  await weftd.stop("SIGTERM", 10_000);
  const load = load1();
  const started = nowMs();
  const startedAt = new Date().toISOString();
  const next = await startDaemon(lab, host, daemon, `restart-${run}`);
  const ready = (await programmedAt(next, PROGRAM_TIMEOUT_MS)) - started;
  const mem = memory(next.pid);
  await sleep(200);
  // The reconciler's summary (-v=1), logged only when it changed something.
  const changed = /reconciled \((full|quick)\): /.test(next.output());
  const after = await counts(host);
  return { weftd: next, startedAt, readyMs: ready, changed, after, load, ...mem };
}

interface CpuProfile {
  nodes: {
    id: number;
    children?: number[];
    callFrame: { functionName: string; url: string; lineNumber: number };
  }[];
  samples: number[];
  timeDeltas: number[];
}

/**
 * Where weftd's time went until it was ready (windowMs from its start): self and inclusive time per
 * function, and self time per file or npm package, from a V8 .cpuprofile.
 */
function summarizeProfile(path: string, windowMs: number): string {
  const profile = JSON.parse(readFileSync(path, "utf8")) as CpuProfile;
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const parentOf = new Map<number, number>();
  for (const node of profile.nodes) for (const child of node.children ?? []) parentOf.set(child, node.id);
  const where = (id: number) =>
    byId
      .get(id)!
      .callFrame.url.replace(/^file:\/\//, "")
      .replace(/.*\/node_modules\//, "npm:")
      .replace(/.*\/dist\//, "");
  const label = (id: number) => {
    const { functionName, lineNumber } = byId.get(id)!.callFrame;
    const file = where(id);
    return `${functionName || "(anonymous)"}${file ? ` ${file.split("/").pop()}:${lineNumber + 1}` : ""}`;
  };
  const self = new Map<string, number>();
  const inclusive = new Map<string, number>();
  const byFile = new Map<string, number>();
  const add = (map: Map<string, number>, key: string, us: number) => map.set(key, (map.get(key) ?? 0) + us);
  let elapsedUs = 0;
  let total = 0;
  profile.samples.forEach((id, k) => {
    const us = profile.timeDeltas[k] ?? 0;
    elapsedUs += us;
    if (elapsedUs > windowMs * 1000) return;
    total += us;
    add(self, label(id), us);
    const file = where(id);
    add(byFile, file.startsWith("npm:") ? file.split("/").slice(0, 2).join("/") : file || label(id), us);
    const seen = new Set<string>();
    for (let at: number | undefined = id; at !== undefined; at = parentOf.get(at)) {
      const name = label(at);
      if (name !== "(root)" && !seen.has(name)) add(inclusive, name, us);
      seen.add(name);
    }
  });
  const top = (map: Map<string, number>, count: number) =>
    [...map]
      .sort((a, b) => b[1] - a[1])
      .slice(0, count)
      .map(
        ([key, us]) =>
          `    ${(us / 1000).toFixed(0).padStart(6)} ms ${((100 * us) / total).toFixed(0).padStart(3)}%  ${key}`,
      )
      .join("\n");
  return (
    `${path}: first ${windowMs.toFixed(0)} ms, ${(total / 1000).toFixed(0)} ms sampled\n` +
    `  self, by file or package:\n${top(byFile, 12)}\n  self, by function:\n${top(self, 15)}\n` +
    `  inclusive, by function:\n${top(inclusive, 25)}`
  );
}

/** A cold start, with its memory once more after SETTLE_MS. */
type ColdResult = Awaited<ReturnType<typeof coldStart>> & { settled: ReturnType<typeof memory> };
const median = (values: number[]) => percentile(values, 50);
const mbs = (mem: { rssMB: number; hwmMB: number; anonMB: number }) =>
  `RSS ${mem.rssMB.toFixed(1)} MB (anon ${mem.anonMB.toFixed(1)}), peak ${mem.hwmMB.toFixed(1)} MB`;

/** The first line of `flanneld --version`, for the record. */
async function flanneldVersion(path: string): Promise<string> {
  const result = await runCommand([path, "--version"], { timeoutMs: 10_000 });
  return (result.stdout + result.stderr).trim().split("\n")[0] ?? "?";
}

/** Medians of a side's cold starts, for the summary and the JSON. */
function coldSummary(runs: ColdResult[]) {
  return {
    coldStartMs: median(runs.map((c) => c.elapsedMs)),
    coldStartRuns: runs.map((c) => Math.round(c.elapsedMs)),
    loadAtRuns: runs.map((c) => c.load),
    rssMB: median(runs.map((c) => c.rssMB)),
    hwmMB: median(runs.map((c) => c.hwmMB)),
    anonMB: median(runs.map((c) => c.anonMB)),
    settledRssMB: median(runs.map((c) => c.settled.rssMB)),
    settledAnonMB: median(runs.map((c) => c.settled.anonMB)),
  };
}

interface OnePeerResult {
  elapsedMs: number;
  load: number;
  programmed: { rssMB: number; hwmMB: number; anonMB: number };
  settled: { rssMB: number; hwmMB: number; anonMB: number };
}

function onePeerSummary(runs: OnePeerResult[]) {
  return {
    coldStartMs: median(runs.map((r) => r.elapsedMs)),
    loadAtRuns: runs.map((r) => r.load),
    rssMB: median(runs.map((r) => r.programmed.rssMB)),
    anonMB: median(runs.map((r) => r.programmed.anonMB)),
    settledRssMB: median(runs.map((r) => r.settled.rssMB)),
    settledAnonMB: median(runs.map((r) => r.settled.anonMB)),
    settledHwmMB: median(runs.map((r) => r.settled.hwmMB)),
  };
}

/** The side-by-side table: weftd, flanneld and weftd/flanneld for each figure. */
function sideBySide(rows: [string, number, number, number][]): string {
  const cell = (n: number, digits: number) => (Number.isFinite(n) ? n.toFixed(digits) : "-");
  const lines = [
    "| | weftd | flanneld | weftd/flanneld |",
    "| --- | ---: | ---: | ---: |",
    ...rows.map(
      ([label, weft, flannel, digits]) =>
        `| ${label} | ${cell(weft, digits)} | ${cell(flannel, digits)} | ${cell(weft / flannel, 2)}x |`,
    ),
  ];
  return lines.join("\n");
}

async function bench(options: Options): Promise<void> {
  /** Profile name -> how long weftd took to be ready: only that window is summarized. */
  const profiled = new Map<string, number>();
  const info = machine();
  const weft = weftdDaemon(options);
  const flannel = options.flanneld ? flanneldDaemon(options.flanneld) : undefined;
  const daemons = flannel ? [weft, flannel] : [weft];
  const record = {
    ...info,
    weftd: weft.command("cold-1").join(" "),
    flanneld: flannel ? `${options.flanneld} (${await flanneldVersion(options.flanneld!)})` : "none",
  };
  console.log(
    `weftd, ${options.leases} peer leases: ${info.date}, ${info.cpus} x ${info.model}, Linux ${info.kernel}, node ${info.node}`,
  );
  console.log(`weftd: ${record.weftd}\nflanneld: ${record.flanneld}`);
  // Two cores: anything else running (a test suite) shows up directly in these numbers.
  if (loadavg()[0]! > 0.5) console.log(`warning: load average ${info.load}; the numbers will be inflated`);
  const lab = await Lab.create({ hosts: 1, tag: "bench" });
  try {
    const host = lab.host(1);
    await lab.startEtcd();
    await lab.etcdctl(["put", `${PREFIX}/config`, CONFIG]);
    const [putStart, putEnd] = await writeLeases(lab, "put", 0, options.leases);
    console.log(`wrote ${options.leases} leases in ${(putEnd - putStart).toFixed(0)} ms`);

    // 1. Cold starts, alternating weftd and flanneld so a change in the machine's load hits both alike.
    const cold = new Map<string, ColdResult[]>(daemons.map((d) => [d.name, []]));
    let running: LabProcess | undefined;
    for (let run = 1; run <= options.runs; run++) {
      for (const daemon of daemons) {
        await running?.stop("SIGTERM", 10_000);
        const programmed = await coldStart(lab, host, daemon, options.leases, `cold-${run}`);
        running = programmed.proc;
        await sleep(SETTLE_MS);
        const result = { ...programmed, settled: memory(programmed.proc.pid) };
        cold.get(daemon.name)!.push(result);
        if (daemon === weft) profiled.set(`cold-${run}`, result.loggedMs);
        if (run === 1 && options.showLog)
          console.log(`${daemon.name} started ${result.startedAt}:\n${result.proc.output()}`);
        const logged = daemon === weft ? ` (weftd logs programmed at ${result.loggedMs.toFixed(0)} ms)` : "";
        console.log(
          `${daemon.name} cold start ${run}: all ${options.leases} routes+neigh+fdb after ${result.elapsedMs.toFixed(0)} ms` +
            `${logged}; ${mbs(result)}; after ${SETTLE_MS / 1000} s ${mbs(result.settled)}; load ${result.load}`,
        );
      }
    }

    // 2. Put -> route, flanneld's first (it is the one running), then weftd's after one more cold start.
    const latency = new Map<string, { samples: number[]; acks: number[]; load: number }>();
    let flannelSteady: ReturnType<typeof memory> | undefined;
    if (flannel) {
      const load = load1();
      latency.set(flannel.name, { ...(await leaseLatency(lab, host, options)), load });
      await sleep(SETTLE_MS);
      flannelSteady = memory(running!.pid);
      await running!.stop("SIGTERM", 10_000);
      // Not counted: it hands the kernel state back to weftd, for its lease latency and restarts.
      running = (await coldStart(lab, host, weft, options.leases, "handover")).proc;
    }
    const load = load1();
    latency.set(weft.name, { ...(await leaseLatency(lab, host, options)), load });
    await sleep(SETTLE_MS);
    const steady = memory(running!.pid);
    for (const [name, { samples, acks, load }] of latency) {
      const steadyMem = name === weft.name ? steady : flannelSteady!;
      console.log(
        `${name} lease put -> route: median ${percentile(samples, 50).toFixed(1)} ms, p95 ${percentile(samples, 95).toFixed(1)} ms, ` +
          `max ${Math.max(...samples).toFixed(1)} ms (${samples.length} samples; the etcd put itself: ` +
          `median ${percentile(acks, 50).toFixed(1)} ms); ` +
          `RSS ${SETTLE_MS / 1000} s after the last ${steadyMem.rssMB.toFixed(1)} MB (anon ${steadyMem.anonMB.toFixed(1)}); load ${load}`,
      );
    }

    // 3. weftd restarts with everything programmed.
    const restarts = [];
    let weftd = running!;
    for (let run = 1; run <= options.runs; run++) {
      const result = await restart(lab, host, weftd, weft, run);
      weftd = result.weftd;
      restarts.push(result);
      profiled.set(`restart-${run}`, result.readyMs);
      if (run === 1 && options.showLog)
        console.log(`weftd restarted ${result.startedAt}:\n${result.weftd.output()}`);
      console.log(
        `restart ${run}: ready after ${result.readyMs.toFixed(0)} ms, ${result.changed ? "CHANGED the kernel" : "no kernel change"}, ` +
          `${result.after.routes}/${result.after.neighs}/${result.after.fdbs} entries; ${mbs(result)}; load ${result.load}`,
      );
    }
    await weftd.stop("SIGTERM", 10_000);

    // 4. One peer: every lease gone but peer 0's, then cold starts, alternating again.
    await writeLeases(lab, "clear", 0, 0);
    await writeLeases(lab, "put", 0, 1);
    const onePeer = new Map<string, OnePeerResult[]>(daemons.map((d) => [d.name, []]));
    running = undefined;
    for (let run = 1; run <= options.runs; run++) {
      for (const daemon of daemons) {
        await running?.stop("SIGTERM", 10_000);
        const result = await coldStart(lab, host, daemon, 1, `one-peer-${run}`);
        running = result.proc;
        await sleep(SETTLE_MS);
        const settled = memory(result.proc.pid);
        onePeer.get(daemon.name)!.push({
          elapsedMs: result.elapsedMs,
          load: result.load,
          programmed: result,
          settled,
        });
        console.log(
          `${daemon.name} one peer ${run}: programmed after ${result.elapsedMs.toFixed(0)} ms, ${mbs(result)}; ` +
            `after ${SETTLE_MS / 1000} s ${mbs(settled)}; load ${result.load}`,
        );
      }
    }
    await running?.stop("SIGTERM", 10_000);

    const weftCold = coldSummary(cold.get(weft.name)!);
    const weftLatency = latency.get(weft.name)!;
    const weftOne = onePeerSummary(onePeer.get(weft.name)!);
    const summary = {
      machine: record,
      leases: options.leases,
      nodeArgs: options.nodeArgs,
      ...weftCold,
      coldStartLoggedMs: median(cold.get(weft.name)!.map((c) => c.loggedMs)),
      leaseLatencyMedianMs: median(weftLatency.samples),
      leaseLatencyP95Ms: percentile(weftLatency.samples, 95),
      etcdPutMedianMs: percentile(weftLatency.acks, 50),
      steadyRssMB: steady.rssMB,
      restartReadyMs: median(restarts.map((r) => r.readyMs)),
      restartChanged: restarts.some((r) => r.changed),
      restartRssMB: median(restarts.map((r) => r.rssMB)),
      onePeer: weftOne,
      flanneld: flannel
        ? {
            ...coldSummary(cold.get(flannel.name)!),
            leaseLatencyMedianMs: median(latency.get(flannel.name)!.samples),
            leaseLatencyP95Ms: percentile(latency.get(flannel.name)!.samples, 95),
            steadyRssMB: flannelSteady!.rssMB,
            onePeer: onePeerSummary(onePeer.get(flannel.name)!),
          }
        : null,
    };
    console.log(
      `\nsummary: weftd cold start ${summary.coldStartMs.toFixed(0)} ms (median of ${options.runs}), ` +
        `RSS ${summary.rssMB.toFixed(1)} MB, lease latency median ${summary.leaseLatencyMedianMs.toFixed(1)} ms, ` +
        `restart ${summary.restartReadyMs.toFixed(0)} ms, one peer RSS ${weftOne.settledRssMB.toFixed(1)} MB`,
    );
    const f = summary.flanneld;
    if (f) {
      const ratios = {
        coldStart: summary.coldStartMs / f.coldStartMs,
        rss: summary.rssMB / f.rssMB,
        onePeerRss: weftOne.settledRssMB / f.onePeer.settledRssMB,
        onePeerRssDeltaMB: weftOne.settledRssMB - f.onePeer.settledRssMB,
      };
      Object.assign(summary, { ratios });
      console.log(
        `\nside by side, medians of ${options.runs} cold starts each, alternating (load ${info.load} at the start, ${load1()} now):\n` +
          sideBySide([
            [`cold start to ${options.leases} peers, ms`, summary.coldStartMs, f.coldStartMs, 0],
            [`RSS at ${options.leases} peers, MB`, summary.rssMB, f.rssMB, 1],
            [
              `RSS at ${options.leases} peers ${SETTLE_MS / 1000} s later, MB`,
              summary.settledRssMB,
              f.settledRssMB,
              1,
            ],
            [`anon RSS then, MB`, summary.settledAnonMB, f.settledAnonMB, 1],
            [`RSS ${SETTLE_MS / 1000} s after the lease events, MB`, summary.steadyRssMB, f.steadyRssMB, 1],
            [`peak RSS at ${options.leases} peers, MB`, summary.hwmMB, f.hwmMB, 1],
            [`anon RSS at ${options.leases} peers, MB`, summary.anonMB, f.anonMB, 1],
            ["lease put -> route median, ms", summary.leaseLatencyMedianMs, f.leaseLatencyMedianMs, 1],
            ["1 peer: RSS when programmed, MB", weftOne.rssMB, f.onePeer.rssMB, 1],
            [`1 peer: RSS ${SETTLE_MS / 1000} s later, MB`, weftOne.settledRssMB, f.onePeer.settledRssMB, 1],
            ["1 peer: anon RSS then, MB", weftOne.settledAnonMB, f.onePeer.settledAnonMB, 1],
          ]) +
          `\n1 peer: weftd - flanneld = ${ratios.onePeerRssDeltaMB.toFixed(1)} MB`,
      );
    }
    if (options.json) writeFileSync(options.json, `${JSON.stringify(summary, null, 2)}\n`);
  } finally {
    await lab.destroy();
  }
  if (options.cpuProf)
    for (const [label, windowMs] of profiled)
      console.log(`\n${summarizeProfile(`${options.cpuProf}/${label}.cpuprofile`, windowMs)}`);
}

if (process.argv[2] === "writer") {
  await writer(process.argv.slice(3));
} else {
  if (process.getuid?.() !== 0) {
    console.error("weftd-5000-leases: run as root (it builds a namespace lab)");
    process.exit(2);
  }
  await bench(parseOptions(process.argv.slice(2)));
}
