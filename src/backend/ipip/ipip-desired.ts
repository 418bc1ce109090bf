/**
 * What flanneld's ipip backend programs per peer, as data: an onlink route to the peer's subnet via the
 * peer's PublicIP through flannel.ipip (the kernel encapsulates towards the gateway address). With
 * DirectRouting, a peer on our L2 gets a plain route via its host through the external interface.
 * ipip is IPv4 only, as in flannel.
 */
import { formatCIDR } from "../../ip/ip-network.js";
import type { Lease } from "../../lease/lease.js";
import type { RouteEntry } from "../../reconcile/kinds/route-kind.js";
import type { DesiredPeers, ExternalInterface, PeerProblem } from "../backend.js";
import { foreignBackend, onSameLink } from "../peer-routing.js";
import { IPIP_DEVICE } from "./ipip-config.js";

export function ipipDesiredState(
  own: Lease,
  peers: Iterable<Lease>,
  directRouting: boolean,
  ext: ExternalInterface,
): DesiredPeers {
  const routes: RouteEntry[] = [];
  const problems: PeerProblem[] = [];
  for (const peer of peers) {
    if (peer.key === own.key) continue;
    const foreign = foreignBackend(peer, "ipip");
    if (foreign) {
      problems.push(foreign);
      continue;
    }
    if (!peer.subnet) continue;
    const gateway = peer.attrs.publicIP;
    if (!gateway) {
      problems.push({ key: peer.key, reason: "it has no PublicIP" });
      continue;
    }
    const dst = formatCIDR(peer.subnet);
    if (directRouting && onSameLink(ext.connected, gateway)) {
      routes.push({ dst, gateway, dev: ext.name, onlink: false });
    } else {
      routes.push({ dst, gateway, dev: IPIP_DEVICE, onlink: true });
    }
  }
  return { state: { route: routes }, problems };
}
