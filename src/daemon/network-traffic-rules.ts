/**
 * Who keeps a network's masquerade and forward rules. One network: its own TrafficRulesSync, as before.
 * Several (multi-network mode): one sync for all, every network's rules in the same chains, so networks
 * never overwrite each other's; a network that leaves takes its rules with it (as flanneld v0.7 did).
 * The rule writer (iptables or nftables) is the first network's choice.
 */
import type { NetworkConfig } from "../config/network-config.js";
import type { Lease } from "../lease/lease.js";
import type { Logger } from "./logger.js";
import { firewallsFor, type TrafficOptions, TrafficRulesSync } from "./traffic-rules-sync.js";

export interface NetworkTrafficRules {
  /** This network's rules as its config and lease want them; throws if the rule tool cannot run at all. */
  apply(config: NetworkConfig, lease: Lease): Promise<void>;
  /** The network stops: its rules go (several networks) or stay in place (one network, as at shutdown). */
  forget(): void;
}

export class SharedTrafficRules {
  private sync: TrafficRulesSync | undefined;
  private stopped = false;
  private readonly networks = new Map<string, { config: NetworkConfig; lease: Lease }>();

  constructor(
    private readonly options: TrafficOptions,
    private readonly log: Logger,
    /** Network names in the order their rules go into the chains (--networks order). */
    private readonly order: (names: readonly string[]) => string[] = (names) => [...names].sort(),
    /** The rule writers a config picks (in memory in unit tests). */
    private readonly firewalls: typeof firewallsFor = firewallsFor,
  ) {}

  get repairs(): number {
    return this.sync?.repairs ?? 0;
  }

  /** One network's share; with a single network `name` is "" and forget() leaves the rules. */
  forNetwork(name: string): NetworkTrafficRules {
    return {
      apply: (config, lease) => {
        this.networks.set(name, { config, lease });
        return this.update(config);
      },
      forget: () => {
        if (name === "") {
          this.stop();
          return;
        }
        if (!this.networks.delete(name)) return;
        void this.update(undefined).catch((err) => this.log.error(`updating the rules: ${String(err)}`));
      },
    };
  }

  private update(config: NetworkConfig | undefined): Promise<void> {
    if (this.stopped) return Promise.resolve();
    if (!this.sync) {
      if (!config) return Promise.resolve();
      const { use, other } = this.firewalls(config.enableNFTables);
      this.sync = new TrafficRulesSync(this.options, use, other, this.log);
    }
    const names = this.order([...this.networks.keys()]);
    return this.sync.startAll(names.map((n) => this.networks.get(n)!));
  }

  /** Shutdown: the rules stay as they are (a restart finds them in place); nothing changes them after. */
  stop(): void {
    this.stopped = true;
    this.sync?.stop();
  }
}
