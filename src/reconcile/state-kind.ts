/**
 * A kind of managed state: one plug-in per kind of entry weft converges (a route, a neighbour, an FDB
 * entry; later a WireGuard peer, an XFRM state, a userspace forwarding entry, a cloud route). The
 * reconciler diffs, applies and repairs every kind the same way; a kind only says how to key and compare
 * its entries, how to read the ones that exist, how to put and remove one, and which notifications
 * concern it. One file per kind under src/reconcile/kinds/.
 */
import type { RtEvent, RtGroup } from "../netlink/index.js";
import type { OwnershipScope } from "./reconciler.js";

/**
 * The pure half of a kind: what identifies an entry and when two are the same. Backends build desired
 * state with it; tests check it without a kernel.
 */
export interface KindShape<E> {
  /** The kind's name, also its key in a DesiredState: "route", "neigh", "fdb", "udp-peer", ... */
  readonly name: string;
  /** For logs: "routes", "neighbours". */
  readonly plural: string;
  /** Entries with the same key are one entry; a changed value under a key is a put (replace). */
  key(entry: E): string;
  /** True when the entry in place already is the wanted one. */
  same(a: E, b: E): boolean;
  /** One line for logs: "route 10.244.4.0/24 via 10.244.4.0 dev flannel.1 onlink". */
  describe(entry: E): string;
}

/** One entry the kernel (or another source) reported as added/changed or removed. */
export interface EntryChange<E> {
  readonly action: "new" | "del";
  readonly entry: E;
}

/** Which notifications concern a kind, and the entry each is about. */
export interface KindEvents<E> {
  /** rtnetlink groups to subscribe to; the daemon subscribes to the union over all kinds. */
  readonly groups: readonly RtGroup[];
  /** The entry of this kind the notification is about, if it is about one. */
  changeOf(event: RtEvent): EntryChange<E> | undefined;
}

/** A kind with its edge: reading the actual entries and writing one. */
export interface StateKind<E> extends KindShape<E> {
  /**
   * Apply order: removes go from the highest layer down, puts from the lowest up, each layer's
   * operations in parallel. Routes (1) rely on neighbour and FDB entries (0).
   */
  readonly layer: number;
  /** Notifications that tell of foreign changes; without them only full runs (timer, start) repair. */
  readonly events?: KindEvents<E>;
  /** Whether an existing entry is weft's to remove when not desired. Entries not ours are never touched. */
  owns(entry: E, scope: OwnershipScope): boolean;
  /** The entries that exist now; may return more than ours (the reconciler keeps only owned ones). */
  readActual(scope: OwnershipScope): Promise<E[]>;
  /** Creates or replaces the entry (replace semantics: a changed value under the same key overwrites). */
  put(entry: E): Promise<void>;
  /** Removes the entry; an entry already gone is success. */
  remove(entry: E): Promise<void>;
}

/** A kind whatever its entry type (methods are bivariant, so any StateKind<E> is one). */
export type AnyStateKind = StateKind<unknown>;

/**
 * Desired entries by kind name: `{ route: [...], neigh: [...], fdb: [...] }`. A kind the backend owns
 * but leaves out here is wanted empty (everything of it that is ours is removed).
 */
export type DesiredState = Readonly<Record<string, readonly unknown[]>>;

/** The entries of one kind in a desired state, typed. */
export function entriesOf<E>(state: DesiredState, shape: KindShape<E>): readonly E[] {
  return (state[shape.name] as readonly E[] | undefined) ?? [];
}
