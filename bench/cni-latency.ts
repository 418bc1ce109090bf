/**
 * ADD/DEL latency of the flannel CNI plugin (delegating to the reference bridge + host-local) against the
 * upstream Go flannel plugin and the bridge plugin alone given the same generated delegate config, over 40
 * pods (a fresh network namespace each), with `node -e 0` as the floor of any Node.js plugin. The plugin's
 * own cost is flannel - bridge (- node -e 0 for a plugin run by Node), computed per round: every round runs
 * each variant once, in rotating order, so a busy machine slows all of them alike.
 * Every measured process gets a clean environment, as a container runtime runs plugins: the CNI_* variables
 * and PATH only (NODE_EXTRA_CA_CERTS alone would add ~50 ms to each Node start).
 * Needs root: every pod is a network namespace, and the plugins run inside a "host" namespace made for the
 * bench so the bridge never lands in the root namespace.
 *
 *   node dist/bench/cni-latency.js [pods] [label=plugin ...] [--upstream PATH]
 *
 * Without label=plugin arguments it measures the package's `flannel` bin (what ships: the Bun executable)
 * and, as `flannel-esm`, the development build (tsc's output, run by this Node). The upstream plugin (--upstream PATH, or env
 * UPSTREAM_FLANNEL_CNI=PATH; the reference is v1.9.1-flannel1) is added to the same rounds under the label
 * `upstream`, and the summary gives each plugin's ADD and DEL against it (mean and p50).
 * A plugin is installed as in /opt/cni/bin: a JavaScript file (.js, .cjs, .mjs) is run by this Node, a
 * single-file one (.cjs) installed as an extensionless `flannel`, an ES module run where it was built (its
 * imports span dist/src); anything else (a compiled executable) is installed as `flannel` and run as it is.
 */
import { spawnSync } from "node:child_process";
import {
  chmodSync,
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
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
const cleanPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
const upstreamLabel = "upstream";

interface Variant {
  readonly label: string;
  /** The installed copy. */
  readonly plugin: string;
  /** Run by this Node (a JavaScript plugin), or executed as it is. */
  readonly byNode: boolean;
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
    PATH: cleanPath,
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
  const node = () => timed(process.execPath, ["-e", "0"], { PATH: cleanPath }, "");
  const plugin = (v: Variant, command: string, pod?: string) =>
    v.byNode
      ? timed(process.execPath, [v.plugin], envFor(command, pod), plan.config(v.dataDir))
      : timed(v.plugin, [], envFor(command, pod), plan.config(v.dataDir));

  // Warm the page cache and learn the delegate config the bridge is given alone (the first plugin's; each
  // plugin saves the config it gave its delegate, and a difference from the upstream plugin's is shown).
  let delegateConfig = "";
  const delegateConfigs = new Map<string, string>();
  for (let i = 0; i < warmups; i++) {
    node();
    for (const v of plan.variants) {
      plugin(v, "VERSION");
      plugin(v, "ADD", plan.warmPod);
      const saved = readFileSync(join(v.dataDir, plan.warmPod), "utf8");
      delegateConfig ||= saved;
      delegateConfigs.set(v.label, saved);
      plugin(v, "DEL", plan.warmPod);
    }
  }
  const upstreamConfig = delegateConfigs.get(upstreamLabel);
  for (const [label, saved] of delegateConfigs) {
    if (upstreamConfig !== undefined && saved !== upstreamConfig)
      console.log(
        `note: ${label}'s delegate config differs from upstream's:\n  ${saved}\n  ${upstreamConfig}\n`,
      );
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
  // Per round: the plugin minus the delegate measured right next to it (and the Node floor, for Node).
  for (const v of plan.variants) {
    const zero: Sample = { wall: 0, cpu: 0 };
    for (const command of ["ADD", "DEL"]) {
      const own = rows.get(`${v.label} ${command}`)!;
      const floor = rows.get(`node -e 0 (${command} rounds)`)!;
      const bridgeRow = rows.get(`bridge ${command}`)!;
      const floorAt = (i: number) => (v.byNode ? floor[i]! : zero);
      const wall = own.map((x, i) => x.wall - floorAt(i).wall - bridgeRow[i]!.wall);
      const cpu = own.map((x, i) => x.cpu - floorAt(i).cpu - bridgeRow[i]!.cpu);
      const s = stats(wall);
      const cpuMean = cpu.reduce((a, b) => a + b, 0) / cpu.length;
      console.log(line([`${v.label} ${command} own`, ms(s.mean), ms(s.p50), ms(s.p95), ms(cpuMean)]));
    }
    const version = rows.get(`${v.label} VERSION`)!;
    const floor = rows.get("node -e 0 (ADD rounds)")!;
    const s = stats(version.map((x, i) => x.wall - (v.byNode ? floor[i]!.wall : 0)));
    console.log(line([`${v.label} VERSION own`, ms(s.mean), ms(s.p50), ms(s.p95), ""]));
  }
  console.log(
    "\n`own` = plugin - bridge, per round, and - node -e 0 for a plugin run by Node (VERSION: - node -e 0).",
  );
  const upstream = plan.variants.find((v) => v.label === upstreamLabel);
  if (upstream) {
    console.log(`\nagainst the upstream plugin in the same rounds (load ${loadavg()[0]!.toFixed(2)}):\n`);
    console.log(line(["", "mean", "upstream mean", "ratio", "p50", "upstream p50", "ratio"]));
    console.log(line(["---", "---:", "---:", "---:", "---:", "---:", "---:"]));
    for (const v of plan.variants.filter((x) => x !== upstream)) {
      for (const command of ["ADD", "DEL"]) {
        const ours = stats(rows.get(`${v.label} ${command}`)!.map((x) => x.wall));
        const theirs = stats(rows.get(`${upstream.label} ${command}`)!.map((x) => x.wall));
        const ratio = (a: number, b: number) => `${(a / b).toFixed(2)}x`;
        console.log(
          line([
            `${v.label} ${command}`,
            ms(ours.mean),
            ms(theirs.mean),
            ratio(ours.mean, theirs.mean),
            ms(ours.p50),
            ms(theirs.p50),
            ratio(ours.p50, theirs.p50),
          ]),
        );
      }
    }
  }
}

const isJavaScript = (path: string) => /\.(c|m)?js$/.test(path);

/** Copies a plugin as a node would have it installed; returns the path to run. */
function install(source: string, into: string): string {
  mkdirSync(into, { recursive: true });
  if (source.endsWith(".cjs") || !isJavaScript(source)) {
    const target = join(into, "flannel");
    copyFileSync(source, target);
    chmodSync(target, 0o755);
    return target;
  }
  // An ES module graph imports across the whole tsc output (../text, ../ip, ...): it runs where it was built.
  return source;
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
  let upstreamPath = process.env["UPSTREAM_FLANNEL_CNI"] || undefined;
  const at = args.indexOf("--upstream");
  if (at >= 0) {
    upstreamPath = args[at + 1];
    if (!upstreamPath) throw new Error("--upstream needs the path of the upstream flannel CNI plugin");
    args.splice(at, 2);
  }
  const rounds = /^\d+$/.test(args[0] ?? "") ? Number(args.shift()) : 40;
  const plugins = args.length > 0 ? args.map((a) => a.split("=", 2) as [string, string]) : defaultPlugins();
  if (plugins.some(([label]) => label === upstreamLabel))
    throw new Error(`the label ${upstreamLabel} is the upstream plugin's: give it with --upstream PATH`);
  for (const [label, path] of plugins) {
    if (!path || !existsSync(path))
      throw new Error(`plugin ${label}: ${path} does not exist (npm run build)`);
  }
  if (upstreamPath) {
    if (!existsSync(upstreamPath))
      throw new Error(`upstream plugin: ${upstreamPath} does not exist (build flannel-io/cni-plugin)`);
    plugins.push([upstreamLabel, upstreamPath]);
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
      byNode: isJavaScript(path),
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
