/**
 * The network's address space as an SVG picture for `weft leases --svg`: one cell per subnet (taken,
 * reserved, free; one colour per backend) while that stays readable (up to 1024 subnets, e.g. a /16 of
 * /24s), else one cell per block (e.g. the /16s of a /8) shaded by how full it is. Every lease is named,
 * in its cell or in its block's tooltip. Pure: config and lease records in, SVG text out.
 */
import type { FamilyConfig, NetworkConfig } from "../config/network-config.js";
import { formatIP } from "../ip/ip-address.js";
import {
  formatCIDR,
  type IPNetwork,
  makeNetwork,
  networkContainsNetwork,
  parseCIDR,
} from "../ip/ip-network.js";
import type { LeaseRecord } from "./leases-command.js";

/** More cells than this and single subnets are too small to read: blocks are drawn instead. */
const MAX_CELLS = 1024;
/** Blocks in the aggregated picture: a 16 x 16 grid. */
const MAX_BLOCKS = 256;
const BACKEND_COLOURS = ["#2f6fd0", "#23945a", "#d9822b", "#8e44ad", "#c0392b", "#16a2b8"];
const KNOWN_ORDER = ["vxlan", "host-gw", "udp", "wireguard", "ipsec", "alloc"];
const FREE = "#eef0f3";
const UNREADABLE = "#6b6b6b";

function escapeXml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

interface Placed {
  readonly record: LeaseRecord;
  readonly network: IPNetwork;
}

function colourOf(backend: string | null, colours: Map<string, string>): string {
  if (backend === null) return UNREADABLE;
  let colour = colours.get(backend);
  if (!colour) {
    const known = KNOWN_ORDER.indexOf(backend);
    colour =
      BACKEND_COLOURS[(known >= 0 ? known : colours.size + KNOWN_ORDER.length) % BACKEND_COLOURS.length]!;
    colours.set(backend, colour);
  }
  return colour;
}

function describe(record: LeaseRecord): string {
  const parts = [record.subnet ?? record.ipv6Subnet ?? record.key];
  if (record.publicIP || record.publicIPv6) parts.push(`host ${record.publicIP ?? record.publicIPv6}`);
  parts.push(record.backendType ?? "unreadable");
  if (record.vtep) parts.push(record.vtep);
  parts.push(record.reservation ? "reservation" : record.expiresAt ? `expires ${record.expiresAt}` : "");
  if (record.problem) parts.push(record.problem);
  return parts.filter(Boolean).join(" · ");
}

function gridColumns(count: number): number {
  return 2 ** Math.ceil(Math.log2(Math.max(1, count)) / 2);
}

export function addressSpaceSvg(config: NetworkConfig, records: readonly LeaseRecord[]): string {
  const family: FamilyConfig | undefined = config.ipv4 ?? config.ipv6;
  if (!family) return svgDocument(400, 60, [text(10, 30, "no network configured", 14)]);
  const { network, subnetLen } = family;
  const placed: Placed[] = [];
  const outside: LeaseRecord[] = [];
  for (const record of records) {
    const cidr = family === config.ipv4 ? record.subnet : record.ipv6Subnet;
    const net = cidr ? parseCIDR(cidr) : undefined;
    if (net && networkContainsNetwork(network, net)) placed.push({ record, network: net });
    else outside.push(record);
  }
  const bits = subnetLen - network.prefixLen;
  const colours = new Map<string, string>();
  for (const b of KNOWN_ORDER) if (records.some((r) => r.backendType === b)) colourOf(b, colours);
  const body: string[] = [];
  const cellBits = 2 ** bits <= MAX_CELLS ? bits : Math.min(bits, Math.log2(MAX_BLOCKS));
  const blockLen = network.prefixLen + cellBits;
  const cells = 2 ** cellBits;
  const columns = gridColumns(cells);
  const aggregated = blockLen < subnetLen;
  const cellW = aggregated ? 108 : 88;
  const cellH = aggregated ? 52 : 48;
  const top = 86;
  const hostBits = BigInt((network.family === 4 ? 32 : 128) - blockLen);
  const perBlock = 2 ** (subnetLen - blockLen);
  const taken = placed.filter((p) => !p.record.reservation).length;
  const reserved = placed.length - taken;

  for (let i = 0; i < cells; i++) {
    const block = makeNetwork(
      { family: network.family, value: network.ip + (BigInt(i) << hostBits) },
      blockLen,
    );
    const x = 10 + (i % columns) * cellW;
    const y = top + Math.floor(i / columns) * cellH;
    const inside = placed.filter(
      (p) => networkContainsNetwork(block, p.network) || networkContainsNetwork(p.network, block),
    );
    if (!aggregated) {
      const lease = inside[0]?.record;
      const fill = lease ? colourOf(lease.backendType, colours) : FREE;
      const title = lease ? inside.map((p) => describe(p.record)).join("\n") : `${formatCIDR(block)} free`;
      // A reservation is the backend's colour, paler and hatched, with dark text.
      const ink = !lease ? "#6b7380" : lease.reservation ? "#10141a" : "#ffffff";
      const rect = `x="${x}" y="${y}" width="${cellW - 2}" height="${cellH - 2}"`;
      body.push(
        `<g><title>${escapeXml(title)}</title>`,
        `<rect ${rect} fill="${FREE}" stroke="#b8bec6"/>`,
        lease ? `<rect ${rect} fill="${fill}" fill-opacity="${lease.reservation ? 0.45 : 1}"/>` : "",
        lease?.reservation ? `<rect ${rect} fill="url(#reserved)"/>` : "",
        text(x + 4, y + 16, formatIP({ family: network.family, value: block.ip }), 10, ink),
        lease ? text(x + 4, y + 30, lease.publicIP ?? lease.publicIPv6 ?? "", 10, ink) : "",
        lease?.reservation ? text(x + 4, y + 42, "reserved", 9, ink) : "",
        "</g>",
      );
      continue;
    }
    // A block: the dominant backend's colour, as opaque as the block is full.
    const counts = new Map<string, number>();
    let units = 0;
    for (const p of inside) {
      const span = p.network.prefixLen >= subnetLen ? 1 : 2 ** (subnetLen - p.network.prefixLen);
      units += Math.min(span, perBlock);
      const b = p.record.backendType ?? "unreadable";
      counts.set(b, (counts.get(b) ?? 0) + 1);
    }
    const dominant = [...counts.entries()].sort((a, b) => b[1] - a[1])[0]?.[0];
    const fill =
      dominant === undefined ? FREE : colourOf(dominant === "unreadable" ? null : dominant, colours);
    const share = Math.min(1, units / perBlock);
    const blockReserved = inside.filter((p) => p.record.reservation).length;
    const title = [
      `${formatCIDR(block)}: ${units} of ${perBlock} /${subnetLen} taken`,
      ...inside.map((p) => describe(p.record)),
    ];
    body.push(
      `<g><title>${escapeXml(title.join("\n"))}</title>`,
      `<rect x="${x}" y="${y}" width="${cellW - 2}" height="${cellH - 2}" fill="${FREE}" stroke="#b8bec6"/>`,
      inside.length > 0
        ? `<rect x="${x}" y="${y}" width="${cellW - 2}" height="${cellH - 2}" fill="${fill}" fill-opacity="${(0.25 + 0.75 * share).toFixed(2)}"/>`
        : "",
      blockReserved > 0
        ? `<rect x="${x}" y="${y}" width="${cellW - 2}" height="${cellH - 2}" fill="url(#reserved)"/>`
        : "",
      text(
        x + 4,
        y + 16,
        formatCIDR(block),
        10,
        inside.length === 0 ? "#6b7380" : share > 0.6 ? "#ffffff" : "#10141a",
      ),
      text(
        x + 4,
        y + 32,
        `${units}/${perBlock}${blockReserved > 0 ? ` · ${blockReserved} res.` : ""}`,
        10,
        share > 0.6 ? "#ffffff" : "#10141a",
      ),
      "</g>",
    );
  }

  const width = Math.max(20 + columns * cellW, 620);
  let y = top + Math.ceil(cells / columns) * cellH + 20;
  const unit = aggregated
    ? `one cell per /${blockLen} (${perBlock} subnets of /${subnetLen}), shaded by how full it is`
    : `one cell per /${subnetLen}`;
  const header = [
    text(
      10,
      22,
      `${formatCIDR(network)}: ${taken} taken, ${reserved} reserved, ${2 ** bits - taken - reserved} free /${subnetLen} subnets`,
      16,
      "#10141a",
      "bold",
    ),
    text(10, 42, `${unit}; backend ${config.backendType}; hover a cell for its leases`, 12, "#3d4450"),
  ];
  let lx = 10;
  const legend = (fill: string, label: string, pattern = false) => {
    header.push(
      `<rect x="${lx}" y="54" width="18" height="18" fill="${fill}" stroke="#b8bec6"/>`,
      pattern ? `<rect x="${lx}" y="54" width="18" height="18" fill="url(#reserved)"/>` : "",
      text(lx + 24, 68, label, 12, "#10141a"),
    );
    lx += 34 + label.length * 7;
  };
  for (const [backend, colour] of colours) legend(colour, backend);
  if (records.some((r) => r.backendType === null)) legend(UNREADABLE, "unreadable");
  legend("#9aa3ad", "reserved (no TTL)", true);
  legend(FREE, "free");
  if (outside.length > 0) {
    body.push(
      text(10, y, `${outside.length} lease(s) outside ${formatCIDR(network)}:`, 12, "#a12a1f", "bold"),
    );
    for (const record of outside) {
      y += 16;
      body.push(text(20, y, describe(record), 11, "#a12a1f"));
    }
    y += 10;
  }
  return svgDocument(width, y + 10, [...header, ...body]);
}

function text(
  x: number,
  y: number,
  content: string,
  size: number,
  fill = "#10141a",
  weight = "normal",
): string {
  return `<text x="${x}" y="${y}" font-size="${size}" font-weight="${weight}" fill="${fill}">${escapeXml(content)}</text>`;
}

function svgDocument(width: number, height: number, parts: readonly string[]): string {
  return [
    '<?xml version="1.0" encoding="UTF-8"?>',
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="DejaVu Sans Mono, monospace">`,
    '<defs><pattern id="reserved" width="8" height="8" patternUnits="userSpaceOnUse" patternTransform="rotate(45)"><rect width="3" height="8" fill="#ffffff" fill-opacity="0.6"/></pattern></defs>',
    `<rect width="${width}" height="${height}" fill="#ffffff"/>`,
    ...parts.filter((p) => p !== ""),
    "</svg>",
    "",
  ].join("\n");
}
