/** Pure choices about subnets: which ones fit the config, and which free one to take. */
import type { FamilyConfig, NetworkConfig } from "../config/network-config.js";
import {
  formatCIDR,
  type IPNetwork,
  networkContains,
  networkContainsNetwork,
  networkSize,
  networksOverlap,
} from "../ip/ip-network.js";
import type { SubnetPair } from "../lease/lease-key.js";

/** Like flannel, look at no more than this many free subnets before picking one at random. */
const CANDIDATES = 100;

export function fitsFamily(family: FamilyConfig | undefined, subnet: IPNetwork | undefined): boolean {
  if (!family) return subnet === undefined;
  if (!subnet) return false;
  return (
    subnet.family === family.network.family &&
    subnet.prefixLen === family.subnetLen &&
    networkContains(family.network, { family: subnet.family, value: subnet.ip }) &&
    subnet.ip >= family.subnetMin.value &&
    subnet.ip <= family.subnetMax.value
  );
}

/** Whether a lease's subnets are ones this config could have handed out. */
export function fitsConfig(
  config: NetworkConfig,
  subnet: IPNetwork | undefined,
  ipv6Subnet: IPNetwork | undefined,
): boolean {
  return fitsFamily(config.ipv4, subnet) && fitsFamily(config.ipv6, ipv6Subnet);
}

/** Subnets already held, for one family, with a fast exact lookup and a slow path for odd sizes. */
export class TakenSubnets {
  private readonly exact = new Set<string>();
  private readonly byPrefixLen = new Map<number, IPNetwork[]>();

  constructor(networks: Iterable<IPNetwork | undefined>) {
    for (const net of networks) {
      if (!net) continue;
      this.exact.add(formatCIDR(net));
      const group = this.byPrefixLen.get(net.prefixLen) ?? [];
      group.push(net);
      this.byPrefixLen.set(net.prefixLen, group);
    }
  }

  isTaken(candidate: IPNetwork): boolean {
    if (this.exact.has(formatCIDR(candidate))) return true;
    // A reservation of another size may still cover the candidate (or lie inside it).
    for (const [prefixLen, group] of this.byPrefixLen) {
      if (prefixLen === candidate.prefixLen) continue;
      if (group.some((net) => networksOverlap(net, candidate))) return true;
    }
    return false;
  }

  /** A held network larger than the candidate that covers it, so a search can jump past all of it. */
  covering(candidate: IPNetwork): IPNetwork | undefined {
    for (const [prefixLen, group] of this.byPrefixLen) {
      if (prefixLen >= candidate.prefixLen) continue;
      const net = group.find((n) => networkContainsNetwork(n, candidate));
      if (net) return net;
    }
    return undefined;
  }
}

/** A free subnet, chosen at random among the first free ones, or undefined when the range is full. */
export function chooseFreeSubnet(
  family: FamilyConfig,
  taken: TakenSubnets,
  random: () => number = Math.random,
): IPNetwork | undefined {
  const free: IPNetwork[] = [];
  const ipFamily = family.network.family;
  const size = networkSize(ipFamily, family.subnetLen);
  // One held network may cover 2^56 candidates (an IPv6 /8 of /64s): skip it whole, never one by one,
  // so the search costs at most one step per held lease plus CANDIDATES.
  for (let ip = family.subnetMin.value; ip <= family.subnetMax.value && free.length < CANDIDATES; ) {
    const candidate: IPNetwork = { family: ipFamily, ip, prefixLen: family.subnetLen };
    const cover = taken.covering(candidate);
    if (cover) {
      ip = cover.ip + networkSize(ipFamily, cover.prefixLen);
      continue;
    }
    if (!taken.isTaken(candidate)) free.push(candidate);
    ip += size;
  }
  if (free.length === 0) return undefined;
  return free[Math.floor(random() * free.length)];
}

/**
 * Subnets held by the given leases, split by family. A key that covers the whole Network (anyone can
 * write `10.244.0.0-16`) is no claim a host could hold: counting it would leave no subnet for any new
 * host, so it is passed over here (and refused for routing by the lease scope rule).
 */
export function takenBy(
  held: Iterable<SubnetPair>,
  config?: Pick<NetworkConfig, "ipv4" | "ipv6">,
): { v4: TakenSubnets; v6: TakenSubnets } {
  const list = [...held];
  const claim = (net: IPNetwork | undefined, family: FamilyConfig | undefined) =>
    net && family && networkContainsNetwork(net, family.network) ? undefined : net;
  return {
    v4: new TakenSubnets(list.map((l) => claim(l.subnet, config?.ipv4))),
    v6: new TakenSubnets(list.map((l) => claim(l.ipv6Subnet, config?.ipv6))),
  };
}
