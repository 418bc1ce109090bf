/**
 * The gce backend's pure core: route names as flanneld v0.7 wrote them, the route entries weft wants, the
 * Compute Engine Route resource <-> entry, and which agent removes routes whose lease is gone.
 * Shapes follow https://cloud.google.com/compute/docs/reference/rest/v1/routes (Route resource).
 */
import { formatCIDR, type IPNetwork, networkContainsNetwork, parseCIDR } from "../../ip/ip-network.js";
import type { Lease } from "../../lease/lease.js";
import type { KindShape } from "../../reconcile/state-kind.js";

/** flanneld's priority for its routes (backend/gce/api.go: Priority: 1000). */
export const ROUTE_PRIORITY = 1000;
export const ROUTE_PREFIX = "flannel-";
/**
 * A route of a lease we have not seen is left this long before the sweeper may remove it: its agent
 * inserts it only after writing its lease, so only the store watch's delay can hide the lease from us.
 */
export const SWEEP_GRACE_MS = 30_000;

/** flanneld's name: "flannel-" + the subnet with "." and "/" as "-": 10.244.3.0/24 -> flannel-10-244-3-0-24. */
export function routeName(subnet: IPNetwork): string {
  return ROUTE_PREFIX + formatCIDR(subnet).replace(/[./]/g, "-");
}

export interface GceRouteEntry {
  /** The Route's name, also the key. */
  readonly name: string;
  /** destRange, e.g. "10.244.3.0/24". */
  readonly destRange: string;
  /**
   * The instance URL packets go to, compared by instancePath(). Undefined in a desired entry: a live
   * peer's route, kept whatever it points at and never created by us (its own agent does that).
   */
  readonly nextHopInstance: string | undefined;
  /** creationTimestamp (RFC 3339) of an existing route; for the sweeper's grace period. */
  readonly created?: string | undefined;
}

/** "projects/p/zones/z/instances/i" of any full or partial instance URL, so URLs of either form compare equal. */
export function instancePath(url: string | undefined): string | undefined {
  return url?.match(/projects\/[^/]+\/zones\/[^/]+\/instances\/[^/?]+$/)?.[0];
}

/** "projects/p/global/networks/n" of a network URL. */
export function networkPath(url: string | undefined): string | undefined {
  return url?.match(/projects\/[^/]+\/global\/networks\/[^/?]+$/)?.[0];
}

export const gceRouteShape: KindShape<GceRouteEntry> = {
  name: "gce-route",
  plural: "GCE routes",
  key: (e) => e.name,
  same: (a, b) =>
    a.name === b.name &&
    a.destRange === b.destRange &&
    (a.nextHopInstance === undefined ||
      b.nextHopInstance === undefined ||
      instancePath(a.nextHopInstance) === instancePath(b.nextHopInstance)),
  describe: (e) =>
    `GCE route ${e.name} ${e.destRange} -> ${e.nextHopInstance ? instancePath(e.nextHopInstance) : "(its own agent's)"}`,
};

/** A Route resource as routes.list / routes.get return it, or undefined when it is not a flannel route. */
export function decodeRoute(resource: unknown): GceRouteEntry | undefined {
  if (typeof resource !== "object" || resource === null) return undefined;
  const r = resource as Record<string, unknown>;
  if (typeof r.name !== "string" || !r.name.startsWith(ROUTE_PREFIX)) return undefined;
  if (typeof r.destRange !== "string") return undefined;
  return {
    name: r.name,
    destRange: r.destRange,
    nextHopInstance: typeof r.nextHopInstance === "string" ? r.nextHopInstance : "",
    created: typeof r.creationTimestamp === "string" ? r.creationTimestamp : undefined,
  };
}

/** The routes.insert request body for an entry (the fields flanneld set, plus a description). */
export function encodeRoute(entry: GceRouteEntry, networkUrl: string): Record<string, unknown> {
  return {
    name: entry.name,
    network: networkUrl,
    destRange: entry.destRange,
    priority: ROUTE_PRIORITY,
    nextHopInstance: entry.nextHopInstance,
    description: "pod subnet route managed by weft (flannel gce backend)",
  };
}

/**
 * The agent that removes routes whose lease is gone: the holder of the lowest subnet among live leases.
 * Every agent computes the same answer from the same lease table, so exactly one sweeps.
 */
export function isSweeper(own: Lease, peers: Iterable<Lease>): boolean {
  if (!own.subnet) return false;
  const mine = own.subnet.ip;
  for (const peer of peers) if (peer.subnet && peer.subnet.ip < mine) return false;
  return true;
}

export interface GceDesired {
  readonly routes: GceRouteEntry[];
  readonly sweeper: boolean;
}

/** Our own route to our instance; the sweeper also lists live peers' routes, so only dead ones are removed. */
export function gceDesiredRoutes(own: Lease, peers: Iterable<Lease>, instanceUrl: string): GceDesired {
  const routes: GceRouteEntry[] = [];
  if (own.subnet)
    routes.push({
      name: routeName(own.subnet),
      destRange: formatCIDR(own.subnet),
      nextHopInstance: instanceUrl,
    });
  const list = [...peers];
  const sweeper = isSweeper(own, list);
  if (sweeper)
    for (const peer of list)
      if (peer.subnet)
        routes.push({
          name: routeName(peer.subnet),
          destRange: formatCIDR(peer.subnet),
          nextHopInstance: undefined,
        });
  return { routes, sweeper };
}

/**
 * Whether an existing route is ours to remove when not desired: our own name always; as the sweeper,
 * any flannel-* route inside a Network that is older than the grace period (a new peer's route may be
 * listed before its lease reaches us).
 */
export function ownsRoute(
  route: GceRouteEntry,
  ownName: string | undefined,
  sweeper: boolean,
  networks: readonly IPNetwork[],
  now: number,
): boolean {
  if (route.name === ownName) return true;
  if (!sweeper) return false;
  const dst = parseCIDR(route.destRange);
  if (!dst || !networks.some((n) => networkContainsNetwork(n, dst))) return false;
  const created = route.created ? Date.parse(route.created) : Number.NaN;
  return Number.isFinite(created) && now - created >= SWEEP_GRACE_MS;
}
