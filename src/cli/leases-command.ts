/** `weft leases`: the cluster's leases as a table or JSON, and optionally the address-space picture. */
import { writeFile } from "node:fs/promises";
import { isPlainObject } from "../config/json-fields.js";
import { formatCIDR } from "../ip/ip-network.js";
import type { LeaseListing, ListedLease } from "./lease-source.js";

/** What scripts get from --output json: one object per lease, in the store's key order. */
export interface LeaseRecord {
  readonly key: string;
  readonly subnet: string | null;
  readonly ipv6Subnet: string | null;
  readonly publicIP: string | null;
  readonly publicIPv6: string | null;
  readonly backendType: string | null;
  /** vxlan's VtepMAC or a public key (wireguard's PublicKey), whichever the backend data has. */
  readonly vtep: string | null;
  readonly backendData: unknown;
  readonly reservation: boolean;
  readonly expiresInSeconds: number | null;
  readonly expiresAt: string | null;
  readonly writer: string;
  readonly problem: string | null;
}

function vtepOf(data: unknown): string | null {
  if (!isPlainObject(data)) return null;
  for (const field of ["VtepMAC", "PublicKey"]) {
    const value = data[field];
    if (typeof value === "string") return value;
  }
  return null;
}

export function leaseRecord(listed: ListedLease, now: Date): LeaseRecord {
  const attrs = listed.lease?.attrs;
  const ttl = listed.expiresInSeconds;
  return {
    key: listed.key,
    subnet: listed.subnet ? formatCIDR(listed.subnet) : null,
    ipv6Subnet: listed.ipv6Subnet ? formatCIDR(listed.ipv6Subnet) : null,
    publicIP: attrs?.publicIP ?? null,
    publicIPv6: attrs?.publicIPv6 ?? null,
    // flanneld's udp backend writes no BackendType.
    backendType: attrs ? (attrs.backendType ?? "udp") : null,
    vtep: vtepOf(attrs?.backendData) ?? vtepOf(attrs?.backendV6Data),
    backendData: attrs?.backendData ?? null,
    reservation: listed.reservation,
    expiresInSeconds: ttl ?? null,
    expiresAt: ttl !== undefined && ttl >= 0 ? new Date(now.getTime() + ttl * 1000).toISOString() : null,
    writer: listed.writer,
    problem: listed.problem ?? null,
  };
}

/** "in 23h59m", "in 4m05s", "expired". */
export function formatExpiry(seconds: number): string {
  if (seconds < 0) return "expired";
  const h = Math.floor(seconds / 3600);
  const m = Math.floor((seconds % 3600) / 60);
  return h > 0
    ? `in ${h}h${String(m).padStart(2, "0")}m`
    : `in ${m}m${String(seconds % 60).padStart(2, "0")}s`;
}

function expiry(record: LeaseRecord, store: LeaseListing["store"]): string {
  if (record.reservation) return "reservation";
  if (record.expiresInSeconds === null) return store === "kube" ? "- (node)" : "-";
  return formatExpiry(record.expiresInSeconds);
}

export function formatLeaseTable(listing: LeaseListing, records: readonly LeaseRecord[]): string {
  const { config } = listing;
  const networks = [config.ipv4?.network, config.ipv6?.network].filter((n) => n !== undefined);
  const head = `${listing.store} · network ${networks.map(formatCIDR).join(", ")} · backend ${config.backendType} · ${records.length} lease(s)`;
  const rows = [["SUBNET", "PUBLIC IP", "BACKEND", "VTEP MAC / KEY", "EXPIRES", "WRITTEN BY"]];
  for (const r of records) {
    rows.push([
      [r.subnet, r.ipv6Subnet].filter(Boolean).join(" ") || r.key,
      [r.publicIP, r.publicIPv6].filter(Boolean).join(" ") || "-",
      r.backendType ?? "?",
      r.vtep ?? "-",
      expiry(r, listing.store),
      r.problem ? `${r.writer}: unreadable, ${r.problem}` : r.writer,
    ]);
  }
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((row) => row[i]!.length)));
  const lines = rows.map((row) =>
    row
      .map((cell, i) => (i === row.length - 1 ? cell : cell.padEnd(widths[i]!)))
      .join("  ")
      .trimEnd(),
  );
  return `${head}\n${lines.join("\n")}\n`;
}

export interface LeasesOptions {
  readonly output: "table" | "json";
  readonly svgFile: string | undefined;
}

export async function leasesCommand(
  listing: LeaseListing,
  options: LeasesOptions,
  write: (text: string) => void,
): Promise<number> {
  const now = new Date();
  // In address order (the store lists keys as text: 10.244.100.0 before 10.244.2.0).
  const order = (l: ListedLease) => l.subnet?.ip ?? l.ipv6Subnet?.ip ?? -1n;
  const sorted = [...listing.leases].sort((a, b) => (order(a) < order(b) ? -1 : order(a) > order(b) ? 1 : 0));
  const records = sorted.map((l) => leaseRecord(l, now));
  if (options.svgFile) {
    const { addressSpaceSvg } = await import("./address-space-svg.js");
    await writeFile(options.svgFile, addressSpaceSvg(listing.config, records));
  }
  if (options.output === "json") {
    const { config } = listing;
    const document = {
      store: listing.store,
      network: config.ipv4 ? formatCIDR(config.ipv4.network) : null,
      subnetLen: config.ipv4?.subnetLen ?? null,
      ipv6Network: config.ipv6 ? formatCIDR(config.ipv6.network) : null,
      ipv6SubnetLen: config.ipv6?.subnetLen ?? null,
      backendType: config.backendType,
      leases: records,
    };
    write(`${JSON.stringify(document, null, 2)}\n`);
  } else write(formatLeaseTable(listing, records));
  return 0;
}
