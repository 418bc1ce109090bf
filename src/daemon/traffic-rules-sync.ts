/** Keeps the masquerade and forward chains as wanted, checking every --iptables-resync seconds. */
import type { NetworkConfig } from "../config/network-config.js";
import { Iptables } from "../firewall/iptables.js";
import { type ChainRules, forwardRules, masqueradeRules } from "../firewall/traffic-rules.js";
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

export function wantedChains(
  config: NetworkConfig,
  lease: Lease,
  options: TrafficOptions,
): Map<4 | 6, ChainRules[]> {
  const byFamily = new Map<4 | 6, ChainRules[]>();
  const families = [
    [4, config.ipv4?.network, lease.subnet],
    [6, config.ipv6?.network, lease.ipv6Subnet],
  ] as const;
  for (const [family, network, subnet] of families) {
    if (!network || !subnet) continue;
    const chains: ChainRules[] = [];
    if (options.forwardRules) chains.push(forwardRules(network));
    if (options.ipMasq) chains.push(masqueradeRules(network, subnet, options.randomFully));
    if (chains.length > 0) byFamily.set(family, chains);
  }
  return byFamily;
}

export class TrafficRulesSync {
  private timer: NodeJS.Timeout | undefined;
  private chains = new Map<4 | 6, ChainRules[]>();
  repairs = 0;

  constructor(
    private readonly options: TrafficOptions,
    private readonly log: Logger,
  ) {}

  /** Sets the wanted rules and applies them now; throws if iptables cannot be run at all. */
  async start(config: NetworkConfig, lease: Lease): Promise<void> {
    this.chains = wantedChains(config, lease, this.options);
    await this.sync(true);
    clearInterval(this.timer);
    if (this.chains.size > 0 && this.options.resyncSeconds > 0) {
      this.timer = setInterval(() => void this.sync(false), this.options.resyncSeconds * 1000);
      this.timer.unref();
    }
  }

  private async sync(first: boolean): Promise<void> {
    for (const [family, chains] of this.chains) {
      try {
        const repaired = await new Iptables(family).ensure(chains);
        if (repaired > 0 && !first) {
          this.repairs += repaired;
          this.log.warn(`restored ${repaired} IPv${family} iptables chain(s) that had been changed`);
        }
      } catch (err) {
        if (first) throw err;
        this.log.error(`checking IPv${family} iptables rules failed: ${describeError(err)}`);
      }
    }
  }

  stop(): void {
    clearInterval(this.timer);
  }
}
