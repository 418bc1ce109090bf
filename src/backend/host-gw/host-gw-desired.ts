/** host-gw: a route to each peer's subnet via the peer host itself, which must share our L2. */
import { formatCIDR } from "../../ip/ip-network.js";
import type { Lease } from "../../lease/lease.js";
import type { RouteEntry } from "../../reconcile/kinds/route-kind.js";
import { boundText } from "../../text/untrusted-text.js";
import type { DesiredPeers, ExternalInterface, PeerProblem } from "../backend.js";
import { foreignBackend, onSameLink } from "../peer-routing.js";

export function hostGwDesiredState(
  own: Lease,
  peers: Iterable<Lease>,
  families: readonly (4 | 6)[],
  ext: ExternalInterface,
): DesiredPeers {
  const routes: RouteEntry[] = [];
  const problems: PeerProblem[] = [];
  for (const peer of peers) {
    if (peer.key === own.key) continue;
    const foreign = foreignBackend(peer, "host-gw");
    if (foreign) {
      problems.push(foreign);
      continue;
    }
    for (const family of families) {
      const subnet = family === 4 ? peer.subnet : peer.ipv6Subnet;
      const gateway = family === 4 ? peer.attrs.publicIP : peer.attrs.publicIPv6;
      if (!subnet) continue;
      if (!onSameLink(ext.connected, gateway)) {
        problems.push({
          key: peer.key,
          reason: `its host ${gateway === undefined ? "(no address)" : boundText(gateway)} is not on the same network as ${ext.name}; host-gw needs all hosts on one L2 (use vxlan otherwise)`,
        });
        continue;
      }
      routes.push({ dst: formatCIDR(subnet), gateway, dev: ext.name, onlink: false });
    }
  }
  return { state: { route: routes }, problems };
}
