/**
 * What the aws-vpc backend wants in the route tables (pure): its own subnet's route to its own instance
 * in every table, and which routes it may remove. Every agent removes a route to its own subnet that
 * points elsewhere (by replacing it); routes in the Network whose lease is gone are removed by ONE
 * agent, the holder of the lowest live subnet, so agents do not race each other deleting them.
 */
import { formatCIDR, type IPNetwork, networkContainsNetwork, parseCIDR } from "../../ip/ip-network.js";
import type { Lease } from "../../lease/lease.js";
import type { CloudRouteEntry } from "./cloud-route-kind.js";

export function ownCloudRoutes(own: Lease, tables: readonly string[], instanceId: string): CloudRouteEntry[] {
  if (!own.subnet) return [];
  const destination = formatCIDR(own.subnet);
  return tables.map((table) => ({ table, destination, instanceId, blackhole: false, createdByUser: true }));
}

/** The subnet of the live lease that sweeps stale routes: the lowest. */
export function sweeperSubnet(leases: Iterable<Lease>): IPNetwork | undefined {
  let lowest: IPNetwork | undefined;
  for (const lease of leases) {
    const s = lease.subnet;
    if (s && (!lowest || s.ip < lowest.ip || (s.ip === lowest.ip && s.prefixLen < lowest.prefixLen)))
      lowest = s;
  }
  return lowest;
}

export interface RouteOwnershipView {
  /** The flannel Network: only routes inside it are ever considered. */
  readonly network: IPNetwork;
  readonly ownSubnet: IPNetwork;
  /** Subnets of every live lease (ours included). */
  readonly liveSubnets: ReadonlySet<string>;
  /** We hold the lowest live subnet. */
  readonly sweeper: boolean;
}

export function ownershipView(
  network: IPNetwork,
  own: Lease,
  peers: Iterable<Lease>,
): RouteOwnershipView | undefined {
  if (!own.subnet) return undefined;
  const all = [own, ...peers];
  const lowest = sweeperSubnet(all);
  return {
    network,
    ownSubnet: own.subnet,
    liveSubnets: new Set(all.flatMap((l) => (l.subnet ? [formatCIDR(l.subnet)] : []))),
    sweeper: lowest !== undefined && lowest.ip === own.subnet.ip && lowest.prefixLen === own.subnet.prefixLen,
  };
}

/** Whether the reconciler may replace or remove this route of the table. */
export function ownsCloudRoute(view: RouteOwnershipView | undefined, entry: CloudRouteEntry): boolean {
  if (!view || !entry.createdByUser) return false;
  const dst = parseCIDR(entry.destination);
  if (dst?.family !== 4) return false;
  const text = formatCIDR(dst);
  if (text === formatCIDR(view.ownSubnet)) return true;
  if (!view.sweeper || !networkContainsNetwork(view.network, dst) || text === formatCIDR(view.network))
    return false;
  if (view.liveSubnets.has(text)) return false;
  // Only routes flannel makes: to an instance, or left as a blackhole when it went away.
  return entry.instanceId !== undefined || entry.blackhole;
}
