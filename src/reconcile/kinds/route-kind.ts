/**
 * Routes in the main table: a peer's subnet via its VTEP address (vxlan, onlink) or its host (host-gw,
 * vxlan DirectRouting). weft writes them with proto boot, as flanneld does; kernel-made routes (proto
 * kernel) and other tables are never ours.
 */
import { formatCIDR, parseCIDR } from "../../ip/ip-network.js";
import { RT_TABLE_MAIN, RTN_UNICAST, RTPROT_BOOT, RTPROT_KERNEL } from "../../netlink/constants.js";
import type { Route, RouteSpec, RtNetlink } from "../../netlink/index.js";
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
  /** RT_SCOPE_*; unset: link scope without a gateway, else universe (udp's Network route is universe). */
  readonly scope?: number;
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
    ...(r.scope === undefined ? {} : { scope: r.scope }),
    table: RT_TABLE_MAIN,
    protocol: RTPROT_BOOT,
  };
}

/** The request that deletes exactly this route. */
export function encodeRouteRemove(r: RouteEntry, oif: number): RouteSpec {
  return { dst: r.dst, gateway: r.gateway, oif, table: RT_TABLE_MAIN };
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
      await netlink.routeReplace(encodeRoutePut(entry, links.indexOf(entry.dev)));
    },
    remove(entry) {
      return removeUnlessGone(() => netlink.routeDel(encodeRouteRemove(entry, links.indexOf(entry.dev))));
    },
  };
}
