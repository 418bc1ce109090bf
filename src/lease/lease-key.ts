/**
 * The key form flanneld uses for a lease under <prefix>/subnets/: "10.244.4.0-24", and for dual-stack
 * "10.244.4.0-24&fd44:0:0:36::-64". An IPv6-only lease has the empty IPv4 part "0.0.0.0-0".
 */
import { formatIP, parseIPv4, parseIPv6 } from "../ip/ip-address.js";
import { type IPNetwork, makeNetwork, networkAddress } from "../ip/ip-network.js";

export interface SubnetPair {
  readonly subnet: IPNetwork | undefined;
  readonly ipv6Subnet: IPNetwork | undefined;
}

function networkKeyPart(net: IPNetwork): string {
  return `${formatIP(networkAddress(net))}-${net.prefixLen}`;
}

export function subnetKey(subnet: IPNetwork | undefined, ipv6Subnet: IPNetwork | undefined): string {
  const v4 = subnet ? networkKeyPart(subnet) : "0.0.0.0-0";
  return ipv6Subnet ? `${v4}&${networkKeyPart(ipv6Subnet)}` : v4;
}

function parsePart(part: string, family: 4 | 6): IPNetwork | undefined {
  const dash = part.lastIndexOf("-");
  if (dash < 0) return undefined;
  const ip = family === 4 ? parseIPv4(part.slice(0, dash)) : parseIPv6(part.slice(0, dash));
  const lenText = part.slice(dash + 1);
  if (!ip || !/^[0-9]{1,3}$/.test(lenText)) return undefined;
  const prefixLen = Number(lenText);
  if (prefixLen > (family === 4 ? 32 : 128)) return undefined;
  const net = makeNetwork(ip, prefixLen);
  // A key whose address has host bits set is not one flannel wrote.
  return net.ip === ip.value ? net : undefined;
}

/** Parses a lease key; undefined when it is not in flannel's form. */
export function parseSubnetKey(key: string): SubnetPair | undefined {
  const [v4Part, v6Part, extra] = key.split("&");
  if (v4Part === undefined || extra !== undefined) return undefined;
  const v4 = parsePart(v4Part, 4);
  if (!v4) return undefined;
  const subnet = v4.prefixLen === 0 && v4.ip === 0n ? undefined : v4;
  if (v6Part === undefined) return subnet ? { subnet, ipv6Subnet: undefined } : undefined;
  const ipv6Subnet = parsePart(v6Part, 6);
  if (!ipv6Subnet) return undefined;
  return { subnet, ipv6Subnet };
}
