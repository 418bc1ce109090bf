/**
 * ADD/DEL latency of the flannel CNI plugin (delegating to the reference bridge + host-local) against the
 * bridge plugin alone given the same generated delegate config, over 40 pods, plus `node -e 0` as the floor
 * of any Node.js plugin. Needs root: every pod is a network namespace, and the plugins run inside a "host"
 * namespace made for the bench so the bridge never lands in the root namespace.
 *
 *   node dist/bench/cni-latency.js [pods]
 */
import { spawnSync } from "node:child_process";
import {
  copyFileSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
const pluginDir = join(repoRoot, "dist/src/cni");
const cniBin = "/usr/lib/cni";
const tag = process.pid;

interface Plan {
  readonly dir: string;
  readonly plugin: string;
  readonly pods: string[];
  readonly config: string;
}

function mustRun(cmd: string, args: string[]): void {
  const r = spawnSync(cmd, args, { encoding: "utf8", timeout: 30_000 });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(" ")}: ${r.stderr || r.error}`);
}

function timed(cmd: string, args: string[], env: NodeJS.ProcessEnv, input: string): number {
  const start = process.hrtime.bigint();
  const r = spawnSync(cmd, args, { env, input, encoding: "utf8", timeout: 30_000 });
  const ms = Number(process.hrtime.bigint() - start) / 1e6;
  if (r.status !== 0)
    throw new Error(`${cmd} ${args.join(" ")} ${env["CNI_COMMAND"] ?? ""}: ${r.stdout} ${r.stderr}`);
  return ms;
}

function stats(samples: number[]): { mean: number; p50: number; p95: number } {
  const s = [...samples].sort((a, b) => a - b);
  const at = (q: number) => s[Math.min(s.length - 1, Math.ceil(q * s.length) - 1)]!;
  return { mean: s.reduce((a, b) => a + b, 0) / s.length, p50: at(0.5), p95: at(0.95) };
}

/** Runs inside the bench's host namespace: the measurements. */
function measure(plan: Plan): void {
  const envFor = (command: string, pod: string): NodeJS.ProcessEnv => ({
    ...process.env,
    CNI_COMMAND: command,
    CNI_CONTAINERID: pod,
    CNI_NETNS: `/run/netns/${pod}`,
    CNI_IFNAME: "eth0",
    CNI_PATH: cniBin,
  });
  const rows: [string, number[]][] = [];

  const baseline: number[] = [];
  for (let i = 0; i < plan.pods.length; i++)
    baseline.push(timed(process.execPath, ["-e", "0"], process.env, ""));
  rows.push(["node -e 0", baseline]);

  const flannelAdd: number[] = [];
  const flannelDel: number[] = [];
  let delegateConfig = "";
  for (const pod of plan.pods) {
    flannelAdd.push(timed(process.execPath, [plan.plugin], envFor("ADD", pod), plan.config));
    delegateConfig ||= readFileSync(join(plan.dir, "flannel", pod), "utf8");
  }
  for (const pod of plan.pods)
    flannelDel.push(timed(process.execPath, [plan.plugin], envFor("DEL", pod), plan.config));
  rows.push(["flannel ADD", flannelAdd], ["flannel DEL", flannelDel]);

  const bridgeAdd: number[] = [];
  const bridgeDel: number[] = [];
  for (const pod of plan.pods)
    bridgeAdd.push(timed(join(cniBin, "bridge"), [], envFor("ADD", pod), delegateConfig));
  for (const pod of plan.pods)
    bridgeDel.push(timed(join(cniBin, "bridge"), [], envFor("DEL", pod), delegateConfig));
  rows.push(["bridge ADD", bridgeAdd], ["bridge DEL", bridgeDel]);

  const pad = (s: string, n: number) => s.padStart(n);
  console.log(`CNI latency over ${plan.pods.length} pods (ms; node ${process.version})`);
  console.log(`${"".padEnd(12)}${pad("mean", 9)}${pad("p50", 9)}${pad("p95", 9)}`);
  for (const [name, samples] of rows) {
    const s = stats(samples);
    console.log(
      `${name.padEnd(12)}${pad(s.mean.toFixed(1), 9)}${pad(s.p50.toFixed(1), 9)}${pad(s.p95.toFixed(1), 9)}`,
    );
  }
  const overhead = (a: number[], b: number[]) => (stats(a).mean - stats(b).mean).toFixed(1);
  console.log(
    `flannel overhead over bridge alone: ADD ${overhead(flannelAdd, bridgeAdd)} ms, DEL ${overhead(flannelDel, bridgeDel)} ms (mean)`,
  );
}

/** Runs in the root namespace: makes the namespaces and files, runs `measure` in the host namespace, cleans. */
function main(): void {
  if (process.getuid?.() !== 0) {
    console.error("cni-latency needs root (it creates network namespaces)");
    process.exitCode = 1;
    return;
  }
  const count = Number(process.argv[2] ?? 40);
  const hostNs = `weft-bench-host-${tag}`;
  const pods = Array.from({ length: count }, (_, i) => `weft-bench-${tag}-${i}`);
  const created: string[] = [];
  const dir = mkdtempSync(join(tmpdir(), "weft-cni-bench-"));
  try {
    for (const ns of [hostNs, ...pods]) {
      mustRun("ip", ["netns", "add", ns]);
      created.push(ns);
      mustRun("ip", ["-n", ns, "link", "set", "lo", "up"]);
    }
    const subnetFile = join(dir, "subnet.env");
    writeFileSync(
      subnetFile,
      "FLANNEL_NETWORK=10.253.0.0/16\nFLANNEL_SUBNET=10.253.4.1/24\nFLANNEL_MTU=1450\nFLANNEL_IPMASQ=true\n",
    );
    const config = JSON.stringify({
      cniVersion: "1.0.0",
      name: `weftbench${tag}`,
      type: "flannel",
      subnetFile,
      dataDir: join(dir, "flannel"),
      ipam: { dataDir: join(dir, "ipam") },
      delegate: { hairpinMode: true, isDefaultGateway: true },
    });
    // A private copy, as installed on a node: a rebuild of dist/ meanwhile cannot disturb the bench.
    const installed = join(dir, "plugin");
    mkdirSync(installed);
    for (const f of readdirSync(pluginDir).filter((n) => n.endsWith(".js")))
      copyFileSync(join(pluginDir, f), join(installed, f));
    writeFileSync(join(installed, "package.json"), '{"type":"module"}\n');
    const plan: Plan = { dir, plugin: join(installed, "flannel-main.js"), pods, config };
    const inner = spawnSync(
      "ip",
      [
        "netns",
        "exec",
        hostNs,
        process.execPath,
        fileURLToPath(import.meta.url),
        "--inner",
        JSON.stringify(plan),
      ],
      { stdio: "inherit", timeout: 600_000 },
    );
    if (inner.status !== 0) process.exitCode = 1;
  } finally {
    for (const ns of created.reverse()) spawnSync("ip", ["netns", "del", ns], { timeout: 30_000 });
    rmSync(dir, { recursive: true, force: true });
  }
}

if (process.argv[2] === "--inner") measure(JSON.parse(process.argv[3]!) as Plan);
else main();
