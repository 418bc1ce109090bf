// Throwaway network namespaces for tests: unique names, created with `ip netns add`, always removable.
import { execFileSync } from "node:child_process";

let counter = 0;

export interface Netns {
  name: string;
  /** /run/netns/<name>, what RtNetlink.open({ netns }) takes. */
  path: string;
  /** Runs `ip -n <name> ...args` and returns stdout; throws with stderr on failure. */
  ip(...args: string[]): string;
  /** Runs `ip -n <name> -json ...args` and parses the output ([] when ip prints nothing). */
  ipJson<T = unknown>(...args: string[]): T;
  /** Runs any command inside the namespace (`ip netns exec`). */
  exec(command: string, ...args: string[]): string;
  /** Deletes the namespace; safe to call twice. */
  delete(): void;
}

function run(command: string, args: string[]): string {
  try {
    return execFileSync(command, args, {
      encoding: "utf8",
      timeout: 15_000,
      stdio: ["ignore", "pipe", "pipe"],
    });
  } catch (err) {
    const e = err as { stderr?: string; message: string };
    throw new Error(`${command} ${args.join(" ")}: ${e.stderr?.trim() || e.message}`);
  }
}

/** Creates weft-<tag>-<pid>-<n> with loopback up. Callers must delete() it in after()/finally. */
export function createNetns(tag = "t"): Netns {
  const name = `weft-${tag}-${process.pid}-${++counter}`;
  run("ip", ["netns", "add", name]);
  let deleted = false;
  const ns: Netns = {
    name,
    path: `/run/netns/${name}`,
    ip: (...args) => run("ip", ["-n", name, ...args]),
    ipJson: <T>(...args: string[]) => {
      const out = run("ip", ["-n", name, "-json", ...args]).trim();
      return (out === "" ? [] : JSON.parse(out)) as T;
    },
    exec: (command, ...args) => run("ip", ["netns", "exec", name, command, ...args]),
    delete: () => {
      if (deleted) return;
      deleted = true;
      deleteNetns(name);
    },
  };
  try {
    ns.ip("link", "set", "lo", "up");
  } catch (err) {
    ns.delete();
    throw err;
  }
  return ns;
}

export function deleteNetns(name: string): void {
  try {
    run("ip", ["netns", "delete", name]);
  } catch {
    // Already gone is fine: deletion is best effort cleanup.
  }
}
