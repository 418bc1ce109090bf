/** weftd's /metrics in the Prometheus text format, from a snapshot of its counters. Pure. */
import type { ReconcileStats } from "../reconcile/reconciler.js";

export interface DaemonCounters {
  readonly peers: number;
  readonly leaseUpdates: number;
  /** The lease scope filter's own lines (refused leases). */
  readonly leaseScope: readonly string[];
  readonly deviceRepairs: number;
  readonly iptablesRepairs: number;
  readonly reconcile: ReconcileStats | undefined;
  /** The backend's own lines (Backend.metricLines), appended as they are. */
  readonly backend?: readonly string[];
}

type Sample = readonly [labels: string, value: number | string];

function metric(lines: string[], name: string, type: string, help: string, samples: readonly Sample[]): void {
  lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`);
  for (const [labels, value] of samples) lines.push(`${name}${labels} ${value}`);
}

export function renderMetrics(c: DaemonCounters): string {
  const r = c.reconcile;
  const lines: string[] = [];
  metric(lines, "weft_peers", "gauge", "Leases of other hosts currently known.", [["", c.peers]]);
  metric(lines, "weft_lease_updates_total", "counter", "Lease table updates received from the store.", [
    ["", c.leaseUpdates],
  ]);
  lines.push(...c.leaseScope);
  metric(lines, "weft_reconcile_runs_total", "counter", "Reconcile runs (dump, diff, apply).", [
    ["", r?.runs ?? 0],
  ]);
  metric(
    lines,
    "weft_reconcile_failed_runs_total",
    "counter",
    "Reconcile runs in which an entry could not be applied or the state could not be read.",
    [["", r?.failedRuns ?? 0]],
  );
  metric(
    lines,
    "weft_kernel_changes_total",
    "counter",
    "Routes, neighbours, FDB entries and other managed entries written or removed.",
    [["", r?.changes ?? 0]],
  );
  metric(lines, "weft_kernel_change_failures_total", "counter", "Kernel changes that failed.", [
    ["", r?.failures ?? 0],
  ]);
  metric(
    lines,
    "weft_state_change_failures_total",
    "counter",
    "Entries that could not be applied, by kind of managed state.",
    [...(r?.failuresByKind ?? new Map<string, number>())].map(
      ([kind, n]) => [`{kind="${kind}"}`, n] as const,
    ),
  );
  metric(
    lines,
    "weft_device_repairs_total",
    "counter",
    "Times a backend device was restored after deletion.",
    [["", c.deviceRepairs]],
  );
  metric(lines, "weft_iptables_repairs_total", "counter", "iptables chains restored after being changed.", [
    ["", c.iptablesRepairs],
  ]);
  metric(lines, "weft_reconcile_last_duration_seconds", "gauge", "Duration of the last reconcile run.", [
    ["", ((r?.lastDurationMs ?? 0) / 1000).toFixed(6)],
  ]);
  lines.push(...(c.backend ?? []));
  return `${lines.join("\n")}\n`;
}
