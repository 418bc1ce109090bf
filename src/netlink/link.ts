// Links (network devices): RTM_NEWLINK/DELLINK/GETLINK with struct ifinfomsg.
//   struct ifinfomsg { u8 family; u8 pad; u16 type; i32 index; u32 flags; u32 change; }  (16 bytes)
import { bytesToIp, bytesToMac, ipFamily, ipToBytes, macToBytes } from "./addr-bytes.js";
import {
  type Attr,
  attrMap,
  attrString,
  be16Attr,
  bytesAttr,
  encodeAttrs,
  flagAttr,
  nestAttr,
  readBE16,
  readI32,
  readU16,
  readU32,
  requireHeader,
  stringAttr,
  u8Attr,
  u32Attr,
  writeI32,
  writeU16,
  writeU32,
} from "./attributes.js";
import {
  AF_UNSPEC,
  IFF_LOWER_UP,
  IFF_RUNNING,
  IFF_UP,
  IFLA_ADDRESS,
  IFLA_EXT_MASK,
  IFLA_IFNAME,
  IFLA_INFO_DATA,
  IFLA_INFO_KIND,
  IFLA_INFO_SLAVE_KIND,
  IFLA_LINK,
  IFLA_LINKINFO,
  IFLA_MASTER,
  IFLA_MTU,
  IFLA_NET_NS_FD,
  IFLA_OPERSTATE,
  IFLA_TXQLEN,
  IFLA_VXLAN_AGEING,
  IFLA_VXLAN_GBP,
  IFLA_VXLAN_GROUP,
  IFLA_VXLAN_GROUP6,
  IFLA_VXLAN_ID,
  IFLA_VXLAN_L2MISS,
  IFLA_VXLAN_L3MISS,
  IFLA_VXLAN_LEARNING,
  IFLA_VXLAN_LINK,
  IFLA_VXLAN_LOCAL,
  IFLA_VXLAN_LOCAL6,
  IFLA_VXLAN_PORT,
  IFLA_VXLAN_PORT_RANGE,
  IFLA_VXLAN_PROXY,
  IFLA_VXLAN_TOS,
  IFLA_VXLAN_TTL,
  IFLA_VXLAN_UDP_CSUM,
  NLM_F_CREATE,
  NLM_F_EXCL,
  OPER_STATES,
  RTM_DELLINK,
  RTM_GETLINK,
  RTM_NEWLINK,
  VETH_INFO_PEER,
} from "./constants.js";
import { decodeIptun, type IptunInfo, iptunAttrs } from "./iptun.js";
import { encodeMessage, type NetlinkMessage } from "./message.js";

/** A device by ifindex or by name (the kernel looks names up itself). */
export type LinkRef = number | string;

export interface VxlanInfo {
  vni: number;
  /** Source address, IPv4 or IPv6. */
  local?: string;
  /** Multicast group or unicast remote. */
  group?: string;
  /** Underlay device ifindex (IFLA_VXLAN_LINK). */
  devIndex?: number;
  /** UDP destination port (8472 for flannel, 4789 IANA). */
  port?: number;
  portRange?: { low: number; high: number };
  learning?: boolean;
  gbp?: boolean;
  /** 0 means inherit. */
  ttl?: number;
  tos?: number;
  /** FDB ageing in seconds. */
  ageing?: number;
  proxy?: boolean;
  l2miss?: boolean;
  l3miss?: boolean;
  udpCsum?: boolean;
}

export interface Link {
  index: number;
  name: string;
  /** rtnl_link_ops kind ("vxlan", "bridge", "veth", "dummy"...); undefined for plain devices. */
  kind: string | undefined;
  /** ARPHRD_* hardware type (1 ether, 772 loopback, 65534 none). */
  type: number;
  mtu: number;
  /** IFF_* flags. */
  flags: number;
  up: boolean;
  /** IFF_LOWER_UP: the carrier is on. */
  lowerUp: boolean;
  /** "up", "down", "unknown", "lowerlayerdown"... */
  operstate: string;
  mac: string | undefined;
  /** Bridge or bond this device is enslaved to. */
  masterIndex: number | undefined;
  /** IFLA_LINK: the parent device (veth peer, vlan parent), possibly in another namespace. */
  parentIndex: number | undefined;
  slaveKind: string | undefined;
  txqlen: number | undefined;
  vxlan: VxlanInfo | undefined;
  /** Tunnel parameters of an "ipip" device. */
  iptun?: IptunInfo;
}

interface LinkCommon {
  name: string;
  mtu?: number;
  mac?: string;
  up?: boolean;
  masterIndex?: number;
  txqlen?: number;
}

export type LinkSpec =
  | (LinkCommon & { kind: "dummy" })
  | (LinkCommon & { kind: "bridge" })
  | (LinkCommon & { kind: "wireguard" })
  | (LinkCommon & {
      kind: "veth";
      /**
       * The other end. It is created in another namespace given netnsFd (an open /run/netns/X);
       * RtNetlink.linkAdd opens `netns` (a path) into netnsFd for the duration of the request.
       */
      peer: { name: string; mac?: string; mtu?: number; netns?: string; netnsFd?: number };
    })
  | (LinkCommon & { kind: "vxlan"; vxlan: VxlanInfo })
  | (LinkCommon & { kind: "ipip"; iptun: IptunInfo });

/** Attributes to change on an existing device. */
export interface LinkChanges {
  up?: boolean;
  mtu?: number;
  mac?: string;
  /** 0 releases the device from its master. */
  masterIndex?: number;
  name?: string;
  /** Moves the device into the namespace of this open fd. */
  netnsFd?: number;
}

// RTEXT_FILTER_SKIP_STATS: dumps without the big per-device counters.
const RTEXT_FILTER_SKIP_STATS = 1 << 3;

export function encodeIfinfomsg(index: number, flags = 0, change = 0, family = AF_UNSPEC, type = 0): Buffer {
  const b = Buffer.alloc(16);
  b[0] = family;
  writeU16(b, type, 2);
  writeI32(b, index, 4);
  writeU32(b, flags, 8);
  writeU32(b, change, 12);
  return b;
}

/** ifinfomsg index plus, for a name, the IFLA_IFNAME attribute that selects the device. */
function refHeader(ref: LinkRef, flags = 0, change = 0): { header: Buffer; attrs: Attr[] } {
  if (typeof ref === "number") return { header: encodeIfinfomsg(ref, flags, change), attrs: [] };
  return { header: encodeIfinfomsg(0, flags, change), attrs: [stringAttr(IFLA_IFNAME, ref)] };
}

export function vxlanAttrs(v: VxlanInfo): Attr[] {
  const attrs: Attr[] = [u32Attr(IFLA_VXLAN_ID, v.vni)];
  if (v.devIndex !== undefined) attrs.push(u32Attr(IFLA_VXLAN_LINK, v.devIndex));
  if (v.local !== undefined) {
    attrs.push(bytesAttr(ipFamily(v.local) === 4 ? IFLA_VXLAN_LOCAL : IFLA_VXLAN_LOCAL6, ipToBytes(v.local)));
  }
  if (v.group !== undefined) {
    attrs.push(bytesAttr(ipFamily(v.group) === 4 ? IFLA_VXLAN_GROUP : IFLA_VXLAN_GROUP6, ipToBytes(v.group)));
  }
  if (v.ttl !== undefined) attrs.push(u8Attr(IFLA_VXLAN_TTL, v.ttl));
  if (v.tos !== undefined) attrs.push(u8Attr(IFLA_VXLAN_TOS, v.tos));
  if (v.learning !== undefined) attrs.push(u8Attr(IFLA_VXLAN_LEARNING, v.learning ? 1 : 0));
  if (v.proxy !== undefined) attrs.push(u8Attr(IFLA_VXLAN_PROXY, v.proxy ? 1 : 0));
  if (v.l2miss !== undefined) attrs.push(u8Attr(IFLA_VXLAN_L2MISS, v.l2miss ? 1 : 0));
  if (v.l3miss !== undefined) attrs.push(u8Attr(IFLA_VXLAN_L3MISS, v.l3miss ? 1 : 0));
  if (v.udpCsum !== undefined) attrs.push(u8Attr(IFLA_VXLAN_UDP_CSUM, v.udpCsum ? 1 : 0));
  if (v.ageing !== undefined) attrs.push(u32Attr(IFLA_VXLAN_AGEING, v.ageing));
  if (v.port !== undefined) attrs.push(be16Attr(IFLA_VXLAN_PORT, v.port));
  if (v.portRange !== undefined) {
    const range = Buffer.alloc(4);
    range.writeUInt16BE(v.portRange.low, 0);
    range.writeUInt16BE(v.portRange.high, 2);
    attrs.push(bytesAttr(IFLA_VXLAN_PORT_RANGE, range));
  }
  if (v.gbp) attrs.push(flagAttr(IFLA_VXLAN_GBP));
  return attrs;
}

function commonAttrs(spec: { mtu?: number; mac?: string; masterIndex?: number; txqlen?: number }): Attr[] {
  const attrs: Attr[] = [];
  if (spec.mtu !== undefined) attrs.push(u32Attr(IFLA_MTU, spec.mtu));
  if (spec.mac !== undefined) attrs.push(bytesAttr(IFLA_ADDRESS, macToBytes(spec.mac)));
  if (spec.masterIndex !== undefined) attrs.push(u32Attr(IFLA_MASTER, spec.masterIndex));
  if (spec.txqlen !== undefined) attrs.push(u32Attr(IFLA_TXQLEN, spec.txqlen));
  return attrs;
}

/** RTM_NEWLINK creating a device; NLM_F_EXCL makes an existing name fail with EEXIST. */
export function encodeLinkAdd(spec: LinkSpec, flags = NLM_F_CREATE | NLM_F_EXCL): Buffer {
  // The kernel takes the kind with or without a NUL; ipip's is sent as iproute2 sends it (no NUL), so
  // its request is byte for byte iproute2's (test/fixtures/ipip-link-add.hex).
  const info: Attr[] = [
    spec.kind === "ipip"
      ? bytesAttr(IFLA_INFO_KIND, Buffer.from(spec.kind, "ascii"))
      : stringAttr(IFLA_INFO_KIND, spec.kind),
  ];
  if (spec.kind === "vxlan") info.push(nestAttr(IFLA_INFO_DATA, vxlanAttrs(spec.vxlan)));
  if (spec.kind === "ipip") info.push(nestAttr(IFLA_INFO_DATA, iptunAttrs(spec.iptun)));
  if (spec.kind === "veth") {
    const peer = spec.peer;
    const peerAttrs: Attr[] = [stringAttr(IFLA_IFNAME, peer.name), ...commonAttrs(peer)];
    if (peer.netnsFd !== undefined) peerAttrs.push(u32Attr(IFLA_NET_NS_FD, peer.netnsFd));
    // VETH_INFO_PEER holds a whole ifinfomsg followed by the peer's attributes.
    const peerValue = Buffer.concat([encodeIfinfomsg(0), encodeAttrs(peerAttrs)]);
    info.push(nestAttr(IFLA_INFO_DATA, [bytesAttr(VETH_INFO_PEER, peerValue)]));
  }
  const attrs: Attr[] = [
    stringAttr(IFLA_IFNAME, spec.name),
    ...commonAttrs(spec),
    nestAttr(IFLA_LINKINFO, info),
  ];
  const up = spec.up ? IFF_UP : 0;
  return encodeMessage(RTM_NEWLINK, flags, encodeIfinfomsg(0, up, up), attrs);
}

/** RTM_NEWLINK without NLM_F_CREATE: changes an existing device. */
export function encodeLinkSet(ref: LinkRef, changes: LinkChanges): Buffer {
  const upBits = changes.up === undefined ? 0 : IFF_UP;
  const { header, attrs } = refHeader(ref, changes.up ? IFF_UP : 0, upBits);
  if (changes.name !== undefined) {
    if (typeof ref === "string") throw new TypeError("renaming needs the device's index");
    attrs.push(stringAttr(IFLA_IFNAME, changes.name));
  }
  attrs.push(...commonAttrs(changes));
  if (changes.netnsFd !== undefined) attrs.push(u32Attr(IFLA_NET_NS_FD, changes.netnsFd));
  return encodeMessage(RTM_NEWLINK, 0, header, attrs);
}

export function encodeLinkDel(ref: LinkRef): Buffer {
  const { header, attrs } = refHeader(ref);
  return encodeMessage(RTM_DELLINK, 0, header, attrs);
}

export function encodeLinkGet(ref: LinkRef): Buffer {
  const { header, attrs } = refHeader(ref);
  attrs.push(u32Attr(IFLA_EXT_MASK, RTEXT_FILTER_SKIP_STATS));
  return encodeMessage(RTM_GETLINK, 0, header, attrs);
}

export function encodeLinkDump(): Buffer {
  return encodeMessage(RTM_GETLINK, 0, encodeIfinfomsg(0), [u32Attr(IFLA_EXT_MASK, RTEXT_FILTER_SKIP_STATS)]);
}

export function decodeVxlan(data: Buffer): VxlanInfo {
  const a = attrMap(data);
  const bool = (type: number) => {
    const v = a.get(type);
    return v === undefined ? undefined : v[0] !== 0;
  };
  const info: VxlanInfo = { vni: a.has(IFLA_VXLAN_ID) ? readU32(a.get(IFLA_VXLAN_ID)!) : 0 };
  const local = a.get(IFLA_VXLAN_LOCAL) ?? a.get(IFLA_VXLAN_LOCAL6);
  if (local !== undefined) info.local = bytesToIp(local);
  const group = a.get(IFLA_VXLAN_GROUP) ?? a.get(IFLA_VXLAN_GROUP6);
  if (group !== undefined) info.group = bytesToIp(group);
  const dev = a.get(IFLA_VXLAN_LINK);
  if (dev !== undefined) info.devIndex = readU32(dev);
  const port = a.get(IFLA_VXLAN_PORT);
  if (port !== undefined) info.port = readBE16(port);
  const range = a.get(IFLA_VXLAN_PORT_RANGE);
  if (range !== undefined && range.length >= 4) {
    info.portRange = { low: range.readUInt16BE(0), high: range.readUInt16BE(2) };
  }
  const set = <K extends keyof VxlanInfo>(key: K, value: VxlanInfo[K] | undefined) => {
    if (value !== undefined) info[key] = value;
  };
  set("learning", bool(IFLA_VXLAN_LEARNING));
  set("proxy", bool(IFLA_VXLAN_PROXY));
  set("l2miss", bool(IFLA_VXLAN_L2MISS));
  set("l3miss", bool(IFLA_VXLAN_L3MISS));
  set("udpCsum", bool(IFLA_VXLAN_UDP_CSUM));
  set("ttl", a.get(IFLA_VXLAN_TTL)?.[0]);
  set("tos", a.get(IFLA_VXLAN_TOS)?.[0]);
  const ageing = a.get(IFLA_VXLAN_AGEING);
  if (ageing !== undefined) info.ageing = readU32(ageing);
  info.gbp = a.has(IFLA_VXLAN_GBP);
  return info;
}

/** Decodes an RTM_NEWLINK/RTM_DELLINK message. */
export function decodeLink(message: NetlinkMessage): Link {
  const p = message.payload;
  requireHeader(p, 16, "link");
  const flags = readU32(p, 8);
  const a = attrMap(p, 16);
  const u32 = (type: number) => {
    const v = a.get(type);
    return v === undefined ? undefined : readU32(v);
  };
  let kind: string | undefined;
  let slaveKind: string | undefined;
  let vxlan: VxlanInfo | undefined;
  let iptun: IptunInfo | undefined;
  const linkinfo = a.get(IFLA_LINKINFO);
  if (linkinfo !== undefined) {
    const info = attrMap(linkinfo);
    const k = info.get(IFLA_INFO_KIND);
    if (k !== undefined) kind = attrString(k);
    const sk = info.get(IFLA_INFO_SLAVE_KIND);
    if (sk !== undefined) slaveKind = attrString(sk);
    const data = info.get(IFLA_INFO_DATA);
    if (kind === "vxlan" && data !== undefined) vxlan = decodeVxlan(data);
    if (kind === "ipip" && data !== undefined) iptun = decodeIptun(data);
  }
  const mac = a.get(IFLA_ADDRESS);
  const oper = a.get(IFLA_OPERSTATE)?.[0];
  const parent = a.has(IFLA_LINK) ? readI32(a.get(IFLA_LINK)!) : undefined;
  const master = u32(IFLA_MASTER);
  const index = readI32(p, 4);
  return {
    index,
    name: a.has(IFLA_IFNAME) ? attrString(a.get(IFLA_IFNAME)!) : "",
    kind,
    type: readU16(p, 2),
    mtu: u32(IFLA_MTU) ?? 0,
    flags,
    up: (flags & IFF_UP) !== 0,
    lowerUp: (flags & (IFF_LOWER_UP | IFF_RUNNING)) !== 0,
    operstate: oper === undefined ? "unknown" : (OPER_STATES[oper] ?? `state-${oper}`),
    mac: mac !== undefined && mac.length > 0 ? bytesToMac(mac) : undefined,
    masterIndex: master === 0 ? undefined : master,
    // Ordinary devices report themselves as their own parent.
    parentIndex: parent === 0 || parent === index ? undefined : parent,
    slaveKind,
    txqlen: u32(IFLA_TXQLEN),
    vxlan,
    ...(iptun ? { iptun } : {}),
  };
}
