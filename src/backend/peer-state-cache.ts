/**
 * Desired state assembled peer by peer, reusing a peer's entries while its Lease object is the same one.
 * The lease table replaces a Lease object only when that lease changes, so a lease event recomputes one
 * peer instead of thousands.
 */
import type { Lease } from "../lease/lease.js";
import { describeLeaseFault } from "../lease/lease-fault.js";
import type { DesiredPeers, PeerProblem } from "./backend.js";

export class PeerStateCache {
  private readonly byLease = new WeakMap<Lease, DesiredPeers>();

  collect(own: Lease, peers: Iterable<Lease>, compute: (peer: Lease) => DesiredPeers): DesiredPeers {
    const state: Record<string, unknown[]> = {};
    const problems: PeerProblem[] = [];
    for (const peer of peers) {
      if (peer.key === own.key) continue;
      let part = this.byLease.get(peer);
      if (!part) {
        part = containPeer(peer, compute);
        this.byLease.set(peer, part);
      }
      for (const kind in part.state) {
        const entries = part.state[kind]!;
        if (entries.length === 0) continue;
        const into = state[kind];
        if (into) for (const entry of entries) into.push(entry);
        else state[kind] = [...entries];
      }
      for (const problem of part.problems) problems.push(problem);
    }
    return { state, problems };
  }
}

/**
 * One peer's part; an error raised while using its lease (a value no check foresaw) stays with that
 * peer, as its problem, with nothing of it kept, so every other peer is still programmed.
 */
function containPeer(peer: Lease, compute: (peer: Lease) => DesiredPeers): DesiredPeers {
  try {
    return compact(compute(peer));
  } catch (err) {
    return {
      state: {},
      problems: [{ key: peer.key, reason: describeLeaseFault(err, "using it") }],
    };
  }
}

const NO_PROBLEMS: readonly PeerProblem[] = Object.freeze([]);

/**
 * A peer's part as it is kept, for as long as its lease lives: arrays of exactly their length (one grown
 * by push keeps room for more; with thousands of peers, each with a few one-entry arrays, that room was
 * megabytes), no empty kinds, and one shared empty problem list.
 */
function compact(part: DesiredPeers): DesiredPeers {
  const state: Record<string, readonly unknown[]> = {};
  for (const kind in part.state) {
    const entries = part.state[kind]!;
    if (entries.length > 0) state[kind] = entries.slice();
  }
  return { state, problems: part.problems.length > 0 ? part.problems.slice() : NO_PROBLEMS };
}
