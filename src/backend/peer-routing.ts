/** Small pure helpers shared by backends when turning a peer lease into kernel entries. */
import { parseIP } from "../ip/ip-address.js";
import { type IPNetwork, networkContains } from "../ip/ip-network.js";
import type { Lease } from "../lease/lease.js";
import { describeValue } from "../text/untrusted-text.js";
import type { PeerProblem } from "./backend.js";

/** True when `ip` is inside a network attached to our interface, i.e. reachable without a router. */
export function onSameLink(connected: readonly IPNetwork[], ip: string | undefined): boolean {
  const parsed = ip === undefined ? undefined : parseIP(ip);
  return parsed !== undefined && connected.some((net) => networkContains(net, parsed));
}

/**
 * Why a peer lease of another backend type is not routed (flanneld warns about these too), or undefined
 * when it is ours. `backendType` undefined is flanneld's udp backend, which writes no BackendType.
 */
export function foreignBackend(peer: Lease, backendType: string | undefined): PeerProblem | undefined {
  const type = peer.attrs.backendType;
  if (type === backendType) return undefined;
  const what =
    type === undefined ? "has no BackendType (flannel's udp backend)" : `is a ${describeValue(type)} lease`;
  return {
    key: peer.key,
    reason: `it ${what}, not ${backendType ?? "udp"}; every host of a network must use the same backend`,
  };
}
