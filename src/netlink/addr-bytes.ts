// IP and MAC conversions for the wire format, over weft's own IP module (pure, no dependencies).
import { formatIP, parseIP, parseIPv4 } from "../ip/ip-address.js";
import { NetlinkDecodeError } from "./errors.js";

export type IpFamily = 4 | 6;

/** 4 for a dotted IPv4 address, 6 for anything containing ":"; throws on anything else. */
export function ipFamily(ip: string): IpFamily {
  if (ip.includes(":")) return 6;
  if (ip.includes(".")) return 4;
  throw new TypeError(`not an IP address: ${JSON.stringify(ip)}`);
}

/** The 4 or 16 network-order bytes of an address string. */
export function ipToBytes(ip: string): Buffer {
  if (!ip.includes(":")) {
    // IPv4 without bigints: this runs for every route, neighbour and FDB entry written.
    const v4 = parseIPv4(ip);
    if (!v4) throw new TypeError(`not an IP address: ${JSON.stringify(ip)}`);
    const out = Buffer.alloc(4);
    out.writeUInt32BE(Number(v4.value));
    return out;
  }
  const parsed = parseIP(ip);
  if (!parsed) throw new TypeError(`not an IP address: ${JSON.stringify(ip)}`);
  const size = parsed.family === 4 ? 4 : 16;
  const out = Buffer.alloc(size);
  let value = parsed.value;
  for (let i = size - 1; i >= 0; i--) {
    out[i] = Number(value & 0xffn);
    value >>= 8n;
  }
  return out;
}

/** Formats 4 or 16 bytes as an address string, written as weft writes addresses everywhere (RFC 5952). */
export function bytesToIp(bytes: Uint8Array): string {
  if (bytes.length === 4) return `${bytes[0]}.${bytes[1]}.${bytes[2]}.${bytes[3]}`;
  if (bytes.length !== 16) {
    throw new NetlinkDecodeError(`an IP address has 4 or 16 bytes, not ${bytes.length}`);
  }
  let value = 0n;
  for (const b of bytes) value = (value << 8n) | BigInt(b);
  return formatIP({ family: 6, value });
}

/** "aa:bb:cc:dd:ee:ff" to 6 bytes (any even number of hex pairs is accepted). */
export function macToBytes(mac: string): Buffer {
  const parts = mac.split(":");
  if (parts.length < 1 || !parts.every((p) => /^[0-9a-fA-F]{2}$/.test(p))) {
    throw new TypeError(`not a MAC address: ${JSON.stringify(mac)}`);
  }
  return Buffer.from(parts.map((p) => Number.parseInt(p, 16)));
}

/** Bytes to lower-case colon-separated hex. */
export function bytesToMac(bytes: Uint8Array): string {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join(":");
}

/** AF_INET (2) or AF_INET6 (10) for an IP family. */
export function addressFamily(family: IpFamily): number {
  return family === 4 ? 2 : 10;
}

/** 4 or 6 for AF_INET/AF_INET6, undefined for anything else. */
export function ipFamilyOf(af: number): IpFamily | undefined {
  return af === 2 ? 4 : af === 10 ? 6 : undefined;
}
