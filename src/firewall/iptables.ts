/** Runs iptables-save / iptables-restore (or the ip6tables ones) and repairs our chains. */
import type { IPFamily } from "../ip/ip-address.js";
import type { Firewall, WantedRules } from "./firewall.js";
import { removalInput, repairInput } from "./rule-diff.js";
import { isNotInstalled, runCommand } from "./run-command.js";
import { type ChainRules, OUR_CHAINS, wantedChains } from "./traffic-rules.js";

/** Wait for the xtables lock rather than fail when kube-proxy holds it. */
const LOCK_WAIT_SECONDS = "5";

const run = (command: string, args: string[], input?: string) => runCommand(command, args, "iptables", input);

export class Iptables {
  constructor(private readonly family: IPFamily) {}

  private get save(): string {
    return this.family === 4 ? "iptables-save" : "ip6tables-save";
  }

  private get restore(): string {
    return this.family === 4 ? "iptables-restore" : "ip6tables-restore";
  }

  private restoreInput(input: string): Promise<string> {
    return run(this.restore, ["--noflush", "-w", LOCK_WAIT_SECONDS], input);
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
      await this.restoreInput(input);
      byTable.delete(want.table);
      repaired++;
    }
    return repaired;
  }

  /** Deletes our chains and the jumps to them; a missing iptables holds none. */
  async removeOurChains(): Promise<void> {
    for (const { table, chain } of OUR_CHAINS) {
      let saved: string;
      try {
        saved = await run(this.save, ["-t", table]);
      } catch (err) {
        if (isNotInstalled(err)) return;
        throw err;
      }
      const input = removalInput(saved, table, chain);
      if (input !== undefined) await this.restoreInput(input);
    }
  }
}

/** flanneld's default mode: chains FLANNEL-POSTRTG (nat) and FLANNEL-FWD (filter), per family. */
export const iptablesFirewall: Firewall = {
  mode: "iptables",
  families(want: WantedRules) {
    return ([4, 6] as const).filter((family) => wantedChains(family, want).length > 0);
  },
  ensure(family: IPFamily, want: WantedRules) {
    const chains = wantedChains(family, want);
    return chains.length === 0 ? Promise.resolve(0) : new Iptables(family).ensure(chains);
  },
  async removeAll() {
    for (const family of [4, 6] as const) await new Iptables(family).removeOurChains();
  },
};
