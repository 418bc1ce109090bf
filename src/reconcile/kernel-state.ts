/**
 * The kernel state weft manages, in plain values: routes to peers' subnets, and on a vxlan device the
 * neighbour (ARP/NDP) and FDB entries that map a peer's VTEP address to its MAC and its host.
 * Backends compute the desired set; the reconciler compares it with what the kernel has.
 */

export interface RouteEntry {
  /** Destination network in CIDR form, e.g. "10.244.4.0/24". */
  readonly dst: string;
  readonly gateway: string | undefined;
  readonly dev: string;
  readonly onlink: boolean;
}

export interface NeighEntry {
  readonly dev: string;
  readonly ip: string;
  readonly mac: string;
}

export interface FdbEntry {
  readonly dev: string;
  readonly mac: string;
  /** The peer host's underlay address the MAC is reached at. */
  readonly dst: string;
}

export interface KernelState {
  readonly routes: readonly RouteEntry[];
  readonly neighs: readonly NeighEntry[];
  readonly fdbs: readonly FdbEntry[];
}

export const routeKey = (r: RouteEntry): string => r.dst;
export const neighKey = (n: NeighEntry): string => `${n.dev}|${n.ip}`;
export const fdbKey = (f: FdbEntry): string => `${f.dev}|${f.mac}`;

export function sameRoute(a: RouteEntry, b: RouteEntry): boolean {
  return a.dst === b.dst && a.gateway === b.gateway && a.dev === b.dev && a.onlink === b.onlink;
}
export function sameNeigh(a: NeighEntry, b: NeighEntry): boolean {
  return a.dev === b.dev && a.ip === b.ip && a.mac === b.mac;
}
export function sameFdb(a: FdbEntry, b: FdbEntry): boolean {
  return a.dev === b.dev && a.mac === b.mac && a.dst === b.dst;
}
