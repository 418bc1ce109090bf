// weftd at scale, in a one-host lab: 5,000 peer leases in etcd, then
//   1. cold start: weftd start -> every route, neighbour and FDB entry in the kernel; RSS then,
//   2. one new lease: etcd put -> its route in the kernel (ip monitor), repeated,
//   3. restart with everything already programmed: start -> "datapath programmed", changing nothing.
// Run as root after a build: node dist/bench/weftd-5000-leases.js [--leases 5000] [--runs 3]
//   [--samples 20] [--node-args "--max-semi-space-size=1"] [--cpu-prof DIR] [--json FILE]
// The same file, with "writer" as first argument, is the etcd writer the bench runs inside the fabric
// namespace (etcd is only reachable there).
import { readFileSync, writeFileSync } from "node:fs";
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

// ---- writer mode: `writer put|del <endpoint> <first> <count>`, inside the fabric namespace.

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
    else throw new Error(`unknown argument ${arg}`);
  }
  if (!(options.leases >= 1 && options.leases <= 60_000)) throw new Error("--leases is 1..60000");
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
  op: "put" | "del",
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

async function startWeftd(lab: Lab, host: LabHost, options: Options, label: string): Promise<LabProcess> {
  const nodeArgs = [...options.nodeArgs];
  if (options.cpuProf)
    nodeArgs.push("--cpu-prof", `--cpu-prof-dir=${options.cpuProf}`, `--cpu-prof-name=${label}.cpuprofile`);
  // weftd as it ships (its own Node flags), plus any given for this run.
  const [node, ...shipped] = weftdCommand();
  return lab.spawn(host, [
    node!,
    ...nodeArgs,
    ...shipped,
    `--etcd-endpoints=${lab.etcdEndpoint}`,
    "--iface=eth0",
    `--subnet-file=${lab.subnetFile(host)}`,
    "-v=1",
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

async function coldStart(lab: Lab, host: LabHost, options: Options, run: number) {
  // A cold host: no device, so no routes, neighbours or FDB entries.
  await runCommand(["ip", "-n", host.name, "link", "del", DEVICE]);
  const started = nowMs();
  const startedAt = new Date().toISOString();
  const weftd = await startWeftd(lab, host, options, `cold-${run}`);
  const deadline = started + PROGRAM_TIMEOUT_MS;
  const want = options.leases;
  let seen = { routes: 0, neighs: 0, fdbs: 0 };
  while (nowMs() < deadline) {
    if (!weftd.running) throw new Error(`weftd exited:\n${weftd.output().slice(-3000)}`);
    // Routes alone while they are missing (one dump instead of three keeps the poll off weftd's CPU);
    // then all three. Either way the time is only taken once all three are complete.
    const routes = await countRoutes(host);
    seen = routes === want ? await counts(host) : { routes, neighs: -1, fdbs: -1 };
    if (seen.routes === want && seen.neighs === want && seen.fdbs === want) {
      // The end of the first poll that saw everything: an upper bound.
      const elapsed = nowMs() - started;
      const mem = memory(weftd.pid);
      const logged = (await programmedAt(weftd, 5_000)) - started;
      return { weftd, startedAt, elapsedMs: elapsed, loggedMs: logged, ...mem };
    }
    await sleep(POLL_MS);
  }
  throw new Error(`cold start: after ${PROGRAM_TIMEOUT_MS} ms only ${JSON.stringify(seen)} of ${want}`);
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

async function restart(lab: Lab, host: LabHost, weftd: LabProcess, options: Options, run: number) {
  await weftd.stop("SIGTERM", 10_000);
  const started = nowMs();
  const startedAt = new Date().toISOString();
  const next = await startWeftd(lab, host, options, `restart-${run}`);
  const ready = (await programmedAt(next, PROGRAM_TIMEOUT_MS)) - started;
  const mem = memory(next.pid);
  await sleep(200);
  const changed = /reconciled: /.test(next.output());
  const after = await counts(host);
  return { weftd: next, startedAt, readyMs: ready, changed, after, ...mem };
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

async function bench(options: Options): Promise<void> {
  /** Profile name -> how long weftd took to be ready: only that window is summarized. */
  const profiled = new Map<string, number>();
  const info = machine();
  console.log(
    `weftd, ${options.leases} peer leases: ${info.date}, ${info.cpus} x ${info.model}, Linux ${info.kernel}, node ${info.node}`,
  );
  // Two cores: anything else running (a test suite) shows up directly in these numbers.
  if (loadavg()[0]! > 0.5) console.log(`warning: load average ${info.load}; the numbers will be inflated`);
  const lab = await Lab.create({ hosts: 1, tag: "bench" });
  try {
    const host = lab.host(1);
    await lab.startEtcd();
    await lab.etcdctl(["put", `${PREFIX}/config`, CONFIG]);
    const [putStart, putEnd] = await writeLeases(lab, "put", 0, options.leases);
    console.log(`wrote ${options.leases} leases in ${(putEnd - putStart).toFixed(0)} ms`);

    const cold = [];
    let weftd: LabProcess | undefined;
    for (let run = 1; run <= options.runs; run++) {
      await weftd?.stop("SIGTERM", 10_000);
      const result = await coldStart(lab, host, options, run);
      weftd = result.weftd;
      cold.push(result);
      profiled.set(`cold-${run}`, result.loggedMs);
      if (run === 1 && options.showLog)
        console.log(`weftd started ${result.startedAt}:\n${result.weftd.output()}`);
      console.log(
        `cold start ${run}: all ${options.leases} routes+neigh+fdb after ${result.elapsedMs.toFixed(0)} ms ` +
          `(weftd logs programmed at ${result.loggedMs.toFixed(0)} ms); RSS ${result.rssMB.toFixed(1)} MB (anon ${result.anonMB.toFixed(1)}), peak ${result.hwmMB.toFixed(1)} MB`,
      );
    }

    const { samples: latency, acks } = await leaseLatency(lab, host, options);
    const steady = memory(weftd!.pid);
    console.log(
      `lease put -> route: median ${percentile(latency, 50).toFixed(1)} ms, p95 ${percentile(latency, 95).toFixed(1)} ms, ` +
        `max ${Math.max(...latency).toFixed(1)} ms (${latency.length} samples; the etcd put itself: ` +
        `median ${percentile(acks, 50).toFixed(1)} ms); ` +
        `RSS afterwards ${steady.rssMB.toFixed(1)} MB (anon ${steady.anonMB.toFixed(1)})`,
    );

    const restarts = [];
    for (let run = 1; run <= options.runs; run++) {
      const result = await restart(lab, host, weftd!, options, run);
      weftd = result.weftd;
      restarts.push(result);
      profiled.set(`restart-${run}`, result.readyMs);
      if (run === 1 && options.showLog)
        console.log(`weftd restarted ${result.startedAt}:\n${result.weftd.output()}`);
      console.log(
        `restart ${run}: ready after ${result.readyMs.toFixed(0)} ms, ${result.changed ? "CHANGED the kernel" : "no kernel change"}, ` +
          `${result.after.routes}/${result.after.neighs}/${result.after.fdbs} entries; RSS ${result.rssMB.toFixed(1)} MB, peak ${result.hwmMB.toFixed(1)} MB`,
      );
    }
    await weftd?.stop("SIGTERM", 10_000);

    const median = (values: number[]) => percentile(values, 50);
    const summary = {
      machine: info,
      leases: options.leases,
      nodeArgs: options.nodeArgs,
      coldStartMs: median(cold.map((c) => c.elapsedMs)),
      coldStartRuns: cold.map((c) => Math.round(c.elapsedMs)),
      coldStartLoggedMs: median(cold.map((c) => c.loggedMs)),
      rssMB: median(cold.map((c) => c.rssMB)),
      hwmMB: median(cold.map((c) => c.hwmMB)),
      anonMB: median(cold.map((c) => c.anonMB)),
      leaseLatencyMedianMs: median(latency),
      leaseLatencyP95Ms: percentile(latency, 95),
      etcdPutMedianMs: percentile(acks, 50),
      steadyRssMB: steady.rssMB,
      restartReadyMs: median(restarts.map((r) => r.readyMs)),
      restartChanged: restarts.some((r) => r.changed),
      restartRssMB: median(restarts.map((r) => r.rssMB)),
    };
    console.log(
      `\nsummary: cold start ${summary.coldStartMs.toFixed(0)} ms (median of ${cold.length}; flanneld v0.20.2: 6300 ms), ` +
        `RSS ${summary.rssMB.toFixed(1)} MB (flanneld: 49 MB), lease latency median ${summary.leaseLatencyMedianMs.toFixed(1)} ms, ` +
        `restart ${summary.restartReadyMs.toFixed(0)} ms`,
    );
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
