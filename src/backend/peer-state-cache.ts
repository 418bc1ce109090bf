/**
 * Desired state assembled peer by peer, reusing a peer's entries while its Lease object is the same one.
 * The lease table replaces a Lease object only when that lease changes, so a lease event recomputes one
 * peer instead of thousands.
 */
import type { Lease } from "../lease/lease.js";
import { describeLeaseFault } from "../lease/lease-fault.js";
import type { DesiredPeers, PeerProblem } from "./backend.js";

/**
 * One peer's part as it is kept, for as long as its lease lives: its entries in one flat array of
 * exactly its length, kind name then entry ([ "route", r, "neigh", n, "fdb", f ]), and its problems only
 * when it has any. One array per peer instead of an object per kind and an array per kind (with
 * thousands of peers those small cells were megabytes of heap the collector could not give back).
 */
type KeptPart =
  | readonly unknown[]
  | { readonly entries: readonly unknown[]; readonly problems: readonly PeerProblem[] };

type PartWithProblems = Exclude<KeptPart, readonly unknown[]>;

function isWithProblems(part: KeptPart): part is PartWithProblems {
  return !Array.isArray(part);
}

export class PeerStateCache {
  private readonly byLease = new WeakMap<Lease, KeptPart>();

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
      const entries = isWithProblems(part) ? part.entries : part;
      for (let i = 0; i < entries.length; i += 2) {
        const kind = entries[i] as string;
        const into = state[kind];
        if (into) into.push(entries[i + 1]);
        else state[kind] = [entries[i + 1]];
      }
      if (isWithProblems(part)) for (const problem of part.problems) problems.push(problem);
    }
    return { state, problems };
  }
}

/**
 * One peer's part; an error raised while using its lease (a value no check foresaw) stays with that
 * peer, as its problem, with nothing of it kept, so every other peer is still programmed.
 */
function containPeer(peer: Lease, compute: (peer: Lease) => DesiredPeers): KeptPart {
  try {
    return keep(compute(peer));
  } catch (err) {
    return { entries: [], problems: [{ key: peer.key, reason: describeLeaseFault(err, "using it") }] };
  }
}

function keep(part: DesiredPeers): KeptPart {
  let count = 0;
  for (const kind in part.state) count += part.state[kind]!.length;
  const entries = new Array<unknown>(count * 2);
  let at = 0;
  for (const kind in part.state) {
    for (const entry of part.state[kind]!) {
      entries[at++] = kind;
      entries[at++] = entry;
    }
  }
  return part.problems.length > 0 ? { entries, problems: part.problems.slice() } : entries;
}
