/**
 * What flanneld's vxlan backend programs per peer, as data: a permanent neighbour entry for the peer's
 * VTEP address (its subnet's .0), an FDB entry sending that MAC to the peer host, and an onlink route to
 * the peer's subnet via the VTEP address. With DirectRouting, a peer on our L2 gets a plain route via its
 * host instead.
 */
import { formatIP } from "../../ip/ip-address.js";
import { formatCIDR, type IPNetwork, networkAddress } from "../../ip/ip-network.js";
import type { Lease } from "../../lease/lease.js";
import type { FdbEntry } from "../../reconcile/kinds/fdb-kind.js";
import type { NeighEntry } from "../../reconcile/kinds/neigh-kind.js";
import type { RouteEntry } from "../../reconcile/kinds/route-kind.js";
import type { DesiredPeers, ExternalInterface, PeerProblem } from "../backend.js";
import { foreignBackend, onSameLink } from "../peer-routing.js";
import { readVtepMac } from "./vxlan-backend-data.js";

export interface VxlanFamilyPlan {
  readonly family: 4 | 6;
  readonly device: string;
}

export function vxlanDesiredState(
  own: Lease,
  peers: Iterable<Lease>,
  families: readonly VxlanFamilyPlan[],
  directRouting: boolean,
  ext: ExternalInterface,
): DesiredPeers {
  const routes: RouteEntry[] = [];
  const neighs: NeighEntry[] = [];
  const fdbs: FdbEntry[] = [];
  const problems: PeerProblem[] = [];
  for (const peer of peers) {
    if (peer.key === own.key) continue;
    const foreign = foreignBackend(peer, "vxlan");
    if (foreign) {
      problems.push(foreign);
      continue;
    }
    for (const { family, device } of families) {
      const subnet: IPNetwork | undefined = family === 4 ? peer.subnet : peer.ipv6Subnet;
      const publicIP = family === 4 ? peer.attrs.publicIP : peer.attrs.publicIPv6;
      if (!subnet) continue;
      if (!publicIP) {
        problems.push({ key: peer.key, reason: `it has no ${family === 4 ? "PublicIP" : "PublicIPv6"}` });
        continue;
      }
      const dst = formatCIDR(subnet);
      if (directRouting && onSameLink(ext.connected, publicIP)) {
        routes.push({ dst, gateway: publicIP, dev: ext.name, onlink: false });
        continue;
      }
      const vtep = readVtepMac(family === 4 ? peer.attrs.backendData : peer.attrs.backendV6Data);
      if ("reason" in vtep) {
        problems.push({ key: peer.key, reason: vtep.reason });
        continue;
      }
      const vtepIP = formatIP(networkAddress(subnet));
      neighs.push({ dev: device, ip: vtepIP, mac: vtep.mac });
      fdbs.push({ dev: device, mac: vtep.mac, dst: publicIP });
      routes.push({ dst, gateway: vtepIP, dev: device, onlink: true });
    }
  }
  return { state: { route: routes, neigh: neighs, fdb: fdbs }, problems };
}
