/**
 * Pure conversions between Nodes and leases, with flannel's rules: a node's subnets are its pod CIDRs, and
 * what peers need (backend type and data, public IPs) is in its annotations.
 */
import type { NetworkConfig } from "../../config/network-config.js";
import { parseIPv4, parseIPv6 } from "../../ip/ip-address.js";
import { formatCIDR, type IPNetwork, networkContainsNetwork, parseCIDR } from "../../ip/ip-network.js";
import type { Lease, LeaseAttrs } from "../../lease/lease.js";
import { subnetKey } from "../../lease/lease-key.js";
import { boundText, describeValue } from "../../text/untrusted-text.js";
import { DEFAULT_LEASE_RULES, type LeasePublishRules } from "../subnet-manager.js";
import type { AnnotationNames } from "./kube-annotations.js";
import type { KubeNode } from "./kube-node.js";

export interface NodeSubnets {
  readonly subnet: IPNetwork | undefined;
  readonly ipv6Subnet: IPNetwork | undefined;
}

// Node names and pod CIDRs are anyone's who can edit nodes: bounded and escaped in messages.
const NAME_MAX = 253; // a Kubernetes object name's longest

function nodeName(node: KubeNode): string {
  return boundText(node.name, NAME_MAX);
}

/** The pod CIDRs for a message: the first few, each quoted and bounded, and how many there are. */
function describeCIDRs(cidrs: readonly string[]): string {
  const shown = cidrs.slice(0, 3).map((c) => describeValue(c));
  return `[${shown.join(", ")}${cidrs.length > shown.length ? `, … ${cidrs.length} in all` : ""}]`;
}

/** The node's pod subnets by family, or why they cannot be used. */
export function nodeSubnets(node: KubeNode): NodeSubnets | { error: string } {
  if (node.podCIDRs.length > 2)
    return { error: `node ${nodeName(node)} has more than two pod CIDRs ${describeCIDRs(node.podCIDRs)}` };
  let subnet: IPNetwork | undefined;
  let ipv6Subnet: IPNetwork | undefined;
  for (const text of node.podCIDRs) {
    const net = parseCIDR(text);
    if (!net)
      return { error: `node ${nodeName(node)} has pod CIDR ${describeValue(text)}, which is not a CIDR` };
    if (net.family === 4) subnet = net;
    else ipv6Subnet = net;
  }
  return { subnet, ipv6Subnet };
}

/** Checks our own node's subnets against the config; the error says exactly what does not fit. */
export function checkOwnSubnets(
  node: KubeNode,
  subnets: NodeSubnets,
  config: NetworkConfig,
): string | undefined {
  if (config.ipv4) {
    if (!subnets.subnet)
      return `node ${nodeName(node)} has no IPv4 pod CIDR (spec.podCIDRs: ${describeCIDRs(node.podCIDRs)}) but the config enables IPv4`;
    if (!networkContainsNetwork(config.ipv4.network, subnets.subnet))
      return `node ${nodeName(node)}'s pod CIDR ${formatCIDR(subnets.subnet)} is not inside Network ${formatCIDR(config.ipv4.network)} of the network config`;
  }
  if (subnets.ipv6Subnet && config.ipv6 && !networkContainsNetwork(config.ipv6.network, subnets.ipv6Subnet))
    return `node ${nodeName(node)}'s IPv6 pod CIDR ${formatCIDR(subnets.ipv6Subnet)} is not inside IPv6Network ${formatCIDR(config.ipv6.network)} of the network config`;
  if (config.ipv6 && !subnets.ipv6Subnet)
    return `node ${nodeName(node)} has no IPv6 pod CIDR (spec.podCIDRs: ${describeCIDRs(node.podCIDRs)}) but the config enables IPv6`;
  return undefined;
}

/** flannel's BackendData annotation text: the JSON of the backend's data, "null" when it has none. */
export function encodeBackendData(data: unknown): string {
  return data === undefined ? "null" : JSON.stringify(data);
}

function decodeBackendData(text: string | undefined): { ok: true; value: unknown } | { ok: false } {
  if (text === undefined) return { ok: true, value: undefined };
  try {
    const value = JSON.parse(text) as unknown;
    return { ok: true, value: value === null ? undefined : value };
  } catch {
    return { ok: false };
  }
}

export type PeerLease = { lease: Lease } | { skip: string } | { ignore: true };

/**
 * A peer node as a lease. Nodes flannel would not consider (not marked kube-subnet-manager, no pod CIDR,
 * another backend type) are ignored silently; ones that claim our backend but carry unusable values are
 * skipped with a reason the caller logs once.
 */
export function nodeToLease(node: KubeNode, names: AnnotationNames, config: NetworkConfig): PeerLease {
  const a = node.annotations;
  if (a[names.kubeSubnetManager] !== "true" || node.podCIDRs.length === 0) return { ignore: true };
  // flanneld's udp publishes an empty backend-type, as its etcd lease has no BackendType.
  if ((a[names.backendType] || "udp") !== config.backendType) return { ignore: true };
  const subnets = nodeSubnets(node);
  if ("error" in subnets) return { skip: subnets.error };
  let publicIP: string | undefined;
  let publicIPv6: string | undefined;
  let subnet: IPNetwork | undefined;
  let ipv6Subnet: IPNetwork | undefined;
  const data = decodeBackendData(a[names.backendData]);
  const v6Data = decodeBackendData(a[names.backendV6Data]);
  if (config.ipv4) {
    publicIP = a[names.publicIP];
    if (publicIP === undefined || !parseIPv4(publicIP))
      return {
        skip: `annotation ${names.publicIP} ${describeValue(publicIP ?? "")} is not an IPv4 address`,
      };
    if (!data.ok) return { skip: `annotation ${names.backendData} is not valid JSON` };
    if (!subnets.subnet) return { skip: "it has no IPv4 pod CIDR" };
    if (!networkContainsNetwork(config.ipv4.network, subnets.subnet))
      return {
        skip: `its pod CIDR ${formatCIDR(subnets.subnet)} is outside Network ${formatCIDR(config.ipv4.network)}`,
      };
    subnet = subnets.subnet;
  }
  if (config.ipv6) {
    publicIPv6 = a[names.publicIPv6];
    if (publicIPv6 === undefined || !parseIPv6(publicIPv6))
      return {
        skip: `annotation ${names.publicIPv6} ${describeValue(publicIPv6 ?? "")} is not an IPv6 address`,
      };
    if (!v6Data.ok) return { skip: `annotation ${names.backendV6Data} is not valid JSON` };
    if (!subnets.ipv6Subnet) return { skip: "it has no IPv6 pod CIDR" };
    if (!networkContainsNetwork(config.ipv6.network, subnets.ipv6Subnet))
      return {
        skip: `its IPv6 pod CIDR ${formatCIDR(subnets.ipv6Subnet)} is outside IPv6Network ${formatCIDR(config.ipv6.network)}`,
      };
    ipv6Subnet = subnets.ipv6Subnet;
  }
  const attrs: LeaseAttrs = {
    publicIP,
    publicIPv6,
    backendType: a[names.backendType],
    backendData: config.ipv4 && data.ok ? data.value : undefined,
    backendV6Data: config.ipv6 && v6Data.ok ? v6Data.value : undefined,
  };
  return { lease: { key: subnetKey(subnet, ipv6Subnet), subnet, ipv6Subnet, attrs, reservation: false } };
}

/**
 * The public addresses to announce: the operator's node-public-ip(v6) annotations replace what weft found
 * (as flanneld treats them like --public-ip).
 */
export function announcedAttrs(attrs: LeaseAttrs, node: KubeNode, names: AnnotationNames): LeaseAttrs {
  const v4 = node.annotations[names.nodePublicIP];
  const v6 = node.annotations[names.nodePublicIPv6];
  return {
    ...attrs,
    publicIP: attrs.publicIP !== undefined && v4 && parseIPv4(v4) ? v4 : attrs.publicIP,
    publicIPv6: attrs.publicIPv6 !== undefined && v6 && parseIPv6(v6) ? v6 : attrs.publicIPv6,
  };
}

/**
 * The annotations flanneld writes on its own node for these attrs. Which pairs are written is the
 * backend's rule (BackendRegistration.leaseRules, e.g. vxlan writes the v4 pair only with v4 data); a
 * public-ip(v6)-overwrite annotation replaces the announced address.
 */
export function ownAnnotations(
  attrs: LeaseAttrs,
  node: KubeNode,
  names: AnnotationNames,
  rules: LeasePublishRules = DEFAULT_LEASE_RULES,
): Record<string, string> {
  const current = node.annotations;
  const data = encodeBackendData(attrs.backendData);
  const v6Data = encodeBackendData(attrs.backendV6Data);
  const wanted: Record<string, string> = { [names.backendType]: attrs.backendType ?? "" };
  if (rules.v4 === "always" || data !== "null") {
    wanted[names.backendData] = data;
    wanted[names.publicIP] = current[names.publicIPOverwrite] || (attrs.publicIP ?? "0.0.0.0");
  }
  const v6 =
    attrs.publicIPv6 !== undefined &&
    (rules.v6 === "with-address" || (rules.v6 === "with-data" && v6Data !== "null"));
  if (v6) {
    wanted[names.backendV6Data] = v6Data;
    wanted[names.publicIPv6] = current[names.publicIPv6Overwrite] || attrs.publicIPv6!;
  }
  wanted[names.kubeSubnetManager] = "true";
  return wanted;
}

/**
 * The strategic-merge patch of nodes/<name>/status that brings the node's annotations to `wanted`, with
 * only the keys that differ, in Go's sorted key order as flanneld sends it; undefined when nothing differs.
 */
export function annotationPatch(node: KubeNode, wanted: Record<string, string>): string | undefined {
  const changed = Object.keys(wanted)
    .filter((key) => node.annotations[key] !== wanted[key])
    .sort();
  if (changed.length === 0) return undefined;
  const annotations: Record<string, string> = {};
  for (const key of changed) annotations[key] = wanted[key]!;
  return JSON.stringify({ metadata: { annotations } });
}

/** RFC 3339 at whole seconds, as metav1.Time marshals. */
export function kubeTime(now: Date): string {
  return now.toISOString().replace(/\.\d+Z$/, "Z");
}

/** flanneld's NetworkUnavailable=False condition patch (strategic merge on nodes/<name>/status). */
export function networkUnavailablePatch(now: Date): string {
  const t = kubeTime(now);
  return JSON.stringify({
    status: {
      conditions: [
        {
          type: "NetworkUnavailable",
          status: "False",
          lastHeartbeatTime: t,
          lastTransitionTime: t,
          reason: "FlannelIsUp",
          message: "Flannel is running on this node",
        },
      ],
    },
  });
}

/** What our own node's annotations hold from a previous run (backend data by family). */
export function storedBackendData(
  node: KubeNode,
  names: AnnotationNames,
): { backendType?: string; v4?: unknown; v6?: unknown } {
  const data = decodeBackendData(node.annotations[names.backendData]);
  const v6Data = decodeBackendData(node.annotations[names.backendV6Data]);
  const result: { backendType?: string; v4?: unknown; v6?: unknown } = {};
  const type = node.annotations[names.backendType];
  if (type !== undefined) result.backendType = type;
  if (data.ok && data.value !== undefined) result.v4 = data.value;
  if (v6Data.ok && v6Data.value !== undefined) result.v6 = v6Data.value;
  return result;
}
