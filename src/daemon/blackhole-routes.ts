/**
 * --ip-blackhole-route: a blackhole route for the host's own subnet(s), as flanneld adds, so traffic to
 * an unused address of our subnet is dropped here instead of leaving by the default route (hosts whose
 * CNI has no bridge, e.g. Canal). A desired entry of the route kind: repaired when deleted, moved with
 * the lease. Pure.
 */
import type { NetworkConfig } from "../config/network-config.js";
import { formatCIDR, type IPNetwork } from "../ip/ip-network.js";
import type { Lease } from "../lease/lease.js";
import { blackholeRoute, type RouteEntry, routeShape } from "../reconcile/kinds/route-kind.js";
import type { DesiredState } from "../reconcile/state-kind.js";

export function ownBlackholeRoutes(config: NetworkConfig, lease: Lease): RouteEntry[] {
  const subnets = [config.enableIPv4 && lease.subnet, config.enableIPv6 && lease.ipv6Subnet];
  return subnets.filter((n): n is IPNetwork => !!n).map((n) => blackholeRoute(formatCIDR(n)));
}

/** The backend's desired state plus our blackhole routes. */
export function withBlackholeRoutes(state: DesiredState, routes: readonly RouteEntry[]): DesiredState {
  if (routes.length === 0) return state;
  return { ...state, [routeShape.name]: [...(state[routeShape.name] ?? []), ...routes] };
}
