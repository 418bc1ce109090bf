/**
 * Makes the kernel match the desired state. Two kinds of run, both diffs of desired against actual state:
 * - a full run dumps the kernel, keeps what is ours, diffs and applies; it runs at start, when the kernel
 *   reports a change to something we want (or to something in our scope we do not want), on a timer,
 *   and after missed notifications;
 * - a quick run, when only the desired state changed (a lease event), diffs against what the last run
 *   left in the kernel, without a dump; any failure makes the next run a full one.
 * Runs are coalesced: triggers during a run lead to exactly one more run, so a burst costs one pass.
 */
import { type IPNetwork, networkContainsNetwork, networkEquals, parseCIDR } from "../ip/ip-network.js";
import type { KernelChange } from "./kernel-change.js";
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
import { changeCount, diffIndexed, diffState, indexEntries, type StateChanges } from "./state-diff.js";

/** The kernel, as the reconciler sees it. */
export interface KernelPort {
  /** Routes in the main table (both families), and neighbour and FDB entries on `devices`. */
  read(devices: readonly string[]): Promise<KernelState>;
  /** Applies the changes; returns one message per change that failed. */
  apply(changes: StateChanges): Promise<string[]>;
}

/** Which kernel entries are weft's to manage. */
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
  /** Entries added, replaced or removed over the lifetime. */
  changes: number;
  failures: number;
  lastDurationMs: number;
  lastRunAt: number;
}

interface DesiredIndex {
  routes: Map<string, RouteEntry>;
  neighs: Map<string, NeighEntry>;
  fdbs: Map<string, FdbEntry>;
}

const EMPTY: KernelState = { routes: [], neighs: [], fdbs: [] };

export class Reconciler {
  private desired: KernelState = EMPTY;
  private index: DesiredIndex = { routes: new Map(), neighs: new Map(), fdbs: new Map() };
  /** What the last clean run left in the kernel, indexed; undefined means "dump before trusting anything". */
  private applied: DesiredIndex | undefined;
  private running: Promise<void> | undefined;
  private again = false;
  private fullRequested = true;
  private closed = false;
  readonly stats: ReconcileStats = {
    runs: 0,
    fullRuns: 0,
    changes: 0,
    failures: 0,
    lastDurationMs: 0,
    lastRunAt: 0,
  };

  constructor(
    private readonly kernel: KernelPort,
    private scope: OwnershipScope,
    private readonly log: (message: string, verbosity?: number) => void,
  ) {}

  setScope(scope: OwnershipScope): void {
    this.scope = scope;
    this.applied = undefined;
  }

  /** New desired state; converges with a quick run when the kernel is known, else a full one. */
  setDesired(state: KernelState): Promise<void> {
    this.desired = state;
    this.index = {
      routes: indexEntries(state.routes, routeKey),
      neighs: indexEntries(state.neighs, neighKey),
      fdbs: indexEntries(state.fdbs, fdbKey),
    };
    return this.schedule(false);
  }

  /** Asks for a full run (dump and diff); resolves when a run started after this call has finished. */
  trigger(): Promise<void> {
    return this.schedule(true);
  }

  /**
   * Whether a change the kernel reported needs a full run: something we want was removed or altered, or
   * something in our scope that we do not want appeared. Our own writes match the desired state, so the
   * notifications they cause are ignored.
   */
  needsRepair(change: KernelChange): boolean {
    switch (change.kind) {
      case "route": {
        const wanted = this.index.routes.get(routeKey(change.entry));
        if (change.action === "del") return wanted !== undefined;
        return wanted ? !sameRoute(wanted, change.entry) : isOurRoute(change.entry, this.scope);
      }
      case "neigh": {
        if (!this.scope.ownedDevices.includes(change.entry.dev)) return false;
        const wanted = this.index.neighs.get(neighKey(change.entry));
        if (change.action === "del") return wanted !== undefined;
        return !wanted || !sameNeigh(wanted, change.entry);
      }
      case "fdb": {
        if (!this.scope.ownedDevices.includes(change.entry.dev)) return false;
        const wanted = this.index.fdbs.get(fdbKey(change.entry));
        if (change.action === "del") return wanted !== undefined;
        return !wanted || !sameFdb(wanted, change.entry);
      }
    }
  }

  private schedule(full: boolean): Promise<void> {
    if (this.closed) return Promise.resolve();
    if (full) this.fullRequested = true;
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
      const full = this.fullRequested || this.applied === undefined;
      this.fullRequested = false;
      await this.runOnce(full);
    } while (this.again && !this.closed);
  }

  private async runOnce(full: boolean): Promise<void> {
    const started = performance.now();
    const desired = this.desired;
    const index = this.index;
    try {
      let changes: StateChanges;
      if (full || !this.applied) {
        const dumped = await this.kernel.read(this.scope.ownedDevices);
        const actual = { ...dumped, routes: dumped.routes.filter((r) => isOurRoute(r, this.scope)) };
        changes = diffState(desired, actual);
        this.stats.fullRuns++;
      } else {
        const applied = this.applied;
        changes = {
          routes: diffIndexed(index.routes, applied.routes, sameRoute),
          neighs: diffIndexed(index.neighs, applied.neighs, sameNeigh),
          fdbs: diffIndexed(index.fdbs, applied.fdbs, sameFdb),
        };
      }
      const count = changeCount(changes);
      let failures: string[] = [];
      if (count > 0) {
        failures = await this.kernel.apply(changes);
        this.stats.changes += count - failures.length;
        this.stats.failures += failures.length;
        for (const failure of failures.slice(0, 5)) this.log(`kernel change failed: ${failure}`);
        if (failures.length > 5) this.log(`... and ${failures.length - 5} more kernel changes failed`);
        this.log(
          `reconciled (${full ? "full" : "quick"}): +${changes.routes.put.length}/-${changes.routes.remove.length} routes, ` +
            `+${changes.neighs.put.length}/-${changes.neighs.remove.length} neighbours, ` +
            `+${changes.fdbs.put.length}/-${changes.fdbs.remove.length} fdb entries`,
          1,
        );
      }
      // Only a clean run tells us exactly what the kernel holds.
      this.applied = failures.length === 0 ? index : undefined;
    } catch (err) {
      this.applied = undefined;
      this.stats.failures++;
      this.log(`reconcile failed: ${(err as Error).message}`);
    } finally {
      this.stats.runs++;
      this.stats.lastDurationMs = performance.now() - started;
      this.stats.lastRunAt = Date.now();
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    await this.running;
  }
}
