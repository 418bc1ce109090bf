/** Runs iptables-save / iptables-restore (or the ip6tables ones) and repairs our chains. */
import { execFile } from "node:child_process";
import type { IPFamily } from "../ip/ip-address.js";
import { UserError } from "../user-error.js";
import { repairInput } from "./rule-diff.js";
import type { ChainRules } from "./traffic-rules.js";

/** Wait for the xtables lock rather than fail when kube-proxy holds it. */
const LOCK_WAIT_SECONDS = "5";

function run(command: string, args: string[], input?: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = execFile(
      command,
      args,
      { timeout: 30_000, maxBuffer: 64 * 1024 * 1024 },
      (err, stdout, stderr) => {
        if (err) {
          const missing = (err as NodeJS.ErrnoException).code === "ENOENT";
          reject(
            new UserError(
              missing
                ? `${command} is not installed`
                : `${command} ${args.join(" ")} failed: ${stderr.trim() || err.message}`,
              missing ? "install the iptables package" : undefined,
            ),
          );
        } else resolve(stdout);
      },
    );
    if (input !== undefined) child.stdin?.end(input);
  });
}

export class Iptables {
  constructor(private readonly family: IPFamily) {}

  private get save(): string {
    return this.family === 4 ? "iptables-save" : "ip6tables-save";
  }

  private get restore(): string {
    return this.family === 4 ? "iptables-restore" : "ip6tables-restore";
  }

  /** Makes each chain exactly as wanted; returns how many chains had to be repaired. */
  async ensure(chains: readonly ChainRules[]): Promise<number> {
    let repaired = 0;
    const byTable = new Map<string, string>();
    for (const want of chains) {
      let saved = byTable.get(want.table);
      if (saved === undefined) {
        saved = await run(this.save, ["-t", want.table]);
        byTable.set(want.table, saved);
      }
      const input = repairInput(saved, want);
      if (input === undefined) continue;
      await run(this.restore, ["--noflush", "-w", LOCK_WAIT_SECONDS], input);
      byTable.delete(want.table);
      repaired++;
    }
    return repaired;
  }
}
