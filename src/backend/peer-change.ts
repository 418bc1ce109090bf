/** The difference between two lease tables, for Backend.peersChanged. Pure. */
import type { Lease } from "../lease/lease.js";
import type { PeerChange } from "./backend.js";

/**
 * `previous` is the peers map of the last change (empty at first); `leases` are the leases now (the ones
 * in scope). The lease table replaces a Lease
 * object only when that lease changes, so identity tells a changed peer from an unchanged one.
 */
export function diffPeers(
  own: Lease,
  previous: ReadonlyMap<string, Lease>,
  leases: Iterable<Lease>,
): PeerChange {
  const peers = new Map<string, Lease>();
  const added: Lease[] = [];
  for (const lease of leases) {
    if (lease.key === own.key) continue;
    peers.set(lease.key, lease);
    if (previous.get(lease.key) !== lease) added.push(lease);
  }
  const removed: Lease[] = [];
  for (const [key, lease] of previous) if (!peers.has(key)) removed.push(lease);
  return { own, added, removed, peers };
}
