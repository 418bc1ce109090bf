// The multi-host lab: network namespaces joined by a bridge in a fabric namespace, with etcd on the fabric.
//
//   fabric ns  wl<pid>x<n>-fab   br0 172.31.0.254/16 (fd31::fe/64), etcd on :2379
//                 |-- eth0-h1 <veth> eth0 172.31.0.1/16 (fd31::1/64)   host ns wl<pid>x<n>-h1
//                 |-- eth0-h2 <veth> eth0 172.31.0.2/16 (fd31::2/64)   host ns wl<pid>x<n>-h2 ...
//
// This mirrors the setup the reference observations were captured on. Nothing is ever added to the root
// namespace; everything created is removed by name or pid in destroy(), at process exit, on SIGINT/SIGTERM,
// and, for labs whose owner process died, by the stale sweep in Lab.create().
import { existsSync, mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import {
  deleteNamespaceSync,
  killPids,
  listNamespaces,
  namespacePids,
  namespacePidsSync,
  registerLab,
  sweepStaleLabs,
  unregisterLab,
} from "./lab-cleanup.js";
import {
  type CommandOptions,
  type CommandResult,
  describeArgv,
  runChecked,
  runCommand,
} from "./lab-command.js";
import { describeStatus, type ExitStatus, LabProcess, type SpawnOptions } from "./lab-process.js";

export type { CommandOptions, CommandResult } from "./lab-command.js";
export type { ExitStatus, SpawnOptions } from "./lab-process.js";
export { LabProcess } from "./lab-process.js";

/** How to run weftd as it ships: the Bun executable that `npm run build` makes (scripts/build-executables.sh). */
export function weftdCommand(): string[] {
  const weftd = join(repoRoot(), "dist", "bin", "weftd");
  if (!existsSync(weftd)) throw new Error(`weftd is not built: ${weftd} is missing (npm run build)`);
  return [weftd];
}

export interface LabOptions {
  /** Number of hosts, each its own namespace (1..200). */
  hosts: number;
  /** Also give the underlay IPv6 addresses (fd31::N/64, gateway fd31::fe) and enable IPv6 forwarding. */
  ipv6?: boolean;
  /** A short label put in the namespace names (lower-case letters and digits, up to 8), for `ip netns list`. */
  tag?: string;
}

export interface LabHost {
  /** The host's network namespace name. */
  name: string;
  /** 1-based: host N has address 172.31.0.N. */
  index: number;
  ip: string;
  /** With ipv6: fd31::<N in hex>, e.g. fd31::c for host 12, as the gateway fd31::fe is .254. */
  ip6?: string;
  netnsPath: string;
}

/** Where a command runs: a host, or a lab namespace by name (e.g. `lab.fabric`). */
export type Where = LabHost | string;

export interface PingOptions {
  /** Echo requests to send. Default 3. */
  count?: number;
  /** Seconds between requests. Default 0.2. */
  intervalSeconds?: number;
  /** Give up after this long. Default: count * interval + 2 s. */
  timeoutMs?: number;
  /** Source address or interface (`ping -I`), e.g. a pod address from addPodAddress. */
  source?: string;
  /** Payload bytes (`ping -s`). */
  size?: number;
}

export interface PingResult {
  /** At least one reply came back. */
  reachable: boolean;
  transmitted: number;
  received: number;
  lossPercent: number;
  output: string;
}

export interface Iperf3Options {
  /** Test length. Default 3. */
  seconds?: number;
  port?: number;
  /** Parallel streams (`-P`). */
  parallel?: number;
}

export interface EtcdKeyValue {
  key: string;
  value: string;
}

export const UNDERLAY_PREFIX_LENGTH = 16;
export const UNDERLAY_PREFIX6_LENGTH = 64;
export const FABRIC_IP = "172.31.0.254";
export const FABRIC_IP6 = "fd31::fe";
export const ETCD_ENDPOINT = `http://${FABRIC_IP}:2379`;
export const ETCD_PEER_URL = `http://${FABRIC_IP}:2380`;
export const UNDERLAY_MTU = 1500;
const MAX_HOSTS = 200;

const ETCD_BINARY = "/usr/bin/etcd";
const ETCD_START_TIMEOUT_MS = 20_000;
const ETCD_STOP_TIMEOUT_MS = 10_000;
const PROCESS_STOP_TIMEOUT_MS = 3_000;

/** Per-process counter, so one owner pid can hold several labs. */
let labCounter = 0;

export class Lab {
  /** The lab's name prefix, `wl<pid>x<counter>[-<tag>]`; every namespace name starts with it. */
  readonly name: string;
  /** The fabric namespace: bridge br0, the hosts' gateway, etcd; also "a host outside the pod network". */
  readonly fabric: string;
  readonly fabricIp = FABRIC_IP;
  readonly fabricIp6: string | undefined;
  readonly hosts: readonly LabHost[];
  readonly ipv6: boolean;
  /** Removed by destroy(): per-host dirs (subnet files), etcd data. */
  readonly tempDir: string;
  readonly etcdEndpoint = ETCD_ENDPOINT;
  /** The running etcd, if any. */
  etcd: LabProcess | undefined;

  private readonly namespaces: string[] = [];
  private readonly processes = new Set<LabProcess>();
  private destroying: Promise<void> | undefined;

  private constructor(options: LabOptions) {
    if (!Number.isInteger(options.hosts) || options.hosts < 1 || options.hosts > MAX_HOSTS) {
      throw new Error(`a lab has 1..${MAX_HOSTS} hosts, not ${options.hosts}`);
    }
    const tag = (options.tag ?? "")
      .toLowerCase()
      .replace(/[^a-z0-9]/g, "")
      .slice(0, 8);
    labCounter += 1;
    this.name = `wl${process.pid}x${labCounter}${tag ? `-${tag}` : ""}`;
    this.fabric = `${this.name}-fab`;
    this.ipv6 = options.ipv6 ?? false;
    this.fabricIp6 = this.ipv6 ? FABRIC_IP6 : undefined;
    this.hosts = Array.from({ length: options.hosts }, (_, i) => {
      const name = `${this.name}-h${i + 1}`;
      const host: LabHost = { name, index: i + 1, ip: `172.31.0.${i + 1}`, netnsPath: `/run/netns/${name}` };
      if (this.ipv6) host.ip6 = `fd31::${(i + 1).toString(16)}`;
      return host;
    });
    this.tempDir = mkdtempSync(join(tmpdir(), `weft-lab-${this.name}-`));
  }

  /** Sweeps labs left by dead processes, then builds a new lab. On failure, removes what it built. */
  static async create(options: LabOptions): Promise<Lab> {
    await sweepStaleLabs();
    const lab = new Lab(options);
    registerLab(lab);
    try {
      await lab.build();
    } catch (error) {
      await lab.destroy().catch(() => {});
      throw error;
    }
    return lab;
  }

  /** Deletes lab namespaces and temp dirs whose owner pid is dead (killing what runs in them). */
  static sweepStale(): Promise<string[]> {
    return sweepStaleLabs();
  }

  /** Host N (1-based, as in 172.31.0.N). */
  host(index: number): LabHost {
    const host = this.hosts[index - 1];
    if (!host) throw new Error(`lab ${this.name} has hosts 1..${this.hosts.length}, not ${index}`);
    return host;
  }

  /** A per-host directory inside the lab's temp dir (created on first use). */
  hostDir(host: LabHost): string {
    const dir = join(this.tempDir, `h${this.ownHost(host).index}`);
    mkdirSync(dir, { recursive: true });
    return dir;
  }

  /** The subnet file startWeftd passes to the host's weftd by default. */
  subnetFile(host: LabHost): string {
    return join(this.hostDir(host), "subnet.env");
  }

  /** Runs argv inside a lab namespace until it exits (does not throw on a non-zero exit). Default timeout 10 s. */
  async exec(where: Where, argv: readonly string[], options: CommandOptions = {}): Promise<CommandResult> {
    return runCommand(["ip", "netns", "exec", this.namespaceOf(where), ...argv], options);
  }

  /** Like exec, but resolves with stdout and rejects unless the command exits 0. */
  async run(where: Where, argv: readonly string[], options: CommandOptions = {}): Promise<string> {
    return runChecked(["ip", "netns", "exec", this.namespaceOf(where), ...argv], options);
  }

  /** Starts a long-running process inside a lab namespace; destroy() stops it if it is still running. */
  async spawn(where: Where, argv: readonly string[], options: SpawnOptions = {}): Promise<LabProcess> {
    if (this.destroying) throw new Error(`lab ${this.name} is destroyed; cannot spawn ${describeArgv(argv)}`);
    const labProcess = await LabProcess.start(this.namespaceOf(where), argv, options);
    this.processes.add(labProcess);
    void labProcess.exited.then(() => this.processes.delete(labProcess));
    return labProcess;
  }

  /** Pings toIp from a lab namespace (iputils ping, or busybox's where iputils is missing). */
  async ping(from: Where, toIp: string, options: PingOptions = {}): Promise<PingResult> {
    const count = options.count ?? 3;
    const interval = options.intervalSeconds ?? 0.2;
    const timeoutMs = options.timeoutMs ?? Math.ceil((count * interval + 2) * 1000);
    const argv = [...pingCommand(), "-q", "-c", String(count), "-i", String(interval), "-W", "1"];
    argv.push("-w", String(Math.max(1, Math.ceil(timeoutMs / 1000))));
    if (options.source) argv.push("-I", options.source);
    if (options.size !== undefined) argv.push("-s", String(options.size));
    argv.push(toIp);
    const result = await this.exec(from, argv, { timeoutMs: timeoutMs + 5_000 });
    const output = result.stdout + result.stderr;
    const counts = /(\d+) packets transmitted, (\d+) (?:packets )?received/.exec(output);
    if (!counts)
      throw new Error(`${describeArgv(argv)} in ${this.namespaceOf(from)} failed: ${output.trim()}`);
    const transmitted = Number(counts[1]);
    const received = Number(counts[2]);
    const lossPercent = transmitted === 0 ? 100 : Math.round((100 * (transmitted - received)) / transmitted);
    return { reachable: received > 0, transmitted, received, lossPercent, output };
  }

  /** TCP throughput in bits/s from clientHost to an iperf3 server on serverHost bound to serverIp. */
  async iperf3(
    serverHost: Where,
    clientHost: Where,
    serverIp: string,
    options: Iperf3Options = {},
  ): Promise<number> {
    const seconds = options.seconds ?? 3;
    const port = String(options.port ?? 5201);
    const server = await this.spawn(serverHost, [
      "iperf3",
      "-s",
      "-1",
      "--forceflush",
      "-B",
      serverIp,
      "-p",
      port,
    ]);
    try {
      await server.waitForOutput(/Server listening/, 10_000);
      const argv = [
        "iperf3",
        "-c",
        serverIp,
        "-p",
        port,
        "-t",
        String(seconds),
        "-J",
        "--connect-timeout",
        "3000",
      ];
      if (options.parallel) argv.push("-P", String(options.parallel));
      const result = await this.exec(clientHost, argv, { timeoutMs: seconds * 1000 + 15_000 });
      let report: { error?: string; end?: { sum_received?: { bits_per_second?: number } } };
      try {
        report = JSON.parse(result.stdout);
      } catch {
        throw new Error(`iperf3 client printed no JSON (${describeStatus(result)}): ${result.stderr.trim()}`);
      }
      if (report.error) throw new Error(`iperf3 to ${serverIp}:${port}: ${report.error}`);
      const bitsPerSecond = report.end?.sum_received?.bits_per_second;
      if (typeof bitsPerSecond !== "number") throw new Error("iperf3 report has no end.sum_received");
      return bitsPerSecond;
    } finally {
      await server.stop("SIGTERM", 2_000);
    }
  }

  /**
   * Gives a host a "pod" address (e.g. "10.244.1.1/24") on a bridge cni0 in the host's namespace,
   * created if missing, for connectivity tests without the CNI plugin.
   */
  async addPodAddress(host: LabHost, cidr: string): Promise<void> {
    const namespace = this.namespaceOf(host);
    const hasBridge = (await runCommand(["ip", "-n", namespace, "link", "show", "cni0"])).code === 0;
    const commands = hasBridge ? [] : ["link add cni0 type bridge"];
    // nodad: an IPv6 address is usable at once (the host's sysctls already disable DAD; this is belt and braces).
    commands.push(`addr replace ${cidr} dev cni0${cidr.includes(":") ? " nodad" : ""}`, "link set cni0 up");
    await ipBatch(namespace, commands);
  }

  /**
   * Adds a node that is not a weftd host: namespace `<lab>-n<label>` on the fabric bridge with address `ip`
   * (in 172.31.0.0/16, not a host's), e.g. an etcd member whose links can be cut on their own. Removed with
   * the lab. Resolves with the namespace name, for exec/run/spawn.
   */
  async addFabricNode(label: string, ip: string): Promise<string> {
    if (!/^[a-z0-9]{1,4}$/.test(label))
      throw new Error(`a fabric node label is 1-4 letters or digits, not ${label}`);
    const namespace = `${this.name}-n${label}`;
    if (this.namespaces.includes(namespace)) throw new Error(`fabric node ${label} exists already`);
    await this.addNamespace(namespace);
    const fabricPort = `eth0-n${label}`;
    await ipBatch(this.fabric, [
      `link add ${fabricPort} type veth peer name eth0 netns ${namespace}`,
      `link set ${fabricPort} mtu ${UNDERLAY_MTU} master br0 up`,
    ]);
    await ipBatch(namespace, [
      "link set lo up",
      `link set eth0 mtu ${UNDERLAY_MTU}`,
      `addr add ${ip}/${UNDERLAY_PREFIX_LENGTH} dev eth0`,
      "link set eth0 up",
    ]);
    return namespace;
  }

  /** Starts etcd in the fabric (or restarts it on its existing data) and waits until it is healthy. */
  async startEtcd(): Promise<LabProcess> {
    if (this.etcd?.running) return this.etcd;
    const dataDir = join(this.tempDir, "etcd");
    const env: Record<string, string> = process.arch === "arm64" ? { ETCD_UNSUPPORTED_ARCH: "arm64" } : {};
    const etcd = await this.spawn(
      this.fabric,
      [
        ETCD_BINARY,
        "--name=fabric",
        `--data-dir=${dataDir}`,
        `--listen-client-urls=${ETCD_ENDPOINT}`,
        `--advertise-client-urls=${ETCD_ENDPOINT}`,
        `--listen-peer-urls=${ETCD_PEER_URL}`,
        `--initial-advertise-peer-urls=${ETCD_PEER_URL}`,
        `--initial-cluster=fabric=${ETCD_PEER_URL}`,
        `--initial-cluster-token=${this.name}`,
        // Ignored when the data dir exists, so a restart keeps the data.
        "--initial-cluster-state=new",
      ],
      { env },
    );
    this.etcd = etcd;
    const deadline = Date.now() + ETCD_START_TIMEOUT_MS;
    let lastError = "";
    for (;;) {
      if (!etcd.running) {
        throw new Error(
          `etcd exited while starting (${describeStatus(await etcd.exited)}):\n${etcd.output()}`,
        );
      }
      const health = await this.exec(this.fabric, this.etcdctlArgv(["endpoint", "health"]), {
        timeoutMs: 5_000,
        env: { ETCDCTL_API: "3" },
      }).catch((error: Error) => ({ code: -1, stdout: "", stderr: error.message }));
      if (health.code === 0) return etcd;
      lastError = (health.stderr || health.stdout).trim();
      if (Date.now() > deadline) {
        await etcd.stop("SIGTERM", 2_000);
        throw new Error(
          `etcd at ${this.etcdEndpoint} not healthy within ${ETCD_START_TIMEOUT_MS} ms: ${lastError}\n` +
            `etcd output:\n${etcd.output().slice(-3000)}`,
        );
      }
      await sleep(100);
    }
  }

  /** Stops etcd (SIGTERM, then SIGKILL after timeoutMs) and keeps its data for the next startEtcd(). */
  async stopEtcd(timeoutMs = ETCD_STOP_TIMEOUT_MS): Promise<ExitStatus | undefined> {
    const etcd = this.etcd;
    if (!etcd) return undefined;
    const status = await etcd.stop("SIGTERM", timeoutMs);
    this.etcd = undefined;
    return status;
  }

  /** Runs etcdctl (API v3) against the lab's etcd, from the fabric; resolves with stdout. */
  async etcdctl(args: readonly string[], options: CommandOptions = {}): Promise<string> {
    return this.run(this.fabric, this.etcdctlArgv(args), {
      timeoutMs: 10_000,
      ...options,
      env: { ETCDCTL_API: "3", ...options.env },
    });
  }

  /** Every key under prefix with its value, in key order. */
  async etcdGetPrefix(prefix: string): Promise<EtcdKeyValue[]> {
    const stdout = await this.etcdctl(["get", "--prefix", "-w", "json", "--", prefix]);
    const response = JSON.parse(stdout) as { kvs?: { key: string; value?: string }[] };
    const fromBase64 = (text: string | undefined) => Buffer.from(text ?? "", "base64").toString("utf8");
    return (response.kvs ?? []).map((kv) => ({ key: fromBase64(kv.key), value: fromBase64(kv.value) }));
  }

  /**
   * Starts weftd on a host with default flags --etcd-endpoints, --iface=eth0 and --subnet-file (the host's
   * subnetFile()); a flag given in args replaces its default.
   */
  async startWeftd(
    host: LabHost,
    args: readonly string[] = [],
    env?: Record<string, string>,
  ): Promise<LabProcess> {
    const defaults = [
      `--etcd-endpoints=${this.etcdEndpoint}`,
      "--iface=eth0",
      `--subnet-file=${this.subnetFile(host)}`,
    ];
    return this.spawn(host, [...weftdCommand(), ...mergeFlags(defaults, args)], env ? { env } : {});
  }

  /** Stops every process the lab started, deletes its namespaces and temp dir. Idempotent. */
  destroy(): Promise<void> {
    this.destroying ??= this.teardown();
    return this.destroying;
  }

  /** destroy() for the process 'exit' event: synchronous, SIGKILL at once. */
  destroySync(): void {
    for (const labProcess of this.processes) labProcess.killNow();
    for (const namespace of this.namespaces) killPids(namespacePidsSync(namespace));
    for (const namespace of [...this.namespaces].reverse()) deleteNamespaceSync(namespace);
    rmSync(this.tempDir, { recursive: true, force: true });
    unregisterLab(this);
  }

  private async teardown(): Promise<void> {
    const problems: string[] = [];
    const stops = await Promise.allSettled(
      [...this.processes].map((labProcess) => labProcess.stop("SIGTERM", PROCESS_STOP_TIMEOUT_MS)),
    );
    for (const stop of stops) if (stop.status === "rejected") problems.push(String(stop.reason));
    this.etcd = undefined;
    // What lab processes forked and left behind (only lab processes ever enter a lab namespace).
    for (const namespace of this.namespaces) killPids(await namespacePids(namespace));
    for (const namespace of [...this.namespaces].reverse()) {
      const result = await runCommand(["ip", "netns", "del", namespace]).catch((error: Error) => ({
        code: -1,
        stderr: error.message,
      }));
      if (result.code !== 0 && listNamespaces().includes(namespace)) {
        problems.push(`ip netns del ${namespace}: ${result.stderr.trim()}`);
      }
    }
    rmSync(this.tempDir, { recursive: true, force: true });
    unregisterLab(this);
    if (problems.length > 0) throw new Error(`destroying lab ${this.name}:\n${problems.join("\n")}`);
  }

  private async build(): Promise<void> {
    const fabric = this.fabric;
    await this.addNamespace(fabric);
    await ipBatch(fabric, [
      "link set lo up",
      "link add br0 type bridge",
      `link set br0 mtu ${UNDERLAY_MTU}`,
      `addr add ${FABRIC_IP}/${UNDERLAY_PREFIX_LENGTH} dev br0`,
      ...(this.ipv6 ? [`addr add ${FABRIC_IP6}/${UNDERLAY_PREFIX6_LENGTH} dev br0 nodad`] : []),
      "link set br0 up",
    ]);
    await Promise.all(this.hosts.map((host) => this.buildHost(host)));
  }

  private async buildHost(host: LabHost): Promise<void> {
    await this.addNamespace(host.name, [
      "net.ipv4.ip_forward=1",
      ...(this.ipv6 ? ["net.ipv6.conf.all.forwarding=1", "net.ipv6.conf.default.forwarding=1"] : []),
    ]);
    // Created in the fabric with its peer directly in the host: the root namespace never holds either end.
    const fabricPort = `eth0-h${host.index}`;
    await ipBatch(this.fabric, [
      `link add ${fabricPort} type veth peer name eth0 netns ${host.name}`,
      `link set ${fabricPort} mtu ${UNDERLAY_MTU} master br0 up`,
    ]);
    await ipBatch(host.name, [
      "link set lo up",
      `link set eth0 mtu ${UNDERLAY_MTU}`,
      `addr add ${host.ip}/${UNDERLAY_PREFIX_LENGTH} dev eth0`,
      ...(host.ip6 ? [`addr add ${host.ip6}/${UNDERLAY_PREFIX6_LENGTH} dev eth0 nodad`] : []),
      "link set eth0 up",
      `route add default via ${FABRIC_IP}`,
      ...(host.ip6 ? [`route add default via ${FABRIC_IP6}`] : []),
    ]);
  }

  /** Creates a namespace (recorded first, so cleanup covers a half-made one) and applies sysctls. */
  private async addNamespace(namespace: string, sysctls: string[] = []): Promise<void> {
    this.namespaces.push(namespace);
    await runChecked(["ip", "netns", "add", namespace]);
    // DAD off before any device appears, so IPv6 addresses are usable at once; -e: a kernel without IPv6 is fine.
    const settings = ["net.ipv6.conf.all.accept_dad=0", "net.ipv6.conf.default.accept_dad=0", ...sysctls];
    await runChecked(["ip", "netns", "exec", namespace, "sysctl", "-q", "-e", "-w", ...settings]);
  }

  private etcdctlArgv(args: readonly string[]): string[] {
    return [
      "etcdctl",
      `--endpoints=${this.etcdEndpoint}`,
      "--dial-timeout=2s",
      "--command-timeout=5s",
      ...args,
    ];
  }

  private ownHost(host: LabHost): LabHost {
    if (this.hosts[host.index - 1]?.name !== host.name) {
      throw new Error(`${host.name} is not a host of lab ${this.name}`);
    }
    return host;
  }

  /** The namespace name for where; refuses anything that is not this lab's (the root namespace above all). */
  private namespaceOf(where: Where): string {
    const name = typeof where === "string" ? where : where.name;
    if (!this.namespaces.includes(name)) throw new Error(`${name} is not a namespace of lab ${this.name}`);
    if (this.destroying) throw new Error(`lab ${this.name} is destroyed`);
    return name;
  }
}

/** Creates a lab, runs fn with it, and always destroys it. */
export async function withLab<T>(options: LabOptions, fn: (lab: Lab) => Promise<T>): Promise<T> {
  const lab = await Lab.create(options);
  try {
    return await fn(lab);
  } finally {
    await lab.destroy();
  }
}

/**
 * defaults followed by overrides, minus each default whose flag name (`--name=value`, `--name value` or
 * `-name`) appears in overrides.
 */
export function mergeFlags(defaults: readonly string[], overrides: readonly string[]): string[] {
  // "" for a value: it never matches a flag name.
  const flagName = (arg: string) => (arg.startsWith("-") ? arg.replace(/^-+/, "").split("=")[0]! : "");
  const overridden = new Set(overrides.map(flagName).filter((name) => name !== ""));
  return [...defaults.filter((arg) => !overridden.has(flagName(arg))), ...overrides];
}

/** Runs `ip` commands in a namespace as one batch (one process instead of one per command). */
async function ipBatch(namespace: string, commands: readonly string[]): Promise<void> {
  await runChecked(["ip", "-n", namespace, "-batch", "-"], { input: `${commands.join("\n")}\n` });
}

let cachedPingCommand: string[] | undefined;
function pingCommand(): string[] {
  cachedPingCommand ??= ["/usr/bin/ping", "/bin/ping"].some((path) => existsSync(path))
    ? ["ping"]
    : ["busybox", "ping"];
  return cachedPingCommand;
}

let cachedRepoRoot: string | undefined;
/** The nearest directory above this file holding package.json (works from test/lab and dist/test/lab). */
function repoRoot(): string {
  if (cachedRepoRoot) return cachedRepoRoot;
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let depth = 0; depth < 10 && !existsSync(join(dir, "package.json")); depth++) dir = dirname(dir);
  cachedRepoRoot = dir;
  return dir;
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
