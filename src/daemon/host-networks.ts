/**
 * The networks this host reaches without weft, for the lease scope rule: every link-scope route of the
 * main table (eth0's connected network, a docker0 bridge, an operator's device route) except on weft's
 * own devices, plus the external interface's networks from its addresses, which stand even if someone
 * replaced their kernel route.
 */
import type { ExternalInterface } from "../backend/backend.js";
import { formatCIDR, parseCIDR } from "../ip/ip-network.js";
import { RT_SCOPE_LINK, RT_TABLE_MAIN, RTN_UNICAST } from "../netlink/constants.js";
import type { RtNetlink } from "../netlink/index.js";
import type { HostNetwork } from "../subnet/lease-scope.js";

export async function readHostNetworks(
  netlink: RtNetlink,
  ext: ExternalInterface,
  weftDevices: readonly string[],
): Promise<HostNetwork[]> {
  const names = new Map((await netlink.linkList()).map((l) => [l.index, l.name]));
  const found = new Map<string, HostNetwork>();
  for (const network of ext.connected) found.set(formatCIDR(network), { network, dev: ext.name });
  for (const family of [4, 6] as const) {
    for (const route of await netlink.routeList(family, { table: RT_TABLE_MAIN })) {
      if (route.scope !== RT_SCOPE_LINK || route.type !== RTN_UNICAST || route.gateway !== undefined)
        continue;
      const dev = route.oif === undefined ? undefined : names.get(route.oif);
      const network = parseCIDR(route.dst);
      if (!dev || !network || weftDevices.includes(dev)) continue;
      const key = formatCIDR(network);
      if (!found.has(key)) found.set(key, { network, dev });
    }
  }
  return [...found.values()];
}
