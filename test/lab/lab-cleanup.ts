// Leaving nothing behind: process-level cleanup of live labs, and a sweep of labs whose owner has died.
import { execFileSync } from "node:child_process";
import { readdirSync, readlinkSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { basename, join } from "node:path";
import { runCommand } from "./lab-command.js";

/** What the process-level handlers need from a lab. */
export interface Destroyable {
  destroy(): Promise<void>;
  /** Best effort, synchronous: for the 'exit' event, where no promise can run. */
  destroySync(): void;
}

/**
 * Lab names: `wl<owner pid>x<counter>[-<tag>]`, then `-fab` for the fabric, `-h<N>` for host N, or
 * `-n<label>` for another node on the fabric (an etcd member).
 */
export const LAB_NAMESPACE_PATTERN = /^wl(\d+)x(\d+)(?:-[a-z0-9]{1,8})?-(?:fab|h\d+|n[a-z0-9]{1,4})$/;
/** Lab temp dirs: `weft-lab-<lab prefix>-<random>` in the OS temp dir. */
export const LAB_TEMP_DIR_PATTERN = /^weft-lab-wl(\d+)x\d+/;
export const NETNS_DIR = "/run/netns";
/** The runtimes a lab's owner runs on: node (node, node20...) or bun. */
const OWNER_EXECUTABLE = /^(?:node|bun)/;

/** After SIGINT/SIGTERM, how long the orderly destroy may take before a synchronous one takes over. */
const SIGNAL_CLEANUP_MS = 10_000;
const SYNC_COMMAND_TIMEOUT_MS = 5_000;

const liveLabs = new Set<Destroyable>();
let signalCleanupStarted = false;

export function registerLab(lab: Destroyable): void {
  if (liveLabs.size === 0) {
    process.on("SIGINT", onSignal);
    process.on("SIGTERM", onSignal);
    process.on("exit", destroyAllSync);
  }
  liveLabs.add(lab);
}

export function unregisterLab(lab: Destroyable): void {
  liveLabs.delete(lab);
  if (liveLabs.size === 0) {
    // Without labs, SIGINT and SIGTERM should end the process the usual way again.
    process.removeListener("SIGINT", onSignal);
    process.removeListener("SIGTERM", onSignal);
    process.removeListener("exit", destroyAllSync);
  }
}

function destroyAllSync(): void {
  for (const lab of [...liveLabs]) {
    try {
      lab.destroySync();
    } catch {
      // keep going: the other labs must still be cleaned up
    }
  }
}

function onSignal(signal: NodeJS.Signals): void {
  const exitCode = signal === "SIGINT" ? 130 : 143;
  if (signalCleanupStarted) {
    // A second Ctrl-C: stop being polite.
    destroyAllSync();
    process.exit(exitCode);
  }
  signalCleanupStarted = true;
  process.stderr.write(`weft lab: ${signal}, removing ${liveLabs.size} lab(s)\n`);
  const fallback = setTimeout(() => {
    destroyAllSync();
    process.exit(exitCode);
  }, SIGNAL_CLEANUP_MS);
  void Promise.allSettled([...liveLabs].map((lab) => lab.destroy())).then(() => {
    clearTimeout(fallback);
    process.exit(exitCode);
  });
}

/**
 * True if pid is a live node or bun process: a lab's owner is always one (the test runner, `node --test` or
 * `bun test`, or a child script it ran), and this tells a reused pid apart.
 */
export function isLiveOwner(pid: number): boolean {
  if (pid === process.pid) return true;
  try {
    return OWNER_EXECUTABLE.test(basename(readlinkSync(`/proc/${pid}/exe`)));
  } catch (error) {
    // EACCES would mean a process we cannot inspect: treat it as alive rather than delete someone's lab.
    return (error as NodeJS.ErrnoException).code === "EACCES";
  }
}

export function listNamespaces(): string[] {
  try {
    return readdirSync(NETNS_DIR);
  } catch {
    return [];
  }
}

/** Pids of processes inside a namespace (`ip netns pids`); empty if it cannot tell. */
export async function namespacePids(namespace: string): Promise<number[]> {
  const result = await runCommand(["ip", "netns", "pids", namespace], { timeoutMs: SYNC_COMMAND_TIMEOUT_MS });
  return parsePids(result.code === 0 ? result.stdout : "");
}

export function namespacePidsSync(namespace: string): number[] {
  try {
    return parsePids(
      execFileSync("ip", ["netns", "pids", namespace], {
        timeout: SYNC_COMMAND_TIMEOUT_MS,
        encoding: "utf8",
        stdio: ["ignore", "pipe", "ignore"],
      }),
    );
  } catch {
    return [];
  }
}

function parsePids(text: string): number[] {
  return text
    .split(/\s+/)
    .filter((word) => /^\d+$/.test(word))
    .map(Number)
    .filter((pid) => pid !== process.pid);
}

export function killPids(pids: readonly number[]): void {
  for (const pid of pids) {
    try {
      process.kill(pid, "SIGKILL");
    } catch {
      // already gone
    }
  }
}

/**
 * Deletes lab namespaces (and temp dirs) whose owner process is dead, first killing what still runs inside
 * them (an etcd or agent the dead owner started: nothing else enters a lab namespace). Returns what it deleted.
 */
export async function sweepStaleLabs(): Promise<string[]> {
  const swept: string[] = [];
  for (const name of listNamespaces()) {
    const match = LAB_NAMESPACE_PATTERN.exec(name);
    if (!match || isLiveOwner(Number(match[1]))) continue;
    killPids(await namespacePids(name));
    // Another process may sweep the same namespace at the same time; whoever loses gets an error: fine.
    const result = await runCommand(["ip", "netns", "del", name], { timeoutMs: SYNC_COMMAND_TIMEOUT_MS });
    if (result.code === 0) swept.push(name);
  }
  let tempEntries: string[] = [];
  try {
    tempEntries = readdirSync(tmpdir());
  } catch {
    // no temp dir to sweep
  }
  for (const entry of tempEntries) {
    const match = LAB_TEMP_DIR_PATTERN.exec(entry);
    if (!match || isLiveOwner(Number(match[1]))) continue;
    rmSync(join(tmpdir(), entry), { recursive: true, force: true });
    swept.push(join(tmpdir(), entry));
  }
  return swept;
}

/** Synchronously deletes a namespace by name, ignoring "not found". */
export function deleteNamespaceSync(namespace: string): void {
  try {
    execFileSync("ip", ["netns", "del", namespace], { timeout: SYNC_COMMAND_TIMEOUT_MS, stdio: "ignore" });
  } catch {
    // already gone, or cannot be deleted: nothing more to do at exit
  }
}
