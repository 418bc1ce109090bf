/**
 * IP addresses and CIDRs parsed and printed as Go's net package does (net.ParseCIDR, IP.String,
 * IPNet.String), so the subnets and routes flannel hands to its delegate read exactly as upstream's.
 * Kept inside src/cni because the plugin imports nothing from the daemon side.
 */
import { boundText } from "../text/untrusted-text.js";

/** An address as 4 bytes (IPv4) or 16 bytes (IPv6, possibly IPv4-mapped). */
export type IpBytes = Uint8Array;

export interface GoIpNet {
  /** The address as written (ParseCIDR's first result), 4 or 16 bytes. */
  readonly ip: IpBytes;
  /** The address with the host bits cleared (ParseCIDR's IPNet.IP). */
  readonly network: IpBytes;
  readonly prefix: number;
  /** 32 or 128: the mask length in bits, which decides how an IPv4-mapped address prints. */
  readonly bits: number;
}

function parseIpv4(s: string): IpBytes | undefined {
  const parts = s.split(".");
  if (parts.length !== 4) return undefined;
  const out = new Uint8Array(4);
  for (let i = 0; i < 4; i++) {
    const p = parts[i]!;
    if (!/^[0-9]{1,3}$/.test(p) || (p.length > 1 && p[0] === "0")) return undefined;
    const n = Number(p);
    if (n > 255) return undefined;
    out[i] = n;
  }
  return out;
}

function parseIpv6(s: string): IpBytes | undefined {
  const out = new Uint8Array(16);
  const halves = s.split("::");
  if (halves.length > 2) return undefined;
  const head = halves[0] === "" ? [] : halves[0]!.split(":");
  const tail = halves.length === 2 ? (halves[1] === "" ? [] : halves[1]!.split(":")) : [];
  const groups: number[] = [];
  const all = halves.length === 2 ? [...head, "::", ...tail] : head;
  for (let i = 0; i < all.length; i++) {
    const g = all[i]!;
    if (g === "::") continue;
    if (i === all.length - 1 && g.includes(".")) continue; // an embedded IPv4 is only allowed last
    if (!/^[0-9a-fA-F]{1,4}$/.test(g)) return undefined;
  }
  const toWords = (list: string[]): number[] | undefined => {
    const words: number[] = [];
    for (const g of list) {
      if (g.includes(".")) {
        const v4 = parseIpv4(g);
        if (!v4) return undefined;
        words.push((v4[0]! << 8) | v4[1]!, (v4[2]! << 8) | v4[3]!);
      } else words.push(Number.parseInt(g, 16));
    }
    return words;
  };
  const headWords = toWords(head);
  const tailWords = toWords(tail);
  if (!headWords || !tailWords) return undefined;
  if (halves.length === 2) {
    if (headWords.length + tailWords.length > 7) return undefined;
    groups.push(...headWords, ...new Array(8 - headWords.length - tailWords.length).fill(0), ...tailWords);
  } else {
    if (headWords.length !== 8) return undefined;
    groups.push(...headWords);
  }
  for (let i = 0; i < 8; i++) {
    out[2 * i] = groups[i]! >> 8;
    out[2 * i + 1] = groups[i]! & 0xff;
  }
  return out;
}

/** netip.ParseAddr without zones: IPv4 as 4 bytes, anything with a colon as 16. */
export function parseGoIp(s: string): IpBytes | undefined {
  if (s.includes(":")) return parseIpv6(s);
  return parseIpv4(s);
}

/** net.ParseCIDR; the error text is Go's ParseError. */
export function parseGoCidr(s: string): GoIpNet {
  const slash = s.indexOf("/");
  const ip = slash < 0 ? undefined : parseGoIp(s.slice(0, slash));
  const maskText = slash < 0 ? "" : s.slice(slash + 1);
  const bits = ip?.length === 4 ? 32 : 128;
  // Go's dtoi: decimal digits only, leading zeros allowed.
  const prefix = /^[0-9]{1,8}$/.test(maskText) ? Number(maskText) : -1;
  if (!ip || prefix < 0 || prefix > bits) throw new Error(`invalid CIDR address: ${boundText(s, 100)}`);
  const network = new Uint8Array(ip);
  for (let bit = prefix; bit < bits; bit++) network[bit >> 3]! &= ~(0x80 >> (bit & 7));
  return { ip, network, prefix, bits };
}

function isV4Mapped(b: IpBytes): boolean {
  if (b.length !== 16) return false;
  for (let i = 0; i < 10; i++) if (b[i] !== 0) return false;
  return b[10] === 0xff && b[11] === 0xff;
}

/** net.IP.String: IPv4 and IPv4-mapped as dotted quads, IPv6 with the longest zero run (>= 2) as "::". */
export function formatGoIp(b: IpBytes): string {
  if (b.length === 4) return b.join(".");
  if (isV4Mapped(b)) return b.subarray(12).join(".");
  const words: number[] = [];
  for (let i = 0; i < 16; i += 2) words.push((b[i]! << 8) | b[i + 1]!);
  let bestStart = -1;
  let bestLen = 0;
  for (let i = 0; i < 8; ) {
    if (words[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && words[j] === 0) j++;
    if (j - i > bestLen) {
      bestStart = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = (w: number[]) => w.map((x) => x.toString(16)).join(":");
  if (bestLen < 2) return hex(words);
  return `${hex(words.slice(0, bestStart))}::${hex(words.slice(bestStart + bestLen))}`;
}

/** net.IPNet.String for an address and prefix: an IPv4-mapped address with a 128-bit mask prints as IPv4. */
export function formatGoIpNet(ip: IpBytes, prefix: number, bits: number): string {
  if (bits === 128 && isV4Mapped(ip)) return `${formatGoIp(ip)}/${Math.max(0, prefix - 96)}`;
  return `${formatGoIp(ip)}/${prefix}`;
}

/** The network of a parsed CIDR, as IPNet.String prints it. */
export function formatNetwork(net: GoIpNet): string {
  return formatGoIpNet(net.network, net.prefix, net.bits);
}

/** Equal for two networks exactly when they are the same (bits, prefix, masked address): a Set key. */
export function networkKey(net: GoIpNet): string {
  return `${net.bits}/${net.prefix}/${net.network.join(".")}`;
}
