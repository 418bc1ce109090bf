/**
 * ADD/DEL latency of the flannel CNI plugin (delegating to the reference bridge + host-local) against the
 * bridge plugin alone given the same generated delegate config, over 40 pods, with `node -e 0` as the floor
 * of any Node.js plugin. The plugin's own cost is flannel - node -e 0 - bridge, computed per round: every
 * round runs each variant once, in rotating order, so a busy machine slows all of them alike.
 * Needs root: every pod is a network namespace, and the plugins run inside a "host" namespace made for the
 * bench so the bridge never lands in the root namespace.
 *
 *   node dist/bench/cni-latency.js [pods] [label=plugin.js ...]
 *
 * Without plugins it measures the package's bin (what ships) and, if that is a bundle, the unbundled
 * tsc output too. A single-file plugin (.cjs) is installed as an extensionless `flannel`, as in
 * /opt/cni/bin; an ES module is installed with its sibling modules.
 */
import { spawnSync } from "node:child_process";
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { loadavg, tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
const cniBin = "/usr/lib/cni";
const tag = process.pid;
const warmups = 3;

interface Variant {
  readonly label: string;
  /** The installed copy. */
  readonly plugin: string;
  /** This variant's pods (netns names, also container IDs). */
  readonly pods: string[];
  readonly dataDir: string;
}

interface Plan {
  readonly rounds: number;
  readonly config: (dataDir: string) => string;
  readonly variants: Variant[];
  readonly bridgePods: string[];
  readonly warmPod: string;
}

interface PlanJson extends Omit<Plan, "config"> {
  readonly configTemplate: Record<string, unknown>;
}

function mustRun(cmd: string, args: string[]): void {
  const r = spawnSync(cmd, args, { encoding: "utf8", timeout: 30_000 });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(" ")}: ${r.stderr || r.error}`);
}

/** CPU time (user + system, ms) of every child this process has waited for: load-independent work. */
function childCpuMs(): number {
  const stat = readFileSync("/proc/self/stat", "utf8");
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  // Fields 16 and 17 of proc(5) (cutime, cstime), counted from field 3 here; in clock ticks of 10 ms.
  return (Number(fields[13]) + Number(fields[14])) * 10;
}

interface Sample {
  wall: number;
  cpu: number;
}

function timed(cmd: string, args: string[], env: NodeJS.ProcessEnv, input: string): Sample {
  const cpu0 = childCpuMs();
  const start = process.hrtime.bigint();
  const r = spawnSync(cmd, args, { env, input, encoding: "utf8", timeout: 30_000 });
  const wall = Number(process.hrtime.bigint() - start) / 1e6;
  if (r.status !== 0)
    throw new Error(`${cmd} ${args.join(" ")} ${env["CNI_COMMAND"] ?? ""}: ${r.stdout} ${r.stderr}`);
  return { wall, cpu: childCpuMs() - cpu0 };
}

function stats(samples: number[]): { mean: number; p50: number; p95: number } {
  const s = [...samples].sort((a, b) => a - b);
  const at = (q: number) => s[Math.min(s.length - 1, Math.ceil(q * s.length) - 1)]!;
  return { mean: s.reduce((a, b) => a + b, 0) / s.length, p50: at(0.5), p95: at(0.95) };
}

/** Runs every step of a round in an order rotated by the round number. */
function rotated<T>(steps: T[], round: number): T[] {
  const k = round % steps.length;
  return [...steps.slice(k), ...steps.slice(0, k)];
}

/** Runs inside the bench's host namespace: the measurements. */
function measure(plan: Plan): void {
  const envFor = (command: string, pod = ""): NodeJS.ProcessEnv => ({
    ...process.env,
    CNI_COMMAND: command,
    CNI_CONTAINERID: pod,
    CNI_NETNS: pod ? `/run/netns/${pod}` : "",
    CNI_IFNAME: "eth0",
    CNI_PATH: cniBin,
  });
  const rows = new Map<string, Sample[]>();
  const record = (name: string, sample: Sample) => {
    if (!rows.has(name)) rows.set(name, []);
    rows.get(name)!.push(sample);
  };
  const node = () => timed(process.execPath, ["-e", "0"], process.env, "");
  const plugin = (v: Variant, command: string, pod?: string) =>
    timed(process.execPath, [v.plugin], envFor(command, pod), plan.config(v.dataDir));

  // Warm the page cache and learn the delegate config the bridge is given alone.
  let delegateConfig = "";
  for (let i = 0; i < warmups; i++) {
    node();
    for (const v of plan.variants) {
      plugin(v, "VERSION");
      plugin(v, "ADD", plan.warmPod);
      delegateConfig ||= readFileSync(join(v.dataDir, plan.warmPod), "utf8");
      plugin(v, "DEL", plan.warmPod);
    }
  }
  const bridge = (command: string, pod: string) =>
    timed(join(cniBin, "bridge"), [], envFor(command, pod), delegateConfig);

  for (const command of ["ADD", "DEL"]) {
    for (let round = 0; round < plan.rounds; round++) {
      const steps: (() => void)[] = [
        () => record(`node -e 0 (${command} rounds)`, node()),
        () => record(`bridge ${command}`, bridge(command, plan.bridgePods[round]!)),
      ];
      for (const v of plan.variants) {
        steps.push(() => record(`${v.label} ${command}`, plugin(v, command, v.pods[round])));
        if (command === "ADD") steps.push(() => record(`${v.label} VERSION`, plugin(v, "VERSION")));
      }
      for (const step of rotated(steps, round)) step();
    }
  }

  const line = (cells: string[]) => `| ${cells.join(" | ")} |`;
  const ms = (n: number) => n.toFixed(1);
  console.log(
    `CNI latency over ${plan.rounds} pods, ms (node ${process.version}, load ${loadavg()[0]!.toFixed(2)})\n`,
  );
  console.log(line(["", "mean", "p50", "p95", "cpu/run"]));
  console.log(line(["---", "---:", "---:", "---:", "---:"]));
  for (const [name, samples] of rows) {
    const s = stats(samples.map((x) => x.wall));
    const cpu = samples.reduce((a, x) => a + x.cpu, 0) / samples.length;
    console.log(line([name, ms(s.mean), ms(s.p50), ms(s.p95), ms(cpu)]));
  }
  // Per round: the plugin minus the Node floor and the delegate measured right next to it.
  for (const v of plan.variants) {
    for (const command of ["ADD", "DEL"]) {
      const own = rows.get(`${v.label} ${command}`)!;
      const floor = rows.get(`node -e 0 (${command} rounds)`)!;
      const bridgeRow = rows.get(`bridge ${command}`)!;
      const wall = own.map((x, i) => x.wall - floor[i]!.wall - bridgeRow[i]!.wall);
      const cpu = own.map((x, i) => x.cpu - floor[i]!.cpu - bridgeRow[i]!.cpu);
      const s = stats(wall);
      const cpuMean = cpu.reduce((a, b) => a + b, 0) / cpu.length;
      console.log(line([`${v.label} ${command} own`, ms(s.mean), ms(s.p50), ms(s.p95), ms(cpuMean)]));
    }
    const version = rows.get(`${v.label} VERSION`)!;
    const floor = rows.get("node -e 0 (ADD rounds)")!;
    const s = stats(version.map((x, i) => x.wall - floor[i]!.wall));
    console.log(line([`${v.label} VERSION own`, ms(s.mean), ms(s.p50), ms(s.p95), ""]));
  }
  console.log("\n`own` = flannel - node -e 0 - bridge, per round (VERSION: - node -e 0).");
}

/** Copies a plugin as a node would have it installed; returns the path to run. */
function install(source: string, into: string): string {
  mkdirSync(into, { recursive: true });
  if (source.endsWith(".cjs")) {
    const target = join(into, "flannel");
    copyFileSync(source, target);
    return target;
  }
  // An ES module graph: its siblings come along, and the package type that makes .js an ES module.
  for (const f of readdirSync(dirname(source)).filter((n) => n.endsWith(".js")))
    copyFileSync(join(dirname(source), f), join(into, f));
  writeFileSync(join(into, "package.json"), '{"type":"module"}\n');
  return join(into, source.split("/").pop()!);
}

function defaultPlugins(): [string, string][] {
  const pkg = JSON.parse(readFileSync(join(repoRoot, "package.json"), "utf8")) as {
    bin?: Record<string, string>;
  };
  const shipped = join(repoRoot, pkg.bin?.["flannel"] ?? "dist/src/cni/flannel-main.js");
  const unbundled = join(repoRoot, "dist/src/cni/flannel-main.js");
  const plugins: [string, string][] = [["flannel", shipped]];
  if (shipped !== unbundled && existsSync(unbundled)) plugins.push(["flannel-esm", unbundled]);
  return plugins;
}

/** Runs in the root namespace: makes the namespaces and files, runs `measure` in the host namespace, cleans. */
function main(): void {
  if (process.getuid?.() !== 0) {
    console.error("cni-latency needs root (it creates network namespaces)");
    process.exitCode = 1;
    return;
  }
  const args = process.argv.slice(2);
  const rounds = /^\d+$/.test(args[0] ?? "") ? Number(args.shift()) : 40;
  const plugins = args.length > 0 ? args.map((a) => a.split("=", 2) as [string, string]) : defaultPlugins();
  for (const [label, path] of plugins) {
    if (!path || !existsSync(path))
      throw new Error(`plugin ${label}: ${path} does not exist (npm run build)`);
  }
  const hostNs = `weft-bench-host-${tag}`;
  const podSet = (name: string) => Array.from({ length: rounds }, (_, i) => `weft-bench-${tag}-${name}${i}`);
  const created: string[] = [];
  const dir = mkdtempSync(join(tmpdir(), "weft-cni-bench-"));
  try {
    const variants: Variant[] = plugins.map(([label, path], i) => ({
      label,
      // A private copy, as installed on a node: a rebuild of dist/ meanwhile cannot disturb the bench.
      plugin: install(resolve(path), join(dir, `bin${i}`)),
      pods: podSet(`v${i}-`),
      dataDir: join(dir, `flannel${i}`),
    }));
    const bridgePods = podSet("b");
    const warmPod = `weft-bench-${tag}-warm`;
    for (const ns of [hostNs, warmPod, ...bridgePods, ...variants.flatMap((v) => v.pods)]) {
      mustRun("ip", ["netns", "add", ns]);
      created.push(ns);
      mustRun("ip", ["-n", ns, "link", "set", "lo", "up"]);
    }
    const subnetFile = join(dir, "subnet.env");
    // A /22: every variant's pods and the bridge's live on one bridge at once.
    writeFileSync(
      subnetFile,
      "FLANNEL_NETWORK=10.253.0.0/16\nFLANNEL_SUBNET=10.253.4.1/22\nFLANNEL_MTU=1450\nFLANNEL_IPMASQ=true\n",
    );
    const plan: PlanJson = {
      rounds,
      variants,
      bridgePods,
      warmPod,
      configTemplate: {
        cniVersion: "1.0.0",
        name: `weftbench${tag}`,
        type: "flannel",
        subnetFile,
        ipam: { dataDir: join(dir, "ipam") },
        delegate: { hairpinMode: true, isDefaultGateway: true },
      },
    };
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
      { stdio: "inherit", timeout: 1_800_000 },
    );
    if (inner.status !== 0) process.exitCode = 1;
  } finally {
    for (const ns of created.reverse()) spawnSync("ip", ["netns", "del", ns], { timeout: 30_000 });
    rmSync(dir, { recursive: true, force: true });
  }
}

if (process.argv[2] === "--inner") {
  const json = JSON.parse(process.argv[3]!) as PlanJson;
  measure({
    ...json,
    config: (dataDir) => JSON.stringify({ ...json.configTemplate, dataDir }),
  });
} else main();
