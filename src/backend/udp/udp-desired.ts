/**
 * The udp backend's desired state (pure): the route for the whole Network through flannel0, as flanneld
 * adds it, and the forwarding table, computed from the leases: each peer's IPv4 subnet
 * maps to the peer's PublicIP and the configured port, as flanneld's proxy routes are set from lease
 * events. flanneld's udp leases carry no BackendType; a lease naming another backend is a host on a
 * different datapath, which cannot decapsulate our packets, so it is reported, not routed.
 */
import { formatCIDR, type IPNetwork, networksOverlap } from "../../ip/ip-network.js";
import type { Lease } from "../../lease/lease.js";
import { RT_SCOPE_UNIVERSE } from "../../netlink/constants.js";
import type { RouteEntry } from "../../reconcile/kinds/route-kind.js";
import { boundText } from "../../text/untrusted-text.js";
import type { PeerProblem } from "../backend.js";
import type { UdpPeerEntry } from "./udp-peer-kind.js";

export interface ForwardingTable {
  readonly entries: readonly UdpPeerEntry[];
  readonly problems: readonly PeerProblem[];
}

/** flanneld's route: the whole Network via flannel0, scope universe (a peer's subnet is not on-link). */
export function udpNetworkRoute(network: IPNetwork, device: string): RouteEntry {
  return {
    dst: formatCIDR(network),
    gateway: undefined,
    dev: device,
    onlink: false,
    scope: RT_SCOPE_UNIVERSE,
  };
}

/** True for the BackendType values a udp host publishes: none (flanneld), or "udp" written by hand. */
export function isUdpLease(lease: Lease): boolean {
  const type = lease.attrs.backendType;
  return type === undefined || type === "" || type === "udp";
}

export function udpForwardingTable(own: Lease, peers: Iterable<Lease>, port: number): ForwardingTable {
  const candidates: { lease: Lease; subnet: IPNetwork; peer: string }[] = [];
  const problems: PeerProblem[] = [];
  for (const lease of peers) {
    if (lease.key === own.key) continue;
    if (!isUdpLease(lease)) {
      problems.push({
        key: lease.key,
        reason: `it runs the ${boundText(lease.attrs.backendType ?? "")} backend; this network's hosts use udp, so its pods are unreachable from here`,
      });
      continue;
    }
    const subnet = lease.subnet;
    if (!subnet) continue; // an IPv6-only lease: flannel's udp backend carries IPv4 only
    if (!lease.attrs.publicIP) {
      problems.push({ key: lease.key, reason: "it has no PublicIP to send its packets to" });
      continue;
    }
    if (own.subnet && networksOverlap(own.subnet, subnet)) {
      problems.push({ key: lease.key, reason: `its subnet overlaps ours (${formatCIDR(own.subnet)})` });
      continue;
    }
    candidates.push({ lease, subnet, peer: lease.attrs.publicIP });
  }
  // The forwarder's table holds disjoint subnets; of overlapping leases (only a hand-written one can
  // overlap another) the first in address order wins and the other is reported.
  candidates.sort((a, b) => (a.subnet.ip < b.subnet.ip ? -1 : a.subnet.ip > b.subnet.ip ? 1 : 0));
  const entries: UdpPeerEntry[] = [];
  let last: IPNetwork | undefined;
  for (const { lease, subnet, peer } of candidates) {
    if (last && networksOverlap(last, subnet)) {
      problems.push({
        key: lease.key,
        reason: `its subnet overlaps another lease's (${formatCIDR(last)})`,
      });
      continue;
    }
    last = subnet;
    entries.push({ subnet: formatCIDR(subnet), peer, port });
  }
  return { entries, problems };
}
