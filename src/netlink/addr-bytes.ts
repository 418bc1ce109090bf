// Small IP and MAC conversions for the wire format. Kept local so the codec has no dependencies.

export type IpFamily = 4 | 6;

/** 4 for a dotted IPv4 address, 6 for anything containing ":"; throws on anything else. */
export function ipFamily(ip: string): IpFamily {
  if (ip.includes(":")) return 6;
  if (ip.includes(".")) return 4;
  throw new TypeError(`not an IP address: ${JSON.stringify(ip)}`);
}

function parseV4(ip: string, out: Buffer, offset: number): void {
  const parts = ip.split(".");
  if (parts.length !== 4) throw new TypeError(`not an IPv4 address: ${JSON.stringify(ip)}`);
  for (let i = 0; i < 4; i++) {
    const part = parts[i]!;
    if (!/^\d{1,3}$/.test(part) || Number(part) > 255) {
      throw new TypeError(`not an IPv4 address: ${JSON.stringify(ip)}`);
    }
    out[offset + i] = Number(part);
  }
}

function parseV6(ip: string): Buffer {
  const bad = () => new TypeError(`not an IPv6 address: ${JSON.stringify(ip)}`);
  const out = Buffer.alloc(16);
  const halves = ip.split("::");
  if (halves.length > 2) throw bad();
  const groups = (text: string): string[] => (text === "" ? [] : text.split(":"));
  const head = groups(halves[0]!);
  const tail = halves.length === 2 ? groups(halves[1]!) : [];
  // An embedded IPv4 tail (::ffff:1.2.3.4) counts as two groups.
  const words: number[][] = [[], []];
  [head, tail].forEach((list, side) => {
    list.forEach((group, i) => {
      if (group.includes(".")) {
        const lastGroup = side === halves.length - 1 && i === list.length - 1;
        if (!lastGroup) throw bad();
        const v4 = Buffer.alloc(4);
        parseV4(group, v4, 0);
        words[side]!.push(v4.readUInt16BE(0), v4.readUInt16BE(2));
      } else {
        if (!/^[0-9a-fA-F]{1,4}$/.test(group)) throw bad();
        words[side]!.push(Number.parseInt(group, 16));
      }
    });
  });
  const total = words[0]!.length + words[1]!.length;
  if (halves.length === 1 ? total !== 8 : total > 7) throw bad();
  words[0]!.forEach((w, i) => {
    out.writeUInt16BE(w, i * 2);
  });
  const start = 8 - words[1]!.length;
  words[1]!.forEach((w, i) => {
    out.writeUInt16BE(w, (start + i) * 2);
  });
  return out;
}

/** The 4 or 16 network-order bytes of an address string. */
export function ipToBytes(ip: string): Buffer {
  if (ipFamily(ip) === 6) return parseV6(ip);
  const out = Buffer.alloc(4);
  parseV4(ip, out, 0);
  return out;
}

/** Formats 4 or 16 bytes as an address string (IPv6 in RFC 5952 form). */
export function bytesToIp(bytes: Uint8Array): string {
  if (bytes.length === 4) return `${bytes[0]}.${bytes[1]}.${bytes[2]}.${bytes[3]}`;
  if (bytes.length !== 16) throw new TypeError(`an IP address has 4 or 16 bytes, not ${bytes.length}`);
  const words: number[] = [];
  for (let i = 0; i < 16; i += 2) words.push((bytes[i]! << 8) | bytes[i + 1]!);
  // RFC 5952: compress the longest run (leftmost on ties) of two or more zero groups.
  let bestStart = -1;
  let bestLen = 1;
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
  const hex = (list: number[]) => list.map((w) => w.toString(16)).join(":");
  if (bestStart < 0) return hex(words);
  return `${hex(words.slice(0, bestStart))}::${hex(words.slice(bestStart + bestLen))}`;
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
