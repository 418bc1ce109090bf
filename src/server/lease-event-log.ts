/**
 * The server's view of one network's leases: the current set and the last events, each at the store
 * revision it happened at. It is fed by ONE store watch and answers every client's long poll from
 * memory, so N clients watching cost one etcd watch, not N requests per event. Pure, apart from
 * waking the waiters it is given.
 */
import {
  type ApiLease,
  type LeaseEvent,
  removedApiLease,
  type WatchAnswer,
} from "../subnet/remote/remote-json.js";

interface LoggedEvent {
  readonly revision: bigint;
  readonly event: LeaseEvent;
}

/** Events kept for cursors to resume from; an older cursor gets a snapshot, as v0.7 does past etcd's window. */
export const EVENT_LOG_SIZE = 1000;

export class LeaseEventLog {
  private readonly current = new Map<string, ApiLease>();
  private readonly log: LoggedEvent[] = [];
  /** The revision the set is at; cursors are this as text. */
  private revision = 0n;
  /** Below this revision the log cannot say what happened: such a cursor gets a snapshot. */
  private oldest = 0n;
  private readonly waiters = new Set<() => void>();

  constructor(private readonly size = EVENT_LOG_SIZE) {}

  get cursor(): string {
    return this.revision.toString();
  }

  /** A fresh list (start, or after the watch broke): changes against the previous set become events. */
  replaceAll(leases: readonly ApiLease[], revision: bigint): void {
    const first = this.revision === 0n && this.log.length === 0 && this.current.size === 0;
    const keep = new Set(leases.map((l) => l.lease.key));
    for (const [key, old] of this.current) {
      if (!keep.has(key)) this.record(revision, { type: "removed", lease: removedApiLease(old.lease) });
    }
    for (const l of leases) {
      const old = this.current.get(l.lease.key);
      if (!old || !sameLease(old, l)) this.record(revision, { type: "added", lease: l });
    }
    this.current.clear();
    for (const l of leases) this.current.set(l.lease.key, l);
    if (first) {
      this.log.length = 0;
      this.oldest = revision;
    }
    this.advance(revision);
  }

  put(lease: ApiLease, revision: bigint): void {
    this.current.set(lease.lease.key, lease);
    this.record(revision, { type: "added", lease });
    this.advance(revision);
  }

  remove(key: string, revision: bigint): void {
    const old = this.current.get(key);
    if (old) {
      this.current.delete(key);
      this.record(revision, { type: "removed", lease: removedApiLease(old.lease) });
    }
    this.advance(revision);
  }

  /** The store moved on without a lease change (progress): cursors may move with it. */
  advance(revision: bigint): void {
    if (revision > this.revision) this.revision = revision;
    for (const wake of [...this.waiters]) wake();
  }

  leases(key?: string): ApiLease[] {
    if (key !== undefined) {
      const one = this.current.get(key);
      return one ? [one] : [];
    }
    return [...this.current.values()];
  }

  /**
   * The answer for `next=<cursor>` (undefined: none, a snapshot), or undefined when nothing happened
   * after it yet (the caller waits). One event per answer, as v0.7 sends them; `key` narrows to one lease.
   */
  answer(cursor: bigint | undefined, key?: string): WatchAnswer | undefined {
    if (cursor === undefined || cursor < this.oldest || cursor > this.revision) {
      return { snapshot: this.leases(key), cursor: this.cursor };
    }
    const matches = (e: LoggedEvent) => key === undefined || e.event.lease.lease.key === key;
    const next = this.log.find((e) => e.revision > cursor && matches(e));
    if (!next) return undefined;
    // A re-list can record several changes at one revision: they go together, or a cursor would skip some.
    const events = this.log.filter((e) => e.revision === next.revision && matches(e)).map((e) => e.event);
    return { events, cursor: next.revision.toString() };
  }

  /** Calls `wake` after each change until the returned function is called. */
  onChange(wake: () => void): () => void {
    this.waiters.add(wake);
    return () => this.waiters.delete(wake);
  }

  private record(revision: bigint, event: LeaseEvent): void {
    this.log.push({ revision, event });
    while (this.log.length > this.size) {
      const dropped = this.log.shift()!;
      // A cursor before the dropped event can no longer be answered event by event.
      this.oldest = dropped.revision;
    }
  }
}

function sameLease(a: ApiLease, b: ApiLease): boolean {
  return JSON.stringify(a.lease.attrs) === JSON.stringify(b.lease.attrs) && a.expiration === b.expiration;
}
