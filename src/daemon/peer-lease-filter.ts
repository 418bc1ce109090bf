/**
 * Between the lease table and the backend: drops the leases the scope rule refuses (src/subnet/lease-scope.ts),
 * logs each refused or unusable lease once per key and reason (again only after the key went away), and
 * keeps the counts /metrics shows. The host's networks, which the rule needs, are re-read on request.
 */
import type { PeerProblem } from "../backend/backend.js";
import type { NetworkConfig } from "../config/network-config.js";
import { formatCIDR } from "../ip/ip-network.js";
import type { Lease } from "../lease/lease.js";
import {
  type HostNetwork,
  type LeaseScope,
  partitionByScope,
  ScopeChecks,
  type ScopeRule,
} from "../subnet/lease-scope.js";
import { describeError } from "../user-error.js";

const RULES: readonly ScopeRule[] = [
  "outside-network",
  "subnet-length",
  "overlaps-own",
  "overlaps-host",
  "overlaps-peer",
];

export interface PeerLeaseFilterOptions {
  readonly config: NetworkConfig;
  /** In kube mode the pod CIDR length is the controller manager's, not SubnetLen. */
  readonly kubeMode: boolean;
  readonly readHostNetworks: () => Promise<HostNetwork[]>;
  readonly warn: (message: string) => void;
}

export class PeerLeaseFilter {
  private hostNetworks: HostNetwork[] = [];
  /** The standings of leases under the current scope; made anew when our lease or the host's networks change. */
  private checks: ScopeChecks | undefined;
  /** What was logged about each lease key. */
  private readonly reported = new Map<string, Set<string>>();
  private refused = new Map<ScopeRule, number>();
  private refusedTotal = 0;
  private unusable = 0;

  constructor(private readonly options: PeerLeaseFilterOptions) {}

  /** Re-reads the host's networks; true when they changed, so the peers must be filtered again. */
  async refresh(): Promise<boolean> {
    let found: HostNetwork[];
    try {
      found = await this.options.readHostNetworks();
    } catch (err) {
      this.options.warn(`cannot read the host's routes (${describeError(err)}); keeping the last ones`);
      return false;
    }
    const text = (nets: HostNetwork[]) => nets.map((h) => `${formatCIDR(h.network)} ${h.dev}`).join();
    const changed = text(found) !== text(this.hostNetworks);
    if (changed) this.hostNetworks = found;
    return changed;
  }

  private scopeChecks(own: Lease): ScopeChecks {
    const current = this.checks;
    if (current?.scope.own === own && current.scope.hostNetworks === this.hostNetworks) return current;
    this.checks = new ScopeChecks(this.scope(own));
    return this.checks;
  }

  private scope(own: Lease): LeaseScope {
    const { ipv4, ipv6 } = this.options.config;
    const length = (len: number) => (this.options.kubeMode ? undefined : len);
    return {
      ipv4: ipv4 && { network: ipv4.network, subnetLen: length(ipv4.subnetLen) },
      ipv6: ipv6 && { network: ipv6.network, subnetLen: length(ipv6.subnetLen) },
      own,
      hostNetworks: this.hostNetworks,
    };
  }

  /** The other hosts' leases that may be routed; reports the refused ones. */
  peers(leases: ReadonlyMap<string, Lease>, own: Lease): Lease[] {
    for (const key of this.reported.keys()) if (!leases.has(key)) this.reported.delete(key);
    const { peers, refused } = partitionByScope(leases.values(), this.scopeChecks(own));
    this.refused = new Map();
    for (const { lease, refusal } of refused) {
      this.refused.set(refusal.rule, (this.refused.get(refusal.rule) ?? 0) + 1);
      const message = `refusing lease ${lease.key}: ${refusal.reason}; it is not routed (fix or delete that key)`;
      if (this.reportOnce(lease.key, message)) this.refusedTotal++;
    }
    return peers;
  }

  /** Reports what the backend could not use, once per lease and reason. */
  report(problems: readonly PeerProblem[]): void {
    this.unusable = new Set(problems.map((p) => p.key)).size;
    for (const problem of problems) {
      this.reportOnce(problem.key, `not routing to lease ${problem.key}: ${problem.reason}`);
    }
  }

  private reportOnce(key: string, message: string): boolean {
    const seen = this.reported.get(key) ?? new Set<string>();
    this.reported.set(key, seen);
    if (seen.has(message)) return false;
    seen.add(message);
    this.options.warn(message);
    return true;
  }

  metricLines(): string[] {
    return [
      "# HELP weft_leases_refused Leases not routed now because they break the lease scope rule.",
      "# TYPE weft_leases_refused gauge",
      ...RULES.map((rule) => `weft_leases_refused{rule="${rule}"} ${this.refused.get(rule) ?? 0}`),
      "# HELP weft_leases_refused_total Lease values refused by the lease scope rule (each counted once).",
      "# TYPE weft_leases_refused_total counter",
      `weft_leases_refused_total ${this.refusedTotal}`,
      "# HELP weft_leases_unusable Leases in scope the backend cannot use now (bad backend data, another backend type...).",
      "# TYPE weft_leases_unusable gauge",
      `weft_leases_unusable ${this.unusable}`,
    ];
  }
}
