/**
 * Reads /run/flannel/subnet.env as upstream's plugin does: KEY=VALUE lines, unknown keys ignored, the last
 * of a repeated key wins, networks may be comma-separated lists (duplicates dropped). Errors carry Go's
 * wording so the operator sees what upstream would have shown.
 */
import { readSmallFile } from "../fs/read-small-file.js";
import { boundText } from "../text/untrusted-text.js";
import { goPathError, goQuote } from "./go-errors.js";
import { type GoIpNet, networkKey, parseGoCidr } from "./ip-cidr.js";

export interface FlannelSubnetEnv {
  readonly networks: readonly GoIpNet[];
  readonly subnet: GoIpNet | undefined;
  readonly ipv6Networks: readonly GoIpNet[];
  readonly ipv6Subnet: GoIpNet | undefined;
  readonly mtu: number;
  readonly ipMasq: boolean;
}

/** Thrown when subnet.env is missing, unreadable or incomplete. */
export class SubnetEnvError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "SubnetEnvError";
  }
}

function parseNetworkList(value: string): GoIpNet[] {
  const out: GoIpNet[] = [];
  const seen = new Set<string>(); // linear: a list of thousands must not cost seconds per pod
  for (const cidr of value.split(",")) {
    const net = parseGoCidr(cidr);
    const key = networkKey(net);
    if (!seen.has(key)) out.push(net);
    seen.add(key);
  }
  return out;
}

/** strconv.ParseUint(s, 10, 32). */
function parseUint32(value: string): number {
  if (!/^[0-9]+$/.test(value))
    throw new Error(`strconv.ParseUint: parsing ${goQuote(value)}: invalid syntax`);
  const n = Number(value);
  if (n > 0xffffffff) throw new Error(`strconv.ParseUint: parsing ${goQuote(value)}: value out of range`);
  return n;
}

export function parseSubnetEnv(text: string, path: string): FlannelSubnetEnv {
  let networks: GoIpNet[] = [];
  let ipv6Networks: GoIpNet[] = [];
  let subnet: GoIpNet | undefined;
  let ipv6Subnet: GoIpNet | undefined;
  let mtu: number | undefined;
  let ipMasq: boolean | undefined;
  const lines = text.split("\n");
  if (lines[lines.length - 1] === "") lines.pop();
  for (const [index, raw] of lines.entries()) {
    const line = raw.endsWith("\r") ? raw.slice(0, -1) : raw;
    const eq = line.indexOf("=");
    const key = eq < 0 ? line : line.slice(0, eq);
    const value = line.slice(eq + 1);
    // Upstream's Go plugin crashes on a known key without "="; say what is wrong instead.
    if (eq < 0 && keys.has(key))
      throw new Error(`${boundText(path, 300)}: line ${index + 1}: ${key} has no "=value"`);
    switch (key) {
      case "FLANNEL_NETWORK":
        networks = parseNetworkList(value);
        break;
      case "FLANNEL_SUBNET":
        subnet = parseGoCidr(value);
        break;
      case "FLANNEL_IPV6_NETWORK":
        ipv6Networks = parseNetworkList(value);
        break;
      case "FLANNEL_IPV6_SUBNET":
        ipv6Subnet = parseGoCidr(value);
        break;
      case "FLANNEL_MTU":
        mtu = parseUint32(value);
        break;
      case "FLANNEL_IPMASQ":
        ipMasq = value === "true";
        break;
    }
  }
  const missing: string[] = [];
  if (networks.length === 0 && ipv6Networks.length === 0)
    missing.push("FLANNEL_NETWORK", "FLANNEL_IPV6_NETWORK");
  if (!subnet && !ipv6Subnet) missing.push("FLANNEL_SUBNET", "FLANNEL_IPV6_SUBNET");
  if (mtu === undefined) missing.push("FLANNEL_MTU");
  if (ipMasq === undefined) missing.push("FLANNEL_IPMASQ");
  if (missing.length > 0 || mtu === undefined || ipMasq === undefined) {
    throw new Error(`${boundText(path, 300)} is missing ${missing.join(", ")}`);
  }
  return { networks, subnet, ipv6Networks, ipv6Subnet, mtu, ipMasq };
}

const keys = new Set([
  "FLANNEL_NETWORK",
  "FLANNEL_SUBNET",
  "FLANNEL_IPV6_NETWORK",
  "FLANNEL_IPV6_SUBNET",
  "FLANNEL_MTU",
  "FLANNEL_IPMASQ",
]);

/** subnet.env is a few lines; a path to /dev/zero or a huge file must fail, not fill memory. */
const SUBNET_ENV_MAX_BYTES = 1024 * 1024;

/** Loads and parses; every failure is a SubnetEnvError whose text reads like upstream's. */
export function loadSubnetEnv(path: string): FlannelSubnetEnv {
  let text: string;
  try {
    text = readSmallFile(path, SUBNET_ENV_MAX_BYTES).toString("utf8");
  } catch (err) {
    throw new SubnetEnvError(goPathError(err, "open", path));
  }
  try {
    return parseSubnetEnv(text, path);
  } catch (err) {
    throw new SubnetEnvError((err as Error).message);
  }
}
