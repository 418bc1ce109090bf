/**
 * Desired state assembled peer by peer, reusing a peer's entries while its Lease object is the same one.
 * The lease table replaces a Lease object only when that lease changes, so a lease event recomputes one
 * peer instead of thousands.
 */
import type { Lease } from "../lease/lease.js";
import { describeLeaseFault } from "../lease/lease-fault.js";
import type { FdbEntry, NeighEntry, RouteEntry } from "../reconcile/kernel-state.js";
import type { DesiredPeers, PeerProblem } from "./backend.js";

export class PeerStateCache {
  private readonly byLease = new WeakMap<Lease, DesiredPeers>();

  collect(own: Lease, peers: Iterable<Lease>, compute: (peer: Lease) => DesiredPeers): DesiredPeers {
    const routes: RouteEntry[] = [];
    const neighs: NeighEntry[] = [];
    const fdbs: FdbEntry[] = [];
    const problems: PeerProblem[] = [];
    for (const peer of peers) {
      if (peer.key === own.key) continue;
      let part = this.byLease.get(peer);
      if (!part) {
        part = containPeer(peer, compute);
        this.byLease.set(peer, part);
      }
      routes.push(...part.state.routes);
      neighs.push(...part.state.neighs);
      fdbs.push(...part.state.fdbs);
      problems.push(...part.problems);
    }
    return { state: { routes, neighs, fdbs }, problems };
  }
}

/**
 * One peer's part; an error raised while using its lease (a value no check foresaw) stays with that
 * peer, as its problem, with nothing of it kept, so every other peer is still programmed.
 */
function containPeer(peer: Lease, compute: (peer: Lease) => DesiredPeers): DesiredPeers {
  try {
    return compute(peer);
  } catch (err) {
    return {
      state: { routes: [], neighs: [], fdbs: [] },
      problems: [{ key: peer.key, reason: describeLeaseFault(err, "using it") }],
    };
  }
}
