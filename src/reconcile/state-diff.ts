/** What to change so the kernel holds exactly the desired entries: pure set arithmetic by key. */
import {
  type FdbEntry,
  fdbKey,
  type KernelState,
  type NeighEntry,
  neighKey,
  type RouteEntry,
  routeKey,
  sameFdb,
  sameNeigh,
  sameRoute,
} from "./kernel-state.js";

export interface Changes<T> {
  /** Missing, or present with other values: to be written with replace semantics. */
  readonly put: T[];
  /** Present in the kernel, ours, and no longer wanted. */
  readonly remove: T[];
}

export function diffEntries<T>(
  desired: readonly T[],
  actual: readonly T[],
  key: (entry: T) => string,
  same: (a: T, b: T) => boolean,
): Changes<T> {
  const want = new Map<string, T>();
  for (const entry of desired) want.set(key(entry), entry);
  const have = new Map<string, T>();
  const remove: T[] = [];
  for (const entry of actual) {
    const k = key(entry);
    // Duplicates in the kernel (e.g. two FDB remotes for one MAC) beyond the first are removed.
    if (have.has(k) || !want.has(k)) remove.push(entry);
    else have.set(k, entry);
  }
  const put: T[] = [];
  for (const [k, entry] of want) {
    const current = have.get(k);
    // A changed entry is written with replace semantics, which overwrites it in place.
    if (!current || !same(current, entry)) put.push(entry);
  }
  return { put, remove };
}

export interface StateChanges {
  readonly routes: Changes<RouteEntry>;
  readonly neighs: Changes<NeighEntry>;
  readonly fdbs: Changes<FdbEntry>;
}

export function diffState(desired: KernelState, actual: KernelState): StateChanges {
  return {
    routes: diffEntries(desired.routes, actual.routes, routeKey, sameRoute),
    neighs: diffEntries(desired.neighs, actual.neighs, neighKey, sameNeigh),
    fdbs: diffEntries(desired.fdbs, actual.fdbs, fdbKey, sameFdb),
  };
}

export function changeCount(changes: StateChanges): number {
  return (
    changes.routes.put.length +
    changes.routes.remove.length +
    changes.neighs.put.length +
    changes.neighs.remove.length +
    changes.fdbs.put.length +
    changes.fdbs.remove.length
  );
}
