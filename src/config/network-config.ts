/**
 * The network config flannel keeps at <prefix>/config (or net-conf.json in kube mode), with flannel's
 * defaults and validation rules. Parsing is pure: text in, a complete config or one ConfigError out.
 * Values quoted in errors go through describeValue: bounded, control characters escaped, never walked.
 */
import { formatIP, type IPAddress, type IPFamily, parseIP } from "../ip/ip-address.js";
import {
  formatCIDR,
  type IPNetwork,
  maskFor,
  networkContains,
  networkSize,
  nextNetwork,
  parseCIDR,
} from "../ip/ip-network.js";
import { boundText, describeValue } from "../text/untrusted-text.js";
import { UserError } from "../user-error.js";
import { isPlainObject, JsonFields } from "./json-fields.js";

export interface FamilyConfig {
  readonly network: IPNetwork;
  readonly subnetLen: number;
  /** First and last subnet addresses that may be leased (inclusive). */
  readonly subnetMin: IPAddress;
  readonly subnetMax: IPAddress;
}

export interface NetworkConfig {
  readonly enableIPv4: boolean;
  readonly enableIPv6: boolean;
  readonly enableNFTables: boolean;
  readonly ipv4: FamilyConfig | undefined;
  readonly ipv6: FamilyConfig | undefined;
  readonly backendType: string;
  /** The Backend object as written; each backend reads its own keys from it. */
  readonly backend: Readonly<Record<string, unknown>>;
}

export class ConfigError extends UserError {
  constructor(message: string) {
    super(
      `invalid network config: ${message}`,
      "fix the JSON at <etcd-prefix>/config (or --net-config-path in kube mode)",
    );
    this.name = "ConfigError";
  }
}

/** Parses and validates a network config, filling in flannel's defaults. */
export function parseNetworkConfig(text: string): NetworkConfig {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    throw new ConfigError(`not valid JSON (${boundText((err as Error).message, 200)})`);
  }
  if (!isPlainObject(parsed)) throw new ConfigError("expected a JSON object");
  const fields = new JsonFields(parsed);

  const enableIPv4 = readBool(fields, "EnableIPv4", true);
  const enableIPv6 = readBool(fields, "EnableIPv6", false);
  const enableNFTables = readBool(fields, "EnableNFTables", false);
  if (!enableIPv4 && !enableIPv6)
    throw new ConfigError("EnableIPv4 and EnableIPv6 are both false; enable one");

  const ipv4 = enableIPv4
    ? readFamily(fields, 4, { network: "Network", len: "SubnetLen", min: "SubnetMin", max: "SubnetMax" })
    : undefined;
  const ipv6 = enableIPv6
    ? readFamily(fields, 6, {
        network: "IPv6Network",
        len: "IPv6SubnetLen",
        min: "IPv6SubnetMin",
        max: "IPv6SubnetMax",
      })
    : undefined;

  const backendValue = fields.get("Backend");
  let backend: Record<string, unknown> = {};
  let backendType = "udp"; // flannel's default when Backend is absent
  if (backendValue !== undefined) {
    if (!isPlainObject(backendValue))
      throw new ConfigError('Backend must be an object like {"Type":"vxlan"}');
    backend = backendValue;
    const type = new JsonFields(backendValue).get("Type");
    if (typeof type !== "string" || type === "") {
      throw new ConfigError('Backend.Type must be a non-empty string such as "vxlan" or "host-gw"');
    }
    backendType = type;
  }
  return { enableIPv4, enableIPv6, enableNFTables, ipv4, ipv6, backendType, backend };
}

interface FamilyKeys {
  network: string;
  len: string;
  min: string;
  max: string;
}

function readFamily(fields: JsonFields, family: IPFamily, keys: FamilyKeys): FamilyConfig {
  const bits = family === 4 ? 32 : 128;
  const enableKey = family === 4 ? "EnableIPv4" : "EnableIPv6";
  const example = family === 4 ? "10.244.0.0/16" : "fd00:10:244::/56";
  const networkValue = fields.get(keys.network);
  if (networkValue === undefined) {
    throw new ConfigError(`${keys.network} is required when ${enableKey} is true (e.g. "${example}")`);
  }
  const network = typeof networkValue === "string" ? parseCIDR(networkValue) : undefined;
  if (!network || network.family !== family) {
    throw new ConfigError(
      `${keys.network} ${describeValue(networkValue)} is not an IPv${family} network in CIDR form (e.g. "${example}")`,
    );
  }
  // flannel takes a zero network with prefix 0 for "no Network" ("please define a correct Network
  // parameter"); any /0 is that one once its host bits are masked.
  if (network.prefixLen === 0) {
    throw new ConfigError(
      `${keys.network} ${formatCIDR(network)} is every address, not a pod network (flannel rejects it too); ` +
        `give a range such as "${example}"`,
    );
  }

  // Defaults as flannel: a /24 (IPv6: /64) per host when the network is big enough, else a quarter of it.
  const defaultLen = family === 4 ? 24 : 64;
  const tooSmall = bits - 4; // /28 and /124: four subnets of four addresses
  let subnetLen = readUint(fields, keys.len);
  if (subnetLen === undefined || subnetLen === 0) {
    if (network.prefixLen > tooSmall) {
      throw new ConfigError(
        `${keys.network} ${formatCIDR(network)} is too small: the prefix must be /${tooSmall} or shorter`,
      );
    }
    subnetLen = network.prefixLen <= defaultLen - 2 ? defaultLen : network.prefixLen + 2;
  } else {
    if (subnetLen > bits - 2) {
      throw new ConfigError(`${keys.len} ${subnetLen} is too long: it must be at most ${bits - 2}`);
    }
    if (subnetLen < network.prefixLen + 2) {
      throw new ConfigError(
        `${keys.len} ${subnetLen} is too short for ${keys.network} ${formatCIDR(network)}: ` +
          `it must be at least ${network.prefixLen + 2} so the network holds four subnets`,
      );
    }
  }

  const size = networkSize(family, subnetLen);
  // The first subnet is skipped: its .0 would clash with the network address.
  const subnetMin = readBoundary(fields, keys.min, network, subnetLen) ?? {
    family,
    value: network.ip + size,
  };
  const subnetMax = readBoundary(fields, keys.max, network, subnetLen) ?? {
    family,
    value: nextNetwork(network).ip - size,
  };
  if (subnetMin.value > subnetMax.value) {
    throw new ConfigError(`${keys.min} ${formatIP(subnetMin)} is above ${keys.max} ${formatIP(subnetMax)}`);
  }
  return { network, subnetLen, subnetMin, subnetMax };
}

function readBoundary(
  fields: JsonFields,
  key: string,
  network: IPNetwork,
  subnetLen: number,
): IPAddress | undefined {
  const value = fields.get(key);
  if (value === undefined) return undefined;
  const ip = typeof value === "string" ? parseIP(value) : undefined;
  if (!ip || ip.family !== network.family) {
    throw new ConfigError(`${key} ${describeValue(value)} is not an IPv${network.family} address`);
  }
  if (!networkContains(network, ip)) {
    throw new ConfigError(`${key} ${formatIP(ip)} is not inside the network ${formatCIDR(network)}`);
  }
  if ((ip.value & maskFor(ip.family, subnetLen)) !== ip.value) {
    throw new ConfigError(`${key} ${formatIP(ip)} is not on a /${subnetLen} boundary (the subnet length)`);
  }
  return ip;
}

function readBool(fields: JsonFields, key: string, fallback: boolean): boolean {
  const value = fields.get(key);
  if (value === undefined) return fallback;
  if (typeof value !== "boolean")
    throw new ConfigError(`${key} must be true or false, not ${describeValue(value)}`);
  return value;
}

function readUint(fields: JsonFields, key: string): number | undefined {
  const value = fields.get(key);
  if (value === undefined) return undefined;
  if (typeof value !== "number" || !Number.isInteger(value) || value < 0) {
    throw new ConfigError(`${key} must be a whole number such as 24, not ${describeValue(value)}`);
  }
  return value;
}

/** The networks this config enables, IPv4 first. */
export function enabledNetworks(config: NetworkConfig): IPNetwork[] {
  return [config.ipv4?.network, config.ipv6?.network].filter((n): n is IPNetwork => n !== undefined);
}
