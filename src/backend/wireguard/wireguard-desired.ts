/**
 * The wireguard backend's desired state (pure), as flannel's wireguard_network.go programs it:
 * - the whole Network (and IPv6Network) routed through the device, scope link;
 * - each device's private key and listen port;
 * - one peer per lease: AllowedIPs = its subnet(s), Endpoint = PublicIP:Port from its BackendData
 *   (the device's own port when the lease has none, for old flanneld), our PSK and keepalive.
 * Mode separate: flannel-wg carries IPv4, flannel-wg-v6 IPv6, each peer once per family. Modes auto,
 * ipv4 and ipv6: one device, one peer with both subnets, the endpoint of the chosen family.
 * A lease that cannot be used (another backend, a malformed public key, our own key) is a problem for
 * that peer alone.
 */
import { isPlainObject, JsonFields } from "../../config/json-fields.js";
import { formatIP, type IPAddress, parseIP } from "../../ip/ip-address.js";
import { formatCIDR, type IPNetwork, networksOverlap, parseCIDR } from "../../ip/ip-network.js";
import type { Lease } from "../../lease/lease.js";
import type { RouteEntry } from "../../reconcile/kinds/route-kind.js";
import { describeValue } from "../../text/untrusted-text.js";
import type { DesiredPeers, PeerProblem } from "../backend.js";
import type { WireguardMode } from "./wireguard-config.js";
import type { WgDeviceEntry } from "./wireguard-device-kind.js";
import { decodeKey } from "./wireguard-key.js";
import type { WgPeerEntry } from "./wireguard-peer-kind.js";

export interface WireguardFamilyPlan {
  readonly device: string;
  readonly network: IPNetwork;
  readonly listenPort: number;
}

export interface WireguardPlan {
  readonly mode: WireguardMode;
  readonly ipv4: WireguardFamilyPlan | undefined;
  readonly ipv6: WireguardFamilyPlan | undefined;
  /** base64 */
  readonly privateKey: string;
  readonly publicKey: string;
  readonly presharedKey: string | undefined;
  readonly keepaliveSeconds: number;
  /** Our own addresses peers see, for Mode auto's choice of family. */
  readonly publicIP: string | undefined;
  readonly publicIPv6: string | undefined;
}

/** {"PublicKey":"...","Port":51820}: this key order, as flanneld's json.Marshal writes it. */
export interface WireguardLeaseData {
  readonly PublicKey: string;
  readonly Port: number;
}

export function makeWireguardLeaseData(publicKey: string, port: number): WireguardLeaseData {
  return { PublicKey: publicKey, Port: port };
}

type Read<T> = { value: T } | { reason: string };

/** The peer's key and port from BackendData (or BackendV6Data); Port 0 or absent = our own port. */
export function readLeaseData(
  data: unknown,
  field: string,
  ownPort: number,
): Read<{ key: string; port: number }> {
  if (!isPlainObject(data)) return { reason: `its ${field} is missing or not an object` };
  const fields = new JsonFields(data);
  const key = fields.get("PublicKey");
  if (typeof key !== "string" || !decodeKey(key))
    return {
      reason: `its ${field}.PublicKey ${describeValue(key)} is not a WireGuard public key (32 bytes in base64)`,
    };
  const port = fields.get("Port") ?? 0;
  if (typeof port !== "number" || !Number.isInteger(port) || port < 0 || port > 65535)
    return { reason: `its ${field}.Port ${describeValue(port)} is not a UDP port` };
  return { value: { key, port: port === 0 ? ownPort : port } };
}

/** Go's net.IP.IsPrivate: 10/8, 172.16/12, 192.168/16, fc00::/7. */
function isPrivate(ip: IPAddress): boolean {
  const inside = (cidr: string) => {
    const net = parseCIDR(cidr)!;
    return (
      net.family === ip.family &&
      networksOverlap(net, { family: ip.family, ip: ip.value, prefixLen: ip.family === 4 ? 32 : 128 })
    );
  };
  return ip.family === 4
    ? ["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"].some(inside)
    : inside("fc00::/7");
}

/** flannel's selectMode for Mode auto: IPv6 only when both ends have public IPv6 and the peer's IPv4 is private. */
export function autoFamily(
  peer: Lease,
  ownPublicIP: string | undefined,
  ownPublicIPv6: string | undefined,
): 4 | 6 {
  const v4 = peer.attrs.publicIP ? parseIP(peer.attrs.publicIP) : undefined;
  const v6 = peer.attrs.publicIPv6 ? parseIP(peer.attrs.publicIPv6) : undefined;
  if (!v6) return 4;
  if (v4 && !isPrivate(v4) && ownPublicIP) return 4;
  const own6 = ownPublicIPv6 ? parseIP(ownPublicIPv6) : undefined;
  if (!isPrivate(v6) && own6 && !isPrivate(own6)) return 6;
  return 4;
}

function endpointOf(family: 4 | 6, address: string | undefined, port: number): Read<string> {
  const ip = address ? parseIP(address) : undefined;
  if (!ip || ip.family !== family)
    return { reason: `it has no PublicIP${family === 6 ? "v6" : ""} to reach it at` };
  return { value: family === 4 ? `${formatIP(ip)}:${port}` : `[${formatIP(ip)}]:${port}` };
}

function networkRoute(network: IPNetwork, device: string): RouteEntry {
  return { dst: formatCIDR(network), gateway: undefined, dev: device, onlink: false };
}

export function wireguardDesiredState(plan: WireguardPlan, own: Lease, peers: Iterable<Lease>): DesiredPeers {
  const routes: RouteEntry[] = [];
  const devices: WgDeviceEntry[] = [];
  const wanted: WgPeerEntry[] = [];
  const problems: PeerProblem[] = [];
  const separate = plan.mode === "separate";
  for (const family of [plan.ipv4, plan.ipv6]) {
    if (!family) continue;
    routes.push(networkRoute(family.network, family.device));
    if (!devices.some((d) => d.device === family.device))
      devices.push({ device: family.device, privateKey: plan.privateKey, listenPort: family.listenPort });
  }
  // WireGuard has one peer per public key on a device: the first lease (in key order) keeps it.
  const taken = new Map<string, string>();
  const add = (lease: Lease, entry: WgPeerEntry): void => {
    const id = `${entry.device} ${entry.publicKey}`;
    const holder = taken.get(id);
    if (entry.publicKey === plan.publicKey) {
      problems.push({ key: lease.key, reason: "its public key is this host's own" });
    } else if (holder !== undefined && holder !== lease.key) {
      problems.push({ key: lease.key, reason: `its public key is already the peer of lease ${holder}` });
    } else {
      taken.set(id, lease.key);
      wanted.push(entry);
    }
  };
  const sorted = [...peers]
    .filter((l) => l.key !== own.key)
    .sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  for (const lease of sorted) {
    if (lease.attrs.backendType !== "wireguard") {
      problems.push({
        key: lease.key,
        reason: `it runs the ${lease.attrs.backendType || "udp"} backend; this network's hosts use wireguard, so its pods are unreachable from here`,
      });
      continue;
    }
    const overlaps = (mine: IPNetwork | undefined, theirs: IPNetwork | undefined) =>
      mine !== undefined && theirs !== undefined && networksOverlap(mine, theirs);
    if (overlaps(own.subnet, lease.subnet) || overlaps(own.ipv6Subnet, lease.ipv6Subnet)) {
      problems.push({ key: lease.key, reason: "its subnet overlaps ours" });
      continue;
    }
    const common = { presharedKey: plan.presharedKey, keepaliveSeconds: plan.keepaliveSeconds };
    const v4 =
      plan.ipv4 && lease.subnet
        ? readLeaseData(lease.attrs.backendData, "BackendData", plan.ipv4.listenPort)
        : undefined;
    const v6Port = (separate ? plan.ipv6 : (plan.ipv4 ?? plan.ipv6))?.listenPort ?? 0;
    const v6 =
      plan.ipv6 && lease.ipv6Subnet
        ? readLeaseData(lease.attrs.backendV6Data, "BackendV6Data", v6Port)
        : undefined;
    if (separate) {
      for (const [family, data, fam, subnet, address] of [
        [4, v4, plan.ipv4, lease.subnet, lease.attrs.publicIP],
        [6, v6, plan.ipv6, lease.ipv6Subnet, lease.attrs.publicIPv6],
      ] as const) {
        if (!data || !fam || !subnet) continue;
        if ("reason" in data) {
          problems.push({ key: lease.key, reason: data.reason });
          continue;
        }
        const endpoint = endpointOf(family, address, data.value.port);
        if ("reason" in endpoint) {
          problems.push({ key: lease.key, reason: endpoint.reason });
          continue;
        }
        add(lease, {
          device: fam.device,
          publicKey: data.value.key,
          endpoint: endpoint.value,
          allowedIPs: [formatCIDR(subnet)],
          ...common,
        });
      }
      continue;
    }
    // One device: flannel takes the key from the IPv6 data when the lease has IPv6, else the IPv4's.
    const datas = [v4, v6].filter((d) => d !== undefined);
    const bad = datas.find((d) => "reason" in d);
    if (bad && "reason" in bad) {
      problems.push({ key: lease.key, reason: bad.reason });
      continue;
    }
    const chosen = (v6 ?? v4) as { value: { key: string; port: number } } | undefined;
    if (!chosen) continue;
    const family =
      plan.mode === "ipv4" ? 4 : plan.mode === "ipv6" ? 6 : autoFamily(lease, plan.publicIP, plan.publicIPv6);
    // flanneld publishes ListenPortV6 in BackendV6Data even though its one device listens on ListenPort:
    // dial the IPv4 data's port when there is one (the port the device really listens on).
    const port = (v4 && "value" in v4 ? v4.value.port : undefined) ?? chosen.value.port;
    const endpoint = endpointOf(family, family === 4 ? lease.attrs.publicIP : lease.attrs.publicIPv6, port);
    if ("reason" in endpoint) {
      problems.push({ key: lease.key, reason: endpoint.reason });
      continue;
    }
    const allowedIPs = [plan.ipv4 && lease.subnet, plan.ipv6 && lease.ipv6Subnet]
      .filter((s): s is IPNetwork => !!s)
      .map(formatCIDR)
      .sort();
    const single = (plan.ipv4 ?? plan.ipv6)!;
    add(lease, {
      device: single.device,
      publicKey: chosen.value.key,
      endpoint: endpoint.value,
      allowedIPs,
      ...common,
    });
  }
  return { state: { route: routes, "wg-device": devices, "wg-peer": wanted }, problems };
}
