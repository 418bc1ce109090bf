/**
 * The udp backend's desired forwarding table, computed from the leases (pure): each peer's IPv4 subnet
 * maps to the peer's PublicIP and the configured port, as flanneld's proxy routes are set from lease
 * events. flanneld's udp leases carry no BackendType; a lease naming another backend is a host on a
 * different datapath, which cannot decapsulate our packets, so it is reported, not routed.
 */
import { formatCIDR, type IPNetwork, networksOverlap } from "../../ip/ip-network.js";
import type { Lease } from "../../lease/lease.js";
import type { PeerProblem } from "../backend.js";

export interface ForwardingEntry {
  /** The peer's subnet, e.g. "10.244.2.0/24": packets to it go to the peer. */
  readonly subnet: string;
  readonly network: string;
  readonly prefixLen: number;
  /** The peer host's address and the UDP port it listens on. */
  readonly peer: string;
  readonly port: number;
}

export interface ForwardingTable {
  readonly entries: readonly ForwardingEntry[];
  readonly problems: readonly PeerProblem[];
}

export const forwardingKey = (e: ForwardingEntry): string => e.subnet;

export function sameForwarding(a: ForwardingEntry, b: ForwardingEntry): boolean {
  return a.subnet === b.subnet && a.peer === b.peer && a.port === b.port;
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
        reason: `it runs the ${lease.attrs.backendType} backend; this network's hosts use udp, so its pods are unreachable from here`,
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
  const entries: ForwardingEntry[] = [];
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
    const text = formatCIDR(subnet);
    entries.push({ subnet: text, network: text.split("/")[0]!, prefixLen: subnet.prefixLen, peer, port });
  }
  return { entries, problems };
}
