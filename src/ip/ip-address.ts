/** IPv4 and IPv6 addresses as (family, bigint) so one set of math serves both. */

export type IPFamily = 4 | 6;

export interface IPAddress {
  readonly family: IPFamily;
  readonly value: bigint;
}

export function familyBits(family: IPFamily): number {
  return family === 4 ? 32 : 128;
}

const HEX_GROUP = /^[0-9a-fA-F]{1,4}$/;

/** The 32-bit value of a dotted quad, or -1. Hand-rolled: it runs for every address of every dump. */
function ipv4Value(text: string): number {
  let value = 0;
  let octet = 0;
  let digits = 0;
  let dots = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 46 /* . */) {
      if (digits === 0 || ++dots > 3) return -1;
      value = value * 256 + octet;
      octet = 0;
      digits = 0;
    } else if (c >= 48 && c <= 57) {
      // Go rejects leading zeros (ambiguous octal), and so do we.
      if (digits > 0 && octet === 0) return -1;
      octet = octet * 10 + (c - 48);
      if (++digits > 3 || octet > 255) return -1;
    } else return -1;
  }
  if (dots !== 3 || digits === 0) return -1;
  return value * 256 + octet;
}

export function parseIPv4(text: string): IPAddress | undefined {
  const value = ipv4Value(text);
  return value < 0 ? undefined : { family: 4, value: BigInt(value) };
}

export function parseIPv6(text: string): IPAddress | undefined {
  if (text.includes("%")) return undefined; // zones are meaningless in a network config
  let head = text;
  let tail = "";
  const doubleColon = text.indexOf("::");
  if (doubleColon >= 0) {
    if (text.indexOf("::", doubleColon + 1) >= 0) return undefined;
    head = text.slice(0, doubleColon);
    tail = text.slice(doubleColon + 2);
  }
  const headGroups = head === "" ? [] : head.split(":");
  const tailGroups = tail === "" ? [] : tail.split(":");
  const groups: number[] = [];
  const pushGroups = (list: string[], allowIPv4Last: boolean): boolean => {
    for (let i = 0; i < list.length; i++) {
      const group = list[i]!;
      if (allowIPv4Last && i === list.length - 1 && group.includes(".")) {
        const v4 = parseIPv4(group);
        if (!v4) return false;
        groups.push(Number(v4.value >> 16n), Number(v4.value & 0xffffn));
      } else if (HEX_GROUP.test(group)) {
        groups.push(Number.parseInt(group, 16));
      } else {
        return false;
      }
    }
    return true;
  };
  if (!pushGroups(headGroups, tailGroups.length === 0 && doubleColon < 0)) return undefined;
  const headCount = groups.length;
  if (!pushGroups(tailGroups, true)) return undefined;
  const tailCount = groups.length - headCount;
  if (doubleColon >= 0) {
    const missing = 8 - headCount - tailCount;
    if (missing < 1) return undefined;
    groups.splice(headCount, 0, ...new Array<number>(missing).fill(0));
  }
  if (groups.length !== 8) return undefined;
  let value = 0n;
  for (const g of groups) value = (value << 16n) | BigInt(g);
  return { family: 6, value };
}

export function parseIP(text: string): IPAddress | undefined {
  return text.includes(":") ? parseIPv6(text) : parseIPv4(text);
}

export function formatIP(ip: IPAddress): string {
  if (ip.family === 4) {
    const v = ip.value;
    return `${(v >> 24n) & 255n}.${(v >> 16n) & 255n}.${(v >> 8n) & 255n}.${v & 255n}`;
  }
  const groups: number[] = [];
  for (let i = 7; i >= 0; i--) groups.push(Number((ip.value >> BigInt(i * 16)) & 0xffffn));
  // RFC 5952 (as Go prints): compress the first longest run of two or more zero groups.
  let bestStart = -1;
  let bestLen = 1;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLen) {
      bestStart = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = groups.map((g) => g.toString(16));
  if (bestStart < 0) return hex.join(":");
  return `${hex.slice(0, bestStart).join(":")}::${hex.slice(bestStart + bestLen).join(":")}`;
}

export function ipEquals(a: IPAddress, b: IPAddress): boolean {
  return a.family === b.family && a.value === b.value;
}

/** The address `delta` places after `ip` (wrapping is the caller's concern). */
export function addToIP(ip: IPAddress, delta: bigint): IPAddress {
  return { family: ip.family, value: ip.value + delta };
}
