/**
 * The networks this host reaches without weft, for the lease scope rule: the networks of the addresses
 * of its interfaces (which stand even if someone replaced their kernel route), and every link-scope route
 * of the main table (a docker0 bridge, an operator's device route), except on weft's own devices.
 */
import type { ExternalInterface } from "../backend/backend.js";
import { parseIP } from "../ip/ip-address.js";
import { formatCIDR, type IPNetwork, makeNetwork, parseCIDR } from "../ip/ip-network.js";
import { RT_SCOPE_LINK, RT_SCOPE_UNIVERSE, RT_TABLE_MAIN, RTN_UNICAST } from "../netlink/constants.js";
import type { RtNetlink } from "../netlink/index.js";
import type { HostNetwork } from "../subnet/lease-scope.js";

export async function readHostNetworks(
  netlink: RtNetlink,
  ext: ExternalInterface,
  weftDevices: readonly string[],
): Promise<HostNetwork[]> {
  const names = new Map((await netlink.linkList()).map((l) => [l.index, l.name]));
  const found = new Map<string, HostNetwork>();
  const add = (network: IPNetwork, dev: string | undefined) => {
    const key = formatCIDR(network);
    if (dev && !weftDevices.includes(dev) && !found.has(key)) found.set(key, { network, dev });
  };
  for (const network of ext.connected) add(network, ext.name);
  for (const a of await netlink.addrList()) {
    const ip = parseIP(a.address);
    // A /32 or /128 makes no network (and weft's own VTEP address is one).
    if (!ip || a.scope !== RT_SCOPE_UNIVERSE || a.prefixlen >= (ip.family === 4 ? 32 : 128)) continue;
    add(makeNetwork(ip, a.prefixlen), names.get(a.index));
  }
  for (const family of [4, 6] as const) {
    for (const route of await netlink.routeList(family, { table: RT_TABLE_MAIN })) {
      if (route.scope !== RT_SCOPE_LINK || route.type !== RTN_UNICAST || route.gateway !== undefined)
        continue;
      const network = parseCIDR(route.dst);
      if (network) add(network, route.oif === undefined ? undefined : names.get(route.oif));
    }
  }
  return [...found.values()];
}
