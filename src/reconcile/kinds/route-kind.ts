/**
 * Routes in the main table: a peer's subnet via its VTEP address (vxlan, onlink) or its host (host-gw,
 * vxlan DirectRouting). weft writes them with proto boot, as flanneld does; kernel-made routes (proto
 * kernel) and other tables are never ours.
 */
import { formatCIDR, parseCIDR } from "../../ip/ip-network.js";
import { RT_TABLE_MAIN, RTN_UNICAST, RTPROT_BOOT, RTPROT_KERNEL } from "../../netlink/constants.js";
import { NetlinkError, type Route, type RouteSpec, type RtNetlink } from "../../netlink/index.js";
import { isOurRoute } from "../reconciler.js";
import type { KindShape, StateKind } from "../state-kind.js";
import { removeUnlessGone } from "./gone.js";
import type { LinkNames } from "./link-names.js";

export interface RouteEntry {
  /** Destination network in CIDR form, e.g. "10.244.4.0/24". */
  readonly dst: string;
  readonly gateway: string | undefined;
  readonly dev: string;
  readonly onlink: boolean;
}

export const routeShape: KindShape<RouteEntry> = {
  name: "route",
  plural: "routes",
  // One route per destination: a peer subnet is reached one way.
  key: (r) => r.dst,
  same: (a, b) => a.dst === b.dst && a.gateway === b.gateway && a.dev === b.dev && a.onlink === b.onlink,
  describe: (r) =>
    `route ${r.dst}${r.gateway ? ` via ${r.gateway}` : ""} dev ${r.dev}${r.onlink ? " onlink" : ""}`,
};

/** A main-table unicast route not made by the kernel itself, as an entry; undefined for any other. */
export function decodeRouteEntry(
  r: Route,
  nameOf: (index: number | undefined) => string | undefined,
): RouteEntry | undefined {
  if (r.table !== RT_TABLE_MAIN || r.protocol === RTPROT_KERNEL || r.type !== RTN_UNICAST) return undefined;
  const dst = parseCIDR(r.dst);
  const dev = nameOf(r.oif);
  return dst && dev ? { dst: formatCIDR(dst), gateway: r.gateway, dev, onlink: r.onlink } : undefined;
}

/** The request that writes the route (replace semantics). */
export function encodeRoutePut(r: RouteEntry, oif: number): RouteSpec {
  return {
    dst: r.dst,
    gateway: r.gateway,
    oif,
    onlink: r.onlink,
    table: RT_TABLE_MAIN,
    protocol: RTPROT_BOOT,
  };
}

/** The request that deletes exactly this route. */
export function encodeRouteRemove(r: RouteEntry, oif: number): RouteSpec {
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
    owns: isOurRoute,
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
    },
    remove(entry) {
      return removeUnlessGone(() => netlink.routeDel(encodeRouteRemove(entry, links.indexOf(entry.dev))));
    },
  };
}
