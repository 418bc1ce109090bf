/**
 * Before weftd reaches its store. An older weft routed lease keys for the host's own networks through its
 * vxlan device (`172.30.0.0/24 via 172.30.0.0 dev flannel.1 onlink`, which replaced the kernel's route to
 * eth0's network); that cuts the host off from etcd, so no reconcile after an upgrade could ever run. A
 * route on a weft vxlan device that covers an address of another interface of the host is never right:
 * it is removed, and the interface's prefix route it replaced is put back as the kernel had it.
 */
import { formatIP, parseIP } from "../ip/ip-address.js";
import { formatCIDR, makeNetwork, networkContains, networkEquals, parseCIDR } from "../ip/ip-network.js";
import {
  RT_SCOPE_LINK,
  RT_SCOPE_UNIVERSE,
  RT_TABLE_MAIN,
  RTN_UNICAST,
  RTPROT_KERNEL,
} from "../netlink/constants.js";
import type { Address, Link, Route, RouteSpec, RtNetlink } from "../netlink/index.js";
import { describeError } from "../user-error.js";

/** Device names weft's vxlan backend uses: flannel.<VNI> and flannel-v6.<VNI>. */
const WEFT_VXLAN = /^flannel(-v6)?\.\d+$/;

export interface UnderlayRescue {
  readonly remove: readonly Route[];
  readonly restore: readonly RouteSpec[];
}

/** What to undo: routes on weft's vxlan devices over the host's own addresses. Pure. */
export function planUnderlayRescue(links: Link[], addresses: Address[], routes: Route[]): UnderlayRescue {
  const weft = new Set(
    links.filter((l) => l.kind === "vxlan" && WEFT_VXLAN.test(l.name)).map((l) => l.index),
  );
  // Addresses that make a network of the host (a /32 or /128 makes none), as the lease scope sees them.
  const own = addresses.flatMap((a) => {
    const ip = parseIP(a.address);
    const network = ip && a.prefixlen < (ip.family === 4 ? 32 : 128);
    return network && a.scope === RT_SCOPE_UNIVERSE && !weft.has(a.index) ? [{ a, ip }] : [];
  });
  const remove: Route[] = [];
  const restore: RouteSpec[] = [];
  for (const route of routes) {
    if (route.oif === undefined || !weft.has(route.oif) || route.protocol === RTPROT_KERNEL) continue;
    const dst = parseCIDR(route.dst);
    if (route.table !== RT_TABLE_MAIN || route.type !== RTN_UNICAST || !dst) continue;
    const covered = own.filter(({ ip }) => networkContains(dst, ip));
    if (covered.length === 0) continue;
    remove.push(route);
    for (const { a, ip } of covered) {
      const prefix = makeNetwork(ip, a.prefixlen);
      const present = routes.some(
        (r) => r !== route && r.oif === a.index && networkEquals(parseCIDR(r.dst), prefix),
      );
      if (!networkEquals(prefix, dst) || present) continue;
      restore.push({
        dst: formatCIDR(prefix),
        oif: a.index,
        scope: RT_SCOPE_LINK,
        protocol: RTPROT_KERNEL,
        table: RT_TABLE_MAIN,
        ...(ip.family === 4 ? { prefsrc: formatIP(ip) } : { priority: 256 }),
      });
    }
  }
  return { remove, restore };
}

/** Applies the plan; never fails weftd's start (it only logs what it could not do). */
export async function rescueUnderlay(netlink: RtNetlink, log: (message: string) => void): Promise<void> {
  try {
    const links = await netlink.linkList();
    const names = new Map(links.map((l) => [l.index, l.name]));
    const routes = [
      ...(await netlink.routeList(4, { table: RT_TABLE_MAIN })),
      ...(await netlink.routeList(6, { table: RT_TABLE_MAIN })),
    ];
    const plan = planUnderlayRescue(links, await netlink.addrList(), routes);
    for (const route of plan.remove) {
      const via = route.gateway ? ` via ${route.gateway}` : "";
      await netlink.routeDel({
        dst: route.dst,
        gateway: route.gateway,
        oif: route.oif,
        table: RT_TABLE_MAIN,
      });
      log(
        `removed route ${route.dst}${via} dev ${names.get(route.oif!)}: it covered an address of this host (an older weft routed a lease it should have refused)`,
      );
    }
    for (const spec of plan.restore) {
      await netlink.routeAdd(spec);
      log(`restored the route ${spec.dst} dev ${names.get(spec.oif!)} that it had replaced`);
    }
  } catch (err) {
    log(`cannot check the host's routes for ones an older weft left: ${describeError(err)}`);
  }
}
