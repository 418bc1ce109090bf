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

/** The changes from `have` to `want`, both already indexed by key. */
export function diffIndexed<T>(
  want: ReadonlyMap<string, T>,
  have: ReadonlyMap<string, T>,
  same: (a: T, b: T) => boolean,
): Changes<T> {
  const put: T[] = [];
  const remove: T[] = [];
  // A changed entry is written with replace semantics, which overwrites it in place.
  for (const [k, entry] of want) {
    const current = have.get(k);
    if (!current || !same(current, entry)) put.push(entry);
  }
  for (const [k, entry] of have) if (!want.has(k)) remove.push(entry);
  return { put, remove };
}

export function indexEntries<T>(entries: readonly T[], key: (entry: T) => string): Map<string, T> {
  const index = new Map<string, T>();
  for (const entry of entries) index.set(key(entry), entry);
  return index;
}

export function diffEntries<T>(
  desired: readonly T[],
  actual: readonly T[],
  key: (entry: T) => string,
  same: (a: T, b: T) => boolean,
): Changes<T> {
  const have = new Map<string, T>();
  const duplicates: T[] = [];
  for (const entry of actual) {
    const k = key(entry);
    // Duplicates in the kernel (e.g. two FDB remotes for one MAC) beyond the first are removed.
    if (have.has(k)) duplicates.push(entry);
    else have.set(k, entry);
  }
  const changes = diffIndexed(indexEntries(desired, key), have, same);
  return { put: changes.put, remove: [...changes.remove, ...duplicates] };
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
