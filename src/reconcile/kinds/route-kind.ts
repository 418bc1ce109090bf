/**
 * Routes in the main table: a peer's subnet via its VTEP address (vxlan, onlink) or its host (host-gw,
 * vxlan DirectRouting), and with --ip-blackhole-route a blackhole for our own subnet. weft writes them
 * with proto boot, as flanneld does; kernel-made routes (proto kernel) and other tables are never ours.
 */
import { formatCIDR, networkContainsNetwork, parseCIDR } from "../../ip/ip-network.js";
import {
  RT_TABLE_MAIN,
  RTN_BLACKHOLE,
  RTN_UNICAST,
  RTPROT_BOOT,
  RTPROT_KERNEL,
} from "../../netlink/constants.js";
import { NetlinkError } from "../../netlink/errors.js";
import type { Route, RouteSpec, RtNetlink } from "../../netlink/index.js";
import { isOurRoute, type OwnershipScope } from "../reconciler.js";
import type { KindShape, StateKind } from "../state-kind.js";
import { removeUnlessGone } from "./gone.js";
import type { LinkNames } from "./link-names.js";

export interface RouteEntry {
  /** Destination network in CIDR form, e.g. "10.244.4.0/24". */
  readonly dst: string;
  readonly gateway: string | undefined;
  /** The output device; "" for a blackhole. */
  readonly dev: string;
  readonly onlink: boolean;
  /** RT_SCOPE_*; unset: link scope without a gateway, else universe (udp's Network route is universe). */
  readonly scope?: number;
  /** Absent: a unicast route. */
  readonly type?: "blackhole";
}

/** A route that drops what it matches: flannel's --ip-blackhole-route for the host's own subnet. */
export function blackholeRoute(dst: string): RouteEntry {
  return { dst, gateway: undefined, dev: "", onlink: false, type: "blackhole" };
}

/**
 * A blackhole for a block of the pod network is ours (only flannel's --ip-blackhole-route makes them):
 * so the one of a lease we lost goes, and turning the flag off removes it. Other routes: isOurRoute.
 */
export function ownsRoute(route: RouteEntry, scope: OwnershipScope): boolean {
  if (route.type !== "blackhole") return isOurRoute(route, scope);
  const dst = parseCIDR(route.dst);
  return dst !== undefined && scope.networks.some((net) => networkContainsNetwork(net, dst));
}

export const routeShape: KindShape<RouteEntry> = {
  name: "route",
  plural: "routes",
  // One route per destination: a peer subnet is reached one way.
  key: (r) => r.dst,
  same: (a, b) =>
    a.dst === b.dst &&
    a.gateway === b.gateway &&
    a.dev === b.dev &&
    a.onlink === b.onlink &&
    a.type === b.type,
  describe: (r) =>
    r.type === "blackhole"
      ? `route blackhole ${r.dst}`
      : `route ${r.dst}${r.gateway ? ` via ${r.gateway}` : ""} dev ${r.dev}${r.onlink ? " onlink" : ""}`,
};

/**
 * A main-table unicast or blackhole route not made by the kernel itself, as an entry; undefined for any
 * other. A blackhole's device is left out (IPv6 ones show lo).
 */
export function decodeRouteEntry(
  r: Route,
  nameOf: (index: number | undefined) => string | undefined,
): RouteEntry | undefined {
  if (r.table !== RT_TABLE_MAIN || r.protocol === RTPROT_KERNEL) return undefined;
  if (r.type === RTN_BLACKHOLE) {
    const net = parseCIDR(r.dst);
    return net && blackholeRoute(formatCIDR(net));
  }
  if (r.type !== RTN_UNICAST) return undefined;
  const dst = parseCIDR(r.dst);
  const dev = nameOf(r.oif);
  return dst && dev ? { dst: formatCIDR(dst), gateway: r.gateway, dev, onlink: r.onlink } : undefined;
}

/** The request that writes the route (replace semantics; a blackhole is added, see routeKind's put). */
export function encodeRoutePut(r: RouteEntry, oif: number | undefined): RouteSpec {
  if (r.type === "blackhole")
    return { dst: r.dst, table: RT_TABLE_MAIN, protocol: RTPROT_BOOT, type: RTN_BLACKHOLE };
  return {
    dst: r.dst,
    gateway: r.gateway,
    oif,
    onlink: r.onlink,
    ...(r.scope === undefined ? {} : { scope: r.scope }),
    table: RT_TABLE_MAIN,
    protocol: RTPROT_BOOT,
  };
}

/** The request that deletes exactly this route (a blackhole: never the bridge's route to the same subnet). */
export function encodeRouteRemove(r: RouteEntry, oif: number | undefined): RouteSpec {
  if (r.type === "blackhole")
    return { dst: r.dst, table: RT_TABLE_MAIN, protocol: RTPROT_BOOT, type: RTN_BLACKHOLE };
  return { dst: r.dst, gateway: r.gateway, oif, table: RT_TABLE_MAIN };
}

/** The metric the kernel gives an IPv6 route written without one (ours), which a replace overwrites. */
const IPV6_DEFAULT_METRIC = 1024;

/**
 * IPv6 checks an onlink gateway against the table, and refuses (EINVAL) when a route sends it out another
 * device. The route to the same subnet another way (a DirectRouting route via the peer host, now to be a
 * vxlan one) does exactly that, so replacing it fails forever unless it goes first.
 */
export function blockedOnlinkReplace(entry: RouteEntry, err: unknown): boolean {
  return entry.onlink && entry.dst.includes(":") && err instanceof NetlinkError && err.code === "EINVAL";
}

export function routeKind(netlink: RtNetlink, links: LinkNames): StateKind<RouteEntry> {
  const nameOf = (index: number | undefined) => links.nameOf(index);
  return {
    ...routeShape,
    layer: 1,
    events: {
      groups: ["ipv4-route", "ipv6-route"],
      changeOf: (event) => {
        if (event.kind !== "route") return undefined;
        const entry = decodeRouteEntry(event.route, nameOf);
        return entry && { action: event.action, entry };
      },
    },
    owns: ownsRoute,
    async readActual() {
      const out: RouteEntry[] = [];
      for (const family of [4, 6] as const) {
        for (const route of await netlink.routeList(family, { table: RT_TABLE_MAIN })) {
          const entry = decodeRouteEntry(route, nameOf);
          if (entry) out.push(entry);
        }
      }
      return out;
    },
    async put(entry) {
      if (entry.type !== "blackhole") {
        const spec = encodeRoutePut(entry, links.indexOf(entry.dev));
        try {
          await netlink.routeReplace(spec);
        } catch (err) {
          if (!blockedOnlinkReplace(entry, err)) throw err;
          // The route the replace would overwrite is in its way: remove it, then write ours.
          await removeUnlessGone(() =>
            netlink.routeDel({ dst: entry.dst, table: RT_TABLE_MAIN, priority: IPV6_DEFAULT_METRIC }),
          );
          await netlink.routeReplace(spec);
        }
        return;
      }
      // Added, never replaced: a replace would overwrite a bridge's route to the same subnet (IPv4), which
      // already keeps the subnet's traffic on the host, so that EEXIST is no failure (flannel logs it).
      await netlink.routeAdd(encodeRoutePut(entry, undefined)).catch((err: unknown) => {
        if (!(err instanceof NetlinkError && err.code === "EEXIST")) throw err;
      });
    },
    remove(entry) {
      const oif = entry.type === "blackhole" ? undefined : links.indexOf(entry.dev);
      return removeUnlessGone(() => netlink.routeDel(encodeRouteRemove(entry, oif)));
    },
  };
}
