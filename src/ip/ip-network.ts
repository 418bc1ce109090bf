/** IP networks (an address masked to a prefix) and the subnet arithmetic flannel needs. */
import { addToIP, familyBits, formatIP, type IPAddress, type IPFamily, parseIP } from "./ip-address.js";

export interface IPNetwork {
  readonly family: IPFamily;
  /** The network address, already masked to prefixLen. */
  readonly ip: bigint;
  readonly prefixLen: number;
}

export function maskFor(family: IPFamily, prefixLen: number): bigint {
  const bits = BigInt(familyBits(family));
  const all = (1n << bits) - 1n;
  return (all << (bits - BigInt(prefixLen))) & all;
}

/** Number of addresses in a network of this prefix length. */
export function networkSize(family: IPFamily, prefixLen: number): bigint {
  return 1n << BigInt(familyBits(family) - prefixLen);
}

export function makeNetwork(ip: IPAddress, prefixLen: number): IPNetwork {
  return { family: ip.family, ip: ip.value & maskFor(ip.family, prefixLen), prefixLen };
}

/** Parses "10.244.0.0/16" or "fd44::/56"; host bits are masked off, as Go's net.ParseCIDR does. */
export function parseCIDR(text: string): IPNetwork | undefined {
  const slash = text.indexOf("/");
  if (slash < 0) return undefined;
  const ip = parseIP(text.slice(0, slash));
  const lenText = text.slice(slash + 1);
  if (!ip || !/^[0-9]{1,3}$/.test(lenText)) return undefined;
  const prefixLen = Number(lenText);
  if (prefixLen > familyBits(ip.family)) return undefined;
  return makeNetwork(ip, prefixLen);
}

export function networkAddress(net: IPNetwork): IPAddress {
  return { family: net.family, value: net.ip };
}

export function formatCIDR(net: IPNetwork): string {
  return `${formatIP(networkAddress(net))}/${net.prefixLen}`;
}

export function networkContains(net: IPNetwork, ip: IPAddress): boolean {
  return ip.family === net.family && (ip.value & maskFor(net.family, net.prefixLen)) === net.ip;
}

/** True when `inner` lies wholly inside `outer`. */
export function networkContainsNetwork(outer: IPNetwork, inner: IPNetwork): boolean {
  return inner.prefixLen >= outer.prefixLen && networkContains(outer, networkAddress(inner));
}

export function networksOverlap(a: IPNetwork, b: IPNetwork): boolean {
  return networkContainsNetwork(a, b) || networkContainsNetwork(b, a);
}

export function networkEquals(a: IPNetwork | undefined, b: IPNetwork | undefined): boolean {
  if (!a || !b) return a === b;
  return a.family === b.family && a.ip === b.ip && a.prefixLen === b.prefixLen;
}

/** The network of the same size right after this one. */
export function nextNetwork(net: IPNetwork): IPNetwork {
  return { ...net, ip: net.ip + networkSize(net.family, net.prefixLen) };
}

/** The first host address (".1"), which subnet.env and the bridge use as the gateway. */
export function firstHost(net: IPNetwork): IPAddress {
  return addToIP(networkAddress(net), 1n);
}

/** Every subnet of length `prefixLen` whose address lies in [first, last], in order. */
export function* subnetsInRange(
  family: IPFamily,
  first: bigint,
  last: bigint,
  prefixLen: number,
): Generator<IPNetwork> {
  const size = networkSize(family, prefixLen);
  for (let ip = first; ip <= last; ip += size) yield { family, ip, prefixLen };
}

/** Count of subnets of length `prefixLen` in [first, last]. */
export function countSubnetsInRange(
  family: IPFamily,
  first: bigint,
  last: bigint,
  prefixLen: number,
): bigint {
  if (last < first) return 0n;
  return (last - first) / networkSize(family, prefixLen) + 1n;
}
