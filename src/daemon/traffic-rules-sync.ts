/**
 * Keeps the masquerade and forward rules as wanted, checking every --iptables-resync seconds, through
 * iptables or (EnableNFTables) nftables. Syncs never overlap: a tick that finds one running or queued
 * is dropped, since the queued run reads the latest wanted rules anyway.
 */
import type { NetworkConfig } from "../config/network-config.js";
import type { Firewall, WantedRules } from "../firewall/firewall.js";
import { iptablesFirewall } from "../firewall/iptables.js";
import { nftablesFirewall } from "../firewall/nft.js";
import type { Lease } from "../lease/lease.js";
import { describeError } from "../user-error.js";
import type { Flags } from "./flags.js";
import type { Logger } from "./logger.js";

export interface TrafficOptions {
  readonly ipMasq: boolean;
  readonly randomFully: boolean;
  readonly forwardRules: boolean;
  readonly resyncSeconds: number;
}

/** The rule options weftd's flags set. */
export function trafficOptions(flags: Pick<Flags, "bool" | "int">): TrafficOptions {
  return {
    ipMasq: flags.bool("ip-masq"),
    randomFully: !flags.bool("ip-masq-fully-random-disable"),
    forwardRules: flags.bool("iptables-forward-rules"),
    resyncSeconds: flags.int("iptables-resync"),
  };
}

export function wantedRules(config: NetworkConfig, lease: Lease, options: TrafficOptions): WantedRules {
  const v4 = config.ipv4?.network;
  const v6 = config.ipv6?.network;
  return {
    v4: v4 && lease.subnet ? { network: v4, subnet: lease.subnet } : undefined,
    v6: v6 && lease.ipv6Subnet ? { network: v6, subnet: lease.ipv6Subnet } : undefined,
    ipMasq: options.ipMasq,
    randomFully: options.randomFully,
    forwardRules: options.forwardRules,
  };
}

/** The rule writer the config picks, and the one whose rules a switched host must lose. */
export function firewallsFor(enableNFTables: boolean): { use: Firewall; other: Firewall } {
  return enableNFTables
    ? { use: nftablesFirewall, other: iptablesFirewall }
    : { use: iptablesFirewall, other: nftablesFirewall };
}

export class TrafficRulesSync {
  private timer: NodeJS.Timeout | undefined;
  private want: WantedRules | undefined;
  private tail: Promise<void> = Promise.resolve();
  private queued = false;
  private cleanedOther = false;
  repairs = 0;

  constructor(
    private readonly options: TrafficOptions,
    private readonly firewall: Firewall,
    private readonly other: Firewall,
    private readonly log: Logger,
  ) {}

  /** Sets the wanted rules and applies them now; throws if the rule tool cannot be run at all. */
  start(config: NetworkConfig, lease: Lease): Promise<void> {
    return this.startAll([{ config, lease }]);
  }

  /** Multi-network mode: every network's rules in the same chains, in the order given. */
  async startAll(networks: readonly { config: NetworkConfig; lease: Lease }[]): Promise<void> {
    const [first, ...rest] = networks.map((n) => wantedRules(n.config, n.lease, this.options));
    if (!first) return;
    const want: WantedRules = rest.length > 0 ? { ...first, others: rest } : first;
    this.want = want;
    if (!this.cleanedOther) {
      this.log.info(`keeping the masquerade and forward rules with ${this.firewall.mode}`);
      // A host switched between modes keeps only the current mode's rules (as flanneld at start).
      await this.other
        .removeAll()
        .catch((err) => this.log.warn(`removing ${this.other.mode} rules failed: ${describeError(err)}`));
      this.cleanedOther = true;
    }
    await this.schedule(true);
    clearInterval(this.timer);
    this.timer = undefined;
    if (this.firewall.families(want).length > 0 && this.options.resyncSeconds > 0) {
      this.timer = setInterval(() => void this.schedule(false), this.options.resyncSeconds * 1000);
      this.timer.unref();
    }
  }

  /** Queues one sync after the running one; a resync tick while one is queued is dropped. */
  private schedule(first: boolean): Promise<void> {
    if (!first && this.queued) return this.tail;
    this.queued = true;
    const run = this.tail.then(() => {
      this.queued = false;
      return this.sync(first);
    });
    this.tail = run.catch(() => undefined);
    return run;
  }

  private async sync(first: boolean): Promise<void> {
    const want = this.want;
    if (!want) return;
    const { mode } = this.firewall;
    for (const family of this.firewall.families(want)) {
      try {
        const repaired = await this.firewall.ensure(family, want);
        if (repaired > 0 && !first) {
          this.repairs += repaired;
          this.log.warn(
            `restored ${repaired} IPv${family} ${mode} ${mode === "nftables" ? "table(s)" : "chain(s)"} that had been changed`,
          );
        }
      } catch (err) {
        if (first) throw err;
        this.log.error(`checking IPv${family} ${mode} rules failed: ${describeError(err)}`);
      }
    }
  }

  stop(): void {
    clearInterval(this.timer);
  }
}
