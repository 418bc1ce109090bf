/** Small pure helpers shared by backends when turning a peer lease into kernel entries. */
import { parseIP } from "../ip/ip-address.js";
import { type IPNetwork, networkContains } from "../ip/ip-network.js";

/** True when `ip` is inside a network attached to our interface, i.e. reachable without a router. */
export function onSameLink(connected: readonly IPNetwork[], ip: string | undefined): boolean {
  const parsed = ip === undefined ? undefined : parseIP(ip);
  return parsed !== undefined && connected.some((net) => networkContains(net, parsed));
}
