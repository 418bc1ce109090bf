/**
 * Which peer leases weft routes. Every host can write any key under <prefix>/subnets/, so a key is
 * routed only if its subnet is one a peer can really hold: a block of the configured length inside the
 * Network (per family), apart from our own subnet, from every network the host reaches directly, and
 * claimed by no other lease. Otherwise one bad key could replace the host's route to its own underlay
 * (and so to etcd), hijack part of our pods' or a peer's subnet, or draw traffic for addresses outside
 * the Network. Pure.
 */
import { formatCIDR, type IPNetwork, networkContainsNetwork, networksOverlap } from "../ip/ip-network.js";
import type { Lease } from "../lease/lease.js";

export interface FamilyScope {
  readonly network: IPNetwork;
  /** The length every peer subnet has (SubnetLen); undefined where the store decides (kube pod CIDRs). */
  readonly subnetLen: number | undefined;
}

/** A network the host reaches without weft: an interface address's network or a link route (eth0, docker0). */
export interface HostNetwork {
  readonly network: IPNetwork;
  readonly dev: string;
}

export interface LeaseScope {
  readonly ipv4: FamilyScope | undefined;
  readonly ipv6: FamilyScope | undefined;
  readonly own: Lease;
  readonly hostNetworks: readonly HostNetwork[];
}

/** The rule a refused lease breaks; also the label of its metric. */
export type ScopeRule =
  | "outside-network"
  | "subnet-length"
  | "overlaps-own"
  | "overlaps-host"
  | "overlaps-peer";

export interface Refusal {
  readonly rule: ScopeRule;
  readonly reason: string;
}

/** Why `lease` must not be routed, or undefined when it may. Our own lease is never refused. */
export function checkLeaseScope(lease: Lease, scope: LeaseScope): Refusal | undefined {
  if (lease.key === scope.own.key) return undefined;
  for (const [subnet, family, own] of [
    [lease.subnet, scope.ipv4, scope.own.subnet],
    [lease.ipv6Subnet, scope.ipv6, scope.own.ipv6Subnet],
  ] as const) {
    // A family the network does not enable is never routed, so it cannot do harm.
    if (!subnet || !family) continue;
    const refusal = checkSubnet(subnet, family, own, scope.hostNetworks);
    if (refusal) return refusal;
  }
  return undefined;
}

function checkSubnet(
  subnet: IPNetwork,
  family: FamilyScope,
  own: IPNetwork | undefined,
  hostNetworks: readonly HostNetwork[],
): Refusal | undefined {
  // The texts are only made for a refusal: this runs for every lease.
  const cidr = () => formatCIDR(subnet);
  const network = () => formatCIDR(family.network);
  if (!networkContainsNetwork(family.network, subnet)) {
    return { rule: "outside-network", reason: `its subnet ${cidr()} is not inside the Network ${network()}` };
  }
  if (own && networksOverlap(subnet, own)) {
    return {
      rule: "overlaps-own",
      reason: `its subnet ${cidr()} overlaps our own subnet ${formatCIDR(own)}`,
    };
  }
  // A host route wider than the whole Network (a default device route, an underlay /8 the Network lies
  // in) is what peer routes are meant to be more specific than.
  const host = hostNetworks.find(
    (h) => networksOverlap(subnet, h.network) && !networkContainsNetwork(h.network, family.network),
  );
  if (host) {
    return {
      rule: "overlaps-host",
      reason: `its subnet ${cidr()} overlaps ${formatCIDR(host.network)}, a network this host reaches directly on ${host.dev}`,
    };
  }
  if (family.subnetLen !== undefined && subnet.prefixLen !== family.subnetLen) {
    return {
      rule: "subnet-length",
      reason: `its subnet ${cidr()} is not a /${family.subnetLen}, the SubnetLen of the Network ${network()}`,
    };
  }
  if (subnet.prefixLen === family.network.prefixLen) {
    return { rule: "subnet-length", reason: `its subnet ${cidr()} is the whole Network` };
  }
  return undefined;
}

/** One lease's standing under one scope: its refusal, if any, and the subnets it claims (CIDR texts). */
interface LeaseStanding {
  readonly refusal: Refusal | undefined;
  readonly claims: readonly string[];
}

/**
 * A standing as kept per lease: almost every lease is in scope with one subnet, and is kept as that
 * subnet's CIDR text alone (no object or array of its own: with 5,000 peers those were ~1 MB of heap).
 */
type KeptStanding = string | LeaseStanding;

function standing(lease: Lease, scope: LeaseScope): KeptStanding {
  const v4 = lease.subnet && scope.ipv4 ? formatCIDR(lease.subnet) : undefined;
  const v6 = lease.ipv6Subnet && scope.ipv6 ? formatCIDR(lease.ipv6Subnet) : undefined;
  const refusal = checkLeaseScope(lease, scope);
  if (!refusal && (v4 === undefined) !== (v6 === undefined)) return (v4 ?? v6)!;
  // Kept per lease: array literals of exactly their length.
  const claims = v4 && v6 ? [v4, v6] : v4 ? [v4] : v6 ? [v6] : [];
  return { refusal, claims };
}

/**
 * The standings of leases under one scope, remembered per lease object: the lease table keeps an
 * unchanged lease's object, so a lease event checks only the lease it changed, not all 5,000. A new
 * scope (our lease, the host's networks) needs a new ScopeChecks.
 */
export class ScopeChecks {
  private readonly standings = new WeakMap<Lease, KeptStanding>();

  constructor(readonly scope: LeaseScope) {}

  /** The lease's standing: its one claimed CIDR (in scope), or its refusal and claims. */
  of(lease: Lease): KeptStanding {
    let found = this.standings.get(lease);
    if (found === undefined) {
      found = standing(lease, this.scope);
      this.standings.set(lease, found);
    }
    return found;
  }
}

export interface ScopedLeases {
  /** Other hosts' leases that may be routed. */
  readonly peers: Lease[];
  readonly refused: { readonly lease: Lease; readonly refusal: Refusal }[];
}

/**
 * Splits the lease table into routable peers and refused leases; our own lease is in neither. Two
 * leases that claim the same subnet (say 10.244.4.0-24 and 10.244.4.0-24&fd44:0:0:9::-64) are both
 * refused: routing either would take the other's traffic, and which one is right cannot be told.
 */
export function partitionByScope(leases: Iterable<Lease>, scope: LeaseScope | ScopeChecks): ScopedLeases {
  const checks = scope instanceof ScopeChecks ? scope : new ScopeChecks(scope);
  const own = checks.scope.own.key;
  const candidates: Lease[] = [];
  const refused: { lease: Lease; refusal: Refusal }[] = [];
  // Exact claims: with SubnetLen every peer subnet has one length, and in kube mode the controller
  // manager hands out disjoint pod CIDRs, so a shared subnet is an equal one.
  const claims = new Map<string, Lease[]>();
  const claim = (cidr: string, lease: Lease) => {
    const claimants = claims.get(cidr);
    if (claimants) claimants.push(lease);
    else claims.set(cidr, [lease]);
  };
  for (const lease of leases) {
    if (lease.key === own) continue;
    const kept = checks.of(lease);
    if (typeof kept !== "string" && kept.refusal) {
      refused.push({ lease, refusal: kept.refusal });
      continue;
    }
    candidates.push(lease);
    if (typeof kept === "string") claim(kept, lease);
    else for (const cidr of kept.claims) claim(cidr, lease);
  }
  const contested = new Map<Lease, Refusal>();
  for (const [cidr, claimants] of claims) {
    if (claimants.length < 2) continue;
    for (const lease of claimants) {
      if (contested.has(lease)) continue;
      const other = claimants.find((c) => c !== lease)!;
      contested.set(lease, {
        rule: "overlaps-peer",
        reason: `its subnet ${cidr} is also claimed by lease ${other.key}; neither is routed until one of the keys goes`,
      });
    }
  }
  if (contested.size === 0) return { peers: candidates, refused };
  const peers: Lease[] = [];
  for (const lease of candidates) {
    const refusal = contested.get(lease);
    if (refusal) refused.push({ lease, refusal });
    else peers.push(lease);
  }
  return { peers, refused };
}
