/**
 * The forwarder's counters as Prometheus text lines (pure), for /metrics. Counters restart from zero
 * when flannel0 is re-made (a new forwarder), which Prometheus reads as a counter reset.
 */
import type { ForwarderStats } from "./tun-addon.js";

const DROPS: readonly [keyof ForwarderStats, string][] = [
  ["noRoute", "no_peer"],
  ["ttlExpired", "ttl_expired"],
  ["malformed", "not_ipv4"],
  ["sendErrors", "send_error"],
  ["tunWriteErrors", "tun_write_error"],
];

export function udpMetricLines(stats: ForwarderStats | undefined): string[] {
  if (!stats) return [];
  const lines: string[] = [];
  const metric = (name: string, help: string, samples: readonly [string, number | boolean][]) => {
    lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} counter`);
    for (const [labels, value] of samples) lines.push(`${name}${labels} ${Number(value)}`);
  };
  metric(
    "weft_udp_packets_total",
    "Packets the udp forwarder moved: tx flannel0 to peers, rx peers to flannel0.",
    [
      ['{direction="tx"}', stats.txPackets],
      ['{direction="rx"}', stats.rxPackets],
    ],
  );
  metric("weft_udp_bytes_total", "Bytes of those packets.", [
    ['{direction="tx"}', stats.txBytes],
    ['{direction="rx"}', stats.rxBytes],
  ]);
  metric(
    "weft_udp_dropped_packets_total",
    "Packets the udp forwarder dropped, by reason (no_peer: no lease holds the destination).",
    DROPS.map(([key, reason]) => [`{reason="${reason}"}`, stats[key] as number]),
  );
  metric("weft_udp_unreachable_sent_total", "ICMP net-unreachable replies sent for packets to no peer.", [
    ["", stats.unreachableSent],
  ]);
  return lines;
}
