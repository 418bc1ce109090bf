/**
 * Makes every kind of managed state match the desired state, all kinds the same way. Two kinds of run,
 * both diffs of desired against actual state:
 * - a full run reads each kind, keeps what is ours, diffs and applies; it runs at start, when a
 *   notification reports a change to something we want (or to something in our scope we do not
 *   want), on a timer, after missed notifications, and to retry after a failed run;
 * - a quick run, when only the desired state changed (a lease event), diffs against what the last run
 *   left, without reading; any failure makes the next run a full one.
 * Runs are coalesced: triggers during a run lead to exactly one more run, so a burst costs one pass.
 * An entry that cannot be applied fails alone; the run's failures are counted, logged once per cause,
 * and retried with backoff until a run is clean.
 */
import { type IPNetwork, networkContainsNetwork, networkEquals, parseCIDR } from "../ip/ip-network.js";
import type { RtEvent } from "../netlink/index.js";
import { Backoff, type BackoffOptions } from "../retry/backoff.js";
import type { RouteEntry } from "./kinds/route-kind.js";
import { type Changes, diffActual, diffIndexed, indexEntries } from "./state-diff.js";
import type { AnyStateKind, DesiredState, EntryChange } from "./state-kind.js";

/** Which entries are weft's to manage. */
export interface OwnershipScope {
  /** The flannel networks: peer routes lie inside these. */
  readonly networks: readonly IPNetwork[];
  /** Our own subnets: the local bridge's route to them is not ours to touch. */
  readonly ownSubnets: readonly IPNetwork[];
  readonly routeDevices: readonly string[];
  readonly ownedDevices: readonly string[];
}

/**
 * Whether a route (never one the kernel made: those are not read) is weft's to keep or remove. Every
 * route on a device only weft uses (flannel.1) is ours, whatever it points at, so anything weft ever
 * wrote there is cleaned up, also by an older version that routed leases it should have refused. On a
 * device shared with the host (host-gw's eth0) only routes inside or equal to a flannel Network are.
 */
export function isOurRoute(route: RouteEntry, scope: OwnershipScope): boolean {
  if (scope.ownedDevices.includes(route.dev)) return true;
  if (!scope.routeDevices.includes(route.dev)) return false;
  const dst = parseCIDR(route.dst);
  if (!dst || scope.ownSubnets.some((own) => networkEquals(own, dst))) return false;
  return scope.networks.some((net) => networkContainsNetwork(net, dst));
}

export interface ReconcileStats {
  runs: number;
  fullRuns: number;
  /** Runs in which every entry was applied. */
  cleanRuns: number;
  /** Runs in which something failed (an entry, or reading). */
  failedRuns: number;
  /** Entries added, replaced or removed over the lifetime. */
  changes: number;
  /** Entries that could not be applied, over the lifetime, by kind name. */
  failuresByKind: Map<string, number>;
  failures: number;
  lastDurationMs: number;
  lastRunAt: number;
  lastRunClean: boolean;
}

export interface ReconcilerOptions {
  readonly kinds: readonly AnyStateKind[];
  readonly scope: OwnershipScope;
  readonly log: (message: string, verbosity?: number) => void;
  /** Runs before a full run reads the kinds (the kernel kinds re-list device names). */
  readonly prepare?: () => Promise<void>;
  /** Delays between retries of a failed run. */
  readonly retry?: BackoffOptions;
  /** Called after every clean run (the daemon turns /readyz ready on the first). */
  readonly onClean?: () => void;
}

const DEFAULT_RETRY: BackoffOptions = { minMs: 1000, maxMs: 30_000 };

interface KindSlot {
  readonly kind: AnyStateKind;
  want: Map<string, unknown>;
  /** What the last clean run left, indexed; undefined means "read before trusting anything". */
  applied: Map<string, unknown> | undefined;
}

interface Failure {
  readonly kind: AnyStateKind;
  readonly entry: unknown;
  readonly removing: boolean;
  readonly error: unknown;
}

/** What a failure is about, without the entry: entries failing for one reason are logged once. */
function causeOf(err: unknown): string {
  const code = (err as { code?: unknown } | undefined)?.code;
  if (typeof code === "string") {
    const message = err instanceof Error ? err.message : "";
    // "route replace 10.244.1.0/24: ENETUNREACH (Network is unreachable)" -> "ENETUNREACH (...)"
    const at = message.indexOf(`${code} `);
    return at >= 0 ? message.slice(at) : code;
  }
  return err instanceof Error ? err.message : String(err);
}

/** Operations of one group in flight at once; the socket pipelines them anyway, and more only grows the heap. */
const APPLY_SLICE = 1024;

export class Reconciler {
  private readonly slots: KindSlot[];
  private readonly layers: number[];
  private scope: OwnershipScope;
  private hasDesired = false;
  private running: Promise<void> | undefined;
  private again = false;
  private fullRequested = true;
  private closed = false;
  private readonly backoff: Backoff;
  private retryTimer: NodeJS.Timeout | undefined;
  /** Kinds a desired state named that no slot has (a backend bug), reported once each. */
  private readonly undeclared = new Set<string>();
  /** Causes logged since the last clean run. */
  private readonly logged = new Set<string>();
  readonly stats: ReconcileStats = {
    runs: 0,
    fullRuns: 0,
    cleanRuns: 0,
    failedRuns: 0,
    changes: 0,
    failuresByKind: new Map(),
    failures: 0,
    lastDurationMs: 0,
    lastRunAt: 0,
    lastRunClean: false,
  };

  constructor(private readonly options: ReconcilerOptions) {
    this.scope = options.scope;
    const names = options.kinds.map((k) => k.name);
    const twice = names.find((name, i) => names.indexOf(name) !== i);
    // Desired entries are found by kind name, so two kinds with one name would take each other's.
    if (twice) throw new Error(`two kinds of state are named "${twice}"`);
    this.slots = options.kinds.map((kind) => ({ kind, want: new Map(), applied: undefined }));
    this.layers = [...new Set(options.kinds.map((k) => k.layer))].sort((a, b) => a - b);
    this.backoff = new Backoff(options.retry ?? DEFAULT_RETRY);
  }

  setScope(scope: OwnershipScope): void {
    this.scope = scope;
    for (const slot of this.slots) slot.applied = undefined;
  }

  /** New desired state; converges with a quick run when the state is known, else a full one. */
  setDesired(state: DesiredState): Promise<void> {
    for (const name of Object.keys(state)) {
      if (this.slots.some((s) => s.kind.name === name) || this.undeclared.has(name)) continue;
      this.undeclared.add(name);
      this.options.log(`desired ${name} entries ignored: the backend does not declare that kind`);
    }
    for (const slot of this.slots) {
      slot.want = indexEntries(state[slot.kind.name] ?? [], (e) => slot.kind.key(e));
    }
    this.hasDesired = true;
    return this.schedule(false);
  }

  /** Asks for a full run (read and diff); resolves when a run started after this call has finished. */
  trigger(): Promise<void> {
    return this.schedule(true);
  }

  /**
   * Whether a notification needs a full run: something we want was removed or altered, or something in
   * our scope that we do not want appeared. Our own writes match the desired state, so the
   * notifications they cause are ignored.
   */
  concerns(event: RtEvent): boolean {
    for (const slot of this.slots) {
      const change = slot.kind.events?.changeOf(event);
      if (change && this.needsRepair(slot, change)) return true;
    }
    return false;
  }

  private needsRepair(slot: KindSlot, change: EntryChange<unknown>): boolean {
    const { kind } = slot;
    const wanted = slot.want.get(kind.key(change.entry));
    if (change.action === "del") return wanted !== undefined;
    return wanted !== undefined ? !kind.same(wanted, change.entry) : kind.owns(change.entry, this.scope);
  }

  private schedule(full: boolean): Promise<void> {
    if (this.closed) return Promise.resolve();
    if (full) this.fullRequested = true;
    // Nothing is removed before the first desired state: a restart keeps the datapath until the peers are known.
    if (!this.hasDesired) return Promise.resolve();
    if (this.running) {
      // The loop sees the flag and runs once more before `running` settles.
      this.again = true;
      return this.running;
    }
    this.running = this.loop().finally(() => {
      this.running = undefined;
    });
    return this.running;
  }

  private async loop(): Promise<void> {
    do {
      this.again = false;
      const full = this.fullRequested || this.slots.some((s) => s.applied === undefined);
      this.fullRequested = false;
      await this.runOnce(full);
    } while (this.again && !this.closed);
  }

  private async runOnce(full: boolean): Promise<void> {
    const started = performance.now();
    const wants = this.slots.map((s) => s.want);
    let clean = false;
    try {
      const changes: Changes<unknown>[] = [];
      if (full) {
        await this.options.prepare?.();
        for (const [i, { kind }] of this.slots.entries()) {
          const actual = (await kind.readActual(this.scope)).filter((e) => kind.owns(e, this.scope));
          changes.push(
            diffActual(
              wants[i]!,
              actual,
              (e) => kind.key(e),
              (a, b) => kind.same(a, b),
            ),
          );
        }
        this.stats.fullRuns++;
      } else {
        for (const [i, slot] of this.slots.entries()) {
          changes.push(diffIndexed(wants[i]!, slot.applied!, (a, b) => slot.kind.same(a, b)));
        }
      }
      const count = changes.reduce((n, c) => n + c.put.length + c.remove.length, 0);
      const failures = count > 0 ? await this.apply(changes) : [];
      this.stats.changes += count - failures.length;
      if (count > 0) this.logSummary(full, changes, failures.length);
      if (failures.length > 0) this.report(failures);
      clean = failures.length === 0;
      // Only a clean run tells us exactly what exists.
      for (const [i, slot] of this.slots.entries()) slot.applied = clean ? wants[i] : undefined;
    } catch (err) {
      for (const slot of this.slots) slot.applied = undefined;
      this.stats.failures++;
      this.logOnce(`reconcile failed: ${causeOf(err)}`);
    } finally {
      this.stats.runs++;
      this.stats.lastDurationMs = performance.now() - started;
      this.stats.lastRunAt = Date.now();
      this.stats.lastRunClean = clean;
      this.afterRun(clean);
    }
  }

  private afterRun(clean: boolean): void {
    if (clean) {
      this.stats.cleanRuns++;
      this.backoff.reset();
      this.logged.clear();
      clearTimeout(this.retryTimer);
      this.retryTimer = undefined;
      this.options.onClean?.();
      return;
    }
    this.stats.failedRuns++;
    if (this.closed || this.retryTimer) return;
    const delay = this.backoff.next();
    this.retryTimer = setTimeout(() => {
      this.retryTimer = undefined;
      void this.schedule(true);
    }, delay);
  }

  /** Removes from the top layer down, then puts from the bottom up; each layer's kinds in parallel. */
  private async apply(changes: readonly Changes<unknown>[]): Promise<Failure[]> {
    const failures: Failure[] = [];
    const inLayer = (layer: number) => this.slots.flatMap((s, i) => (s.kind.layer === layer ? [i] : []));
    for (const layer of [...this.layers].reverse()) {
      await Promise.all(
        inLayer(layer).map((i) => this.run(this.slots[i]!.kind, changes[i]!.remove, true, failures)),
      );
    }
    for (const layer of this.layers) {
      await Promise.all(
        inLayer(layer).map((i) => this.run(this.slots[i]!.kind, changes[i]!.put, false, failures)),
      );
    }
    return failures;
  }

  /** Sends every operation of a group at once (the kinds pipeline them); one failure fails alone. */
  private async run(
    kind: AnyStateKind,
    entries: readonly unknown[],
    removing: boolean,
    failures: Failure[],
  ): Promise<void> {
    for (let from = 0; from < entries.length; from += APPLY_SLICE) {
      const slice = entries.slice(from, from + APPLY_SLICE);
      const results = await Promise.allSettled(slice.map((entry) => this.call(kind, entry, removing)));
      for (const [i, result] of results.entries()) {
        if (result.status === "rejected")
          failures.push({ kind, entry: slice[i], removing, error: result.reason });
      }
    }
  }

  /** A kind that throws instead of rejecting still fails only its own entry. */
  private call(kind: AnyStateKind, entry: unknown, removing: boolean): Promise<void> {
    try {
      return removing ? kind.remove(entry) : kind.put(entry);
    } catch (err) {
      return Promise.reject(err);
    }
  }

  private logSummary(full: boolean, changes: readonly Changes<unknown>[], failed: number): void {
    const parts = this.slots.map(
      ({ kind }, i) => `+${changes[i]!.put.length}/-${changes[i]!.remove.length} ${kind.plural}`,
    );
    this.options.log(
      `reconciled (${full ? "full" : "quick"}): ${parts.join(", ")}${failed ? `, ${failed} failed` : ""}`,
      1,
    );
  }

  /** Counts failures and logs each cause once until a run is clean, with one example entry. */
  private report(failures: readonly Failure[]): void {
    const byCause = new Map<string, { count: number; first: Failure }>();
    for (const failure of failures) {
      const name = failure.kind.name;
      this.stats.failuresByKind.set(name, (this.stats.failuresByKind.get(name) ?? 0) + 1);
      const cause = `${failure.removing ? "remove" : "put"} ${failure.kind.plural}: ${causeOf(failure.error)}`;
      const seen = byCause.get(cause);
      if (seen) seen.count++;
      else byCause.set(cause, { count: 1, first: failure });
    }
    this.stats.failures += failures.length;
    for (const [cause, { count, first }] of byCause) {
      const example = first.kind.describe(first.entry);
      this.logOnce(
        `cannot ${cause} (${count} ${count === 1 ? "entry" : "entries"}, e.g. ${example}); the others are applied, retrying with backoff`,
        cause,
      );
    }
  }

  private logOnce(message: string, cause = message): void {
    if (this.logged.has(cause)) return;
    this.logged.add(cause);
    this.options.log(message);
  }

  async close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.retryTimer);
    await this.running;
  }
}
