/**
 * Makes the kernel match the desired state: dump what is there, keep what is ours, diff, apply.
 * Runs are coalesced: any number of triggers while a run is going lead to exactly one more run, so a
 * burst of lease events or netlink notifications costs one dump, and nothing requested is missed.
 */
import { parseIP } from "../ip/ip-address.js";
import { formatCIDR, type IPNetwork, networkContains, parseCIDR } from "../ip/ip-network.js";
import type { KernelState, RouteEntry } from "./kernel-state.js";
import { changeCount, diffState, type StateChanges } from "./state-diff.js";

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

export function isOurRoute(route: RouteEntry, scope: OwnershipScope): boolean {
  if (!scope.routeDevices.includes(route.dev)) return false;
  const dst = parseCIDR(route.dst);
  if (!dst) return false;
  const own = scope.ownSubnets.map(formatCIDR);
  if (own.includes(route.dst)) return false;
  const address = parseIP(route.dst.slice(0, route.dst.indexOf("/")));
  return (
    address !== undefined &&
    scope.networks.some((net) => dst.prefixLen > net.prefixLen && networkContains(net, address))
  );
}

export interface ReconcileStats {
  runs: number;
  /** Entries added, replaced or removed over the lifetime. */
  changes: number;
  failures: number;
  lastDurationMs: number;
  lastRunAt: number;
}

export class Reconciler {
  private desired: KernelState = { routes: [], neighs: [], fdbs: [] };
  private running: Promise<void> | undefined;
  private again = false;
  private closed = false;
  readonly stats: ReconcileStats = { runs: 0, changes: 0, failures: 0, lastDurationMs: 0, lastRunAt: 0 };

  constructor(
    private readonly kernel: KernelPort,
    private scope: OwnershipScope,
    private readonly log: (message: string, verbosity?: number) => void,
  ) {}

  setScope(scope: OwnershipScope): void {
    this.scope = scope;
  }

  setDesired(state: KernelState): void {
    this.desired = state;
    this.trigger();
  }

  /** Asks for a run; returns when a run that started after this call has finished. */
  trigger(): Promise<void> {
    if (this.closed) return Promise.resolve();
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
      await this.runOnce();
    } while (this.again && !this.closed);
  }

  private async runOnce(): Promise<void> {
    const started = performance.now();
    try {
      const actual = await this.kernel.read(this.scope.ownedDevices);
      const ours: KernelState = {
        routes: actual.routes.filter((r) => isOurRoute(r, this.scope)),
        neighs: actual.neighs,
        fdbs: actual.fdbs,
      };
      const changes = diffState(this.desired, ours);
      const count = changeCount(changes);
      if (count > 0) {
        const failures = await this.kernel.apply(changes);
        this.stats.changes += count - failures.length;
        this.stats.failures += failures.length;
        for (const failure of failures.slice(0, 5)) this.log(`kernel change failed: ${failure}`);
        if (failures.length > 5) this.log(`... and ${failures.length - 5} more kernel changes failed`);
        this.log(
          `reconciled: +${changes.routes.put.length}/-${changes.routes.remove.length} routes, ` +
            `+${changes.neighs.put.length}/-${changes.neighs.remove.length} neighbours, ` +
            `+${changes.fdbs.put.length}/-${changes.fdbs.remove.length} fdb entries`,
          1,
        );
      }
    } catch (err) {
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
