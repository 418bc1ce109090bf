/**
 * WireGuard's generic netlink family ("wireguard", version 1): WG_CMD_SET_DEVICE and WG_CMD_GET_DEVICE
 * for the kernel module, encoded as wireguard-tools' ipc-linux.h does (nests flagged NLA_F_NESTED, one
 * nest per peer and per allowed IP, each of type 0). The decoded device has the same shape as the
 * userspace UAPI's, so one kind of state can sit on either. Constants from linux/include/uapi/linux/
 * wireguard.h; sockaddr layouts from linux/in.h and linux/in6.h.
 * Tested on bytes only: this machine's kernel has no WireGuard module.
 */
import type { UapiDevice, UapiPeer, UapiPeerSet } from "../backend/wireguard/wireguard-uapi.js";
import { formatIP, parseIP } from "../ip/ip-address.js";
import {
  type Attr,
  attrMap,
  bytesAttr,
  decodeAttrs,
  nestAttr,
  readU16,
  stringAttr,
  u8Attr,
  u16Attr,
  u32Attr,
  writeU16,
} from "./attributes.js";
import { AF_INET, AF_INET6, NLA_F_NESTED, NLM_F_ACK, NLM_F_DUMP, NLM_F_REQUEST } from "./constants.js";
import { GENL_HDRLEN, genlHeader } from "./genetlink.js";
import { encodeMessage, type NetlinkMessage } from "./message.js";

export const WG_GENL_NAME = "wireguard";
export const WG_GENL_VERSION = 1;
export const WG_CMD_GET_DEVICE = 0;
export const WG_CMD_SET_DEVICE = 1;
export const WGDEVICE_F_REPLACE_PEERS = 1 << 0;
export const WGDEVICE_A_IFINDEX = 1;
export const WGDEVICE_A_IFNAME = 2;
export const WGDEVICE_A_PRIVATE_KEY = 3;
export const WGDEVICE_A_PUBLIC_KEY = 4;
export const WGDEVICE_A_FLAGS = 5;
export const WGDEVICE_A_LISTEN_PORT = 6;
export const WGDEVICE_A_FWMARK = 7;
export const WGDEVICE_A_PEERS = 8;
export const WGPEER_F_REMOVE_ME = 1 << 0;
export const WGPEER_F_REPLACE_ALLOWEDIPS = 1 << 1;
export const WGPEER_A_PUBLIC_KEY = 1;
export const WGPEER_A_PRESHARED_KEY = 2;
export const WGPEER_A_FLAGS = 3;
export const WGPEER_A_ENDPOINT = 4;
export const WGPEER_A_PERSISTENT_KEEPALIVE_INTERVAL = 5;
export const WGPEER_A_ALLOWEDIPS = 9;
export const WGALLOWEDIP_A_FAMILY = 1;
export const WGALLOWEDIP_A_IPADDR = 2;
export const WGALLOWEDIP_A_CIDR_MASK = 3;

const hexBytes = (hex: string) => Buffer.from(hex, "hex");
const nest = (type: number, children: Attr[]) => nestAttr(type | NLA_F_NESTED, children);

/** "172.31.0.2:51820" or "[fd31::2]:51821" as struct sockaddr_in / sockaddr_in6. */
export function encodeSockaddr(endpoint: string): Buffer {
  const match = /^(?:\[([^\]]+)\]|([^:]+)):(\d+)$/.exec(endpoint);
  const ip = match ? parseIP(match[1] ?? match[2]!) : undefined;
  if (!match || !ip) throw new Error(`not an endpoint: ${endpoint}`);
  const port = Number(match[3]);
  const v4 = ip.family === 4;
  const buf = Buffer.alloc(v4 ? 16 : 28);
  writeU16(buf, v4 ? AF_INET : AF_INET6, 0);
  buf.writeUInt16BE(port, 2);
  const raw = Buffer.from(ip.value.toString(16).padStart(v4 ? 8 : 32, "0"), "hex");
  buf.set(raw, v4 ? 4 : 8); // sin6_flowinfo (4 bytes) comes before the IPv6 address
  return buf;
}

function decodeSockaddr(buf: Buffer): string | undefined {
  const family = readU16(buf, 0);
  const port = buf.readUInt16BE(2);
  if (family === AF_INET && buf.length >= 8)
    return `${formatIP({ family: 4, value: BigInt(`0x${buf.subarray(4, 8).toString("hex")}`) })}:${port}`;
  if (family === AF_INET6 && buf.length >= 24)
    return `[${formatIP({ family: 6, value: BigInt(`0x${buf.subarray(8, 24).toString("hex")}`) })}]:${port}`;
  return undefined;
}

function allowedIP(cidr: string): Attr {
  const [address, bits] = cidr.split("/");
  const ip = address ? parseIP(address) : undefined;
  if (!ip || bits === undefined) throw new Error(`not a CIDR: ${cidr}`);
  const raw = Buffer.from(ip.value.toString(16).padStart(ip.family === 4 ? 8 : 32, "0"), "hex");
  return nest(0, [
    u16Attr(WGALLOWEDIP_A_FAMILY, ip.family === 4 ? AF_INET : AF_INET6),
    bytesAttr(WGALLOWEDIP_A_IPADDR, raw),
    u8Attr(WGALLOWEDIP_A_CIDR_MASK, Number(bits)),
  ]);
}

export interface GenlDeviceSet {
  readonly ifname: string;
  /** Hex keys, as the UAPI's. */
  readonly privateKey?: string;
  readonly listenPort?: number;
  readonly replacePeers?: boolean;
  readonly peers?: readonly UapiPeerSet[];
  /** Public keys (hex) of peers to remove. */
  readonly removePeers?: readonly string[];
}

/** WG_CMD_SET_DEVICE to the family id nlctrl gave for "wireguard". */
export function encodeSetDevice(familyId: number, set: GenlDeviceSet): Buffer {
  const attrs: Attr[] = [stringAttr(WGDEVICE_A_IFNAME, set.ifname)];
  if (set.replacePeers) attrs.push(u32Attr(WGDEVICE_A_FLAGS, WGDEVICE_F_REPLACE_PEERS));
  if (set.privateKey) attrs.push(bytesAttr(WGDEVICE_A_PRIVATE_KEY, hexBytes(set.privateKey)));
  if (set.listenPort !== undefined) attrs.push(u16Attr(WGDEVICE_A_LISTEN_PORT, set.listenPort));
  const peers: Attr[] = [];
  for (const peer of set.peers ?? []) {
    const children: Attr[] = [
      bytesAttr(WGPEER_A_PUBLIC_KEY, hexBytes(peer.publicKey)),
      u32Attr(WGPEER_A_FLAGS, WGPEER_F_REPLACE_ALLOWEDIPS),
    ];
    if (peer.presharedKey) children.push(bytesAttr(WGPEER_A_PRESHARED_KEY, hexBytes(peer.presharedKey)));
    children.push(bytesAttr(WGPEER_A_ENDPOINT, encodeSockaddr(peer.endpoint)));
    children.push(u16Attr(WGPEER_A_PERSISTENT_KEEPALIVE_INTERVAL, peer.keepaliveSeconds));
    children.push(nest(WGPEER_A_ALLOWEDIPS, peer.allowedIPs.map(allowedIP)));
    peers.push(nest(0, children));
  }
  for (const key of set.removePeers ?? [])
    peers.push(
      nest(0, [bytesAttr(WGPEER_A_PUBLIC_KEY, hexBytes(key)), u32Attr(WGPEER_A_FLAGS, WGPEER_F_REMOVE_ME)]),
    );
  if (peers.length > 0) attrs.push(nest(WGDEVICE_A_PEERS, peers));
  return encodeMessage(
    familyId,
    NLM_F_REQUEST | NLM_F_ACK,
    genlHeader(WG_CMD_SET_DEVICE, WG_GENL_VERSION),
    attrs,
  );
}

/** WG_CMD_GET_DEVICE (a dump: a device with many peers comes in several messages). */
export function encodeGetDevice(familyId: number, ifname: string): Buffer {
  return encodeMessage(
    familyId,
    NLM_F_REQUEST | NLM_F_ACK | NLM_F_DUMP,
    genlHeader(WG_CMD_GET_DEVICE, WG_GENL_VERSION),
    [stringAttr(WGDEVICE_A_IFNAME, ifname)],
  );
}

function decodePeer(buf: Buffer): UapiPeer | undefined {
  const a = attrMap(buf);
  const key = a.get(WGPEER_A_PUBLIC_KEY);
  if (!key) return undefined;
  const psk = a.get(WGPEER_A_PRESHARED_KEY);
  const endpoint = a.get(WGPEER_A_ENDPOINT);
  const keepalive = a.get(WGPEER_A_PERSISTENT_KEEPALIVE_INTERVAL);
  const allowedIPs: string[] = [];
  for (const entry of decodeAttrs(a.get(WGPEER_A_ALLOWEDIPS) ?? Buffer.alloc(0))) {
    const ip = attrMap(entry.value);
    const family = ip.get(WGALLOWEDIP_A_FAMILY);
    const addr = ip.get(WGALLOWEDIP_A_IPADDR);
    const mask = ip.get(WGALLOWEDIP_A_CIDR_MASK);
    if (!family || !addr || !mask) continue;
    const fam = readU16(family) === AF_INET ? 4 : 6;
    allowedIPs.push(`${formatIP({ family: fam, value: BigInt(`0x${addr.toString("hex")}`) })}/${mask[0]}`);
  }
  return {
    publicKey: key.toString("hex"),
    presharedKey: psk ? psk.toString("hex") : "0".repeat(64),
    endpoint: endpoint ? decodeSockaddr(endpoint) : undefined,
    keepaliveSeconds: keepalive ? readU16(keepalive) : 0,
    allowedIPs,
  };
}

/**
 * The device from the messages of a GET_DEVICE dump. The kernel splits a long peer list over several
 * messages and may continue one peer's allowed IPs in the next (same public key): those are merged.
 */
export function decodeDevice(messages: readonly NetlinkMessage[]): UapiDevice {
  let privateKey: string | undefined;
  let listenPort = 0;
  const peers: UapiPeer[] = [];
  for (const message of messages) {
    const a = attrMap(message.payload, GENL_HDRLEN);
    const key = a.get(WGDEVICE_A_PRIVATE_KEY);
    if (key?.some((b) => b !== 0)) privateKey = key.toString("hex");
    const port = a.get(WGDEVICE_A_LISTEN_PORT);
    if (port) listenPort = readU16(port);
    for (const entry of decodeAttrs(a.get(WGDEVICE_A_PEERS) ?? Buffer.alloc(0))) {
      const peer = decodePeer(entry.value);
      if (!peer) continue;
      const last = peers.at(-1);
      if (last && last.publicKey === peer.publicKey)
        peers[peers.length - 1] = { ...last, allowedIPs: [...last.allowedIPs, ...peer.allowedIPs] };
      else peers.push(peer);
    }
  }
  return { privateKey, listenPort, peers };
}
