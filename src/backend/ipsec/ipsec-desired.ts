/**
 * What flanneld's ipsec backend asks charon for, as data: per peer, one IKE connection between the two
 * hosts' PublicIPs with one CHILD SA between the two subnets (tunnel mode), authenticated by the PSK.
 * Names are flannel's, so `swanctl --list-sas` reads the same on both: connection
 * "<our PublicIP>-<our subnet>-<peer subnet>-<peer PublicIP>", child "<our subnet>-<peer subnet>".
 */
import { formatCIDR } from "../../ip/ip-network.js";
import type { Lease } from "../../lease/lease.js";
import type { DesiredPeers, PeerProblem } from "../backend.js";
import { foreignBackend } from "../peer-routing.js";

export interface IpsecConnEntry {
  readonly name: string;
  readonly child: string;
  readonly localAddr: string;
  readonly remoteAddr: string;
  readonly localTs: string;
  readonly remoteTs: string;
  readonly udpEncap: boolean;
  readonly espProposal: string;
}

export const IPSEC_CONN_KIND = "ipsec-conn";

export function ipsecDesiredState(
  own: Lease,
  peers: Iterable<Lease>,
  settings: { udpEncap: boolean; espProposal: string },
): DesiredPeers {
  const conns: IpsecConnEntry[] = [];
  const problems: PeerProblem[] = [];
  const localAddr = own.attrs.publicIP;
  for (const peer of peers) {
    if (peer.key === own.key) continue;
    const foreign = foreignBackend(peer, "ipsec");
    if (foreign) {
      problems.push(foreign);
      continue;
    }
    if (!peer.subnet || !own.subnet || !localAddr) continue;
    const remoteAddr = peer.attrs.publicIP;
    if (!remoteAddr) {
      problems.push({ key: peer.key, reason: "it has no PublicIP" });
      continue;
    }
    const localTs = formatCIDR(own.subnet);
    const remoteTs = formatCIDR(peer.subnet);
    conns.push({
      name: `${localAddr}-${localTs}-${remoteTs}-${remoteAddr}`,
      child: `${localTs}-${remoteTs}`,
      localAddr,
      remoteAddr,
      localTs,
      remoteTs,
      udpEncap: settings.udpEncap,
      espProposal: settings.espProposal,
    });
  }
  return { state: { [IPSEC_CONN_KIND]: conns }, problems };
}
