/** What to change so a kind holds exactly the desired entries: pure set arithmetic by key. */

export interface Changes<T> {
  /** Missing, or present with other values: to be written with replace semantics. */
  readonly put: T[];
  /** Present, ours, and no longer wanted. */
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

/** The changes from what exists (a dump, unindexed, maybe with duplicates) to `want`. */
export function diffActual<T>(
  want: ReadonlyMap<string, T>,
  actual: readonly T[],
  key: (entry: T) => string,
  same: (a: T, b: T) => boolean,
): Changes<T> {
  const have = new Map<string, T>();
  const duplicates: T[] = [];
  for (const entry of actual) {
    const k = key(entry);
    // Duplicates (e.g. two FDB remotes for one MAC) beyond the first are removed.
    if (have.has(k)) duplicates.push(entry);
    else have.set(k, entry);
  }
  const changes = diffIndexed(want, have, same);
  return { put: changes.put, remove: [...changes.remove, ...duplicates] };
}

export function diffEntries<T>(
  desired: readonly T[],
  actual: readonly T[],
  key: (entry: T) => string,
  same: (a: T, b: T) => boolean,
): Changes<T> {
  return diffActual(indexEntries(desired, key), actual, key, same);
}
