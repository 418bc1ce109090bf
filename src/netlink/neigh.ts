// Neighbours (ARP/NDP entries): RTM_NEWNEIGH/DELNEIGH/GETNEIGH with struct ndmsg.
//   struct ndmsg { u8 family; u8 pad1; u16 pad2; i32 ifindex; u16 state; u8 flags; u8 type; }  (12 bytes)
import {
  addressFamily,
  bytesToIp,
  bytesToMac,
  type IpFamily,
  ipFamily,
  ipFamilyOf,
  ipToBytes,
  macToBytes,
} from "./addr-bytes.js";
import {
  type Attr,
  attrMap,
  bytesAttr,
  readI32,
  readU16,
  requireHeader,
  u32Attr,
  writeI32,
  writeU16,
} from "./attributes.js";
import {
  NDA_DST,
  NDA_IFINDEX,
  NDA_LLADDR,
  NLM_F_CREATE,
  NLM_F_EXCL,
  NLM_F_REPLACE,
  NUD_PERMANENT,
  RTM_DELNEIGH,
  RTM_GETNEIGH,
  RTM_NEWNEIGH,
} from "./constants.js";
import { encodeMessage, type NetlinkMessage } from "./message.js";

export interface Neigh {
  family: IpFamily;
  index: number;
  ip: string;
  mac: string | undefined;
  /** NUD_* state bits (0x80 permanent, 0x02 reachable, ...). */
  state: number;
  /** NTF_* flags. */
  flags: number;
  type: number;
}

export interface NeighSpec {
  index: number;
  ip: string;
  mac: string;
  /** Default NUD_PERMANENT. */
  state?: number;
  flags?: number;
}

export function encodeNdmsg(family: number, index: number, state = 0, flags = 0, type = 0): Buffer {
  const b = Buffer.alloc(12);
  b[0] = family;
  writeI32(b, index, 4);
  writeU16(b, state, 8);
  b[10] = flags;
  b[11] = type;
  return b;
}

function neighMessage(
  type: number,
  flags: number,
  spec: { index: number; ip: string; mac?: string; state?: number; flags?: number },
): Buffer {
  const attrs: Attr[] = [bytesAttr(NDA_DST, ipToBytes(spec.ip))];
  if (spec.mac !== undefined) attrs.push(bytesAttr(NDA_LLADDR, macToBytes(spec.mac)));
  const header = encodeNdmsg(addressFamily(ipFamily(spec.ip)), spec.index, spec.state ?? 0, spec.flags ?? 0);
  return encodeMessage(type, flags, header, attrs);
}

export function encodeNeighReplace(spec: NeighSpec): Buffer {
  return neighMessage(RTM_NEWNEIGH, NLM_F_CREATE | NLM_F_REPLACE, {
    ...spec,
    state: spec.state ?? NUD_PERMANENT,
  });
}

export function encodeNeighAdd(spec: NeighSpec): Buffer {
  return neighMessage(RTM_NEWNEIGH, NLM_F_CREATE | NLM_F_EXCL, {
    ...spec,
    state: spec.state ?? NUD_PERMANENT,
  });
}

export function encodeNeighDel(spec: { index: number; ip: string }): Buffer {
  return neighMessage(RTM_DELNEIGH, 0, { index: spec.index, ip: spec.ip });
}

/** Dump of one family, optionally for one interface (NDA_IFINDEX: strict dumps reject ndm_ifindex). */
export function encodeNeighDump(family: IpFamily, index = 0): Buffer {
  const attrs = index > 0 ? [u32Attr(NDA_IFINDEX, index)] : [];
  return encodeMessage(RTM_GETNEIGH, 0, encodeNdmsg(addressFamily(family), 0), attrs);
}

/** Decodes RTM_NEWNEIGH/RTM_DELNEIGH of IPv4/IPv6 (bridge FDB entries are in fdb.ts). */
export function decodeNeigh(message: NetlinkMessage): Neigh | undefined {
  const p = message.payload;
  const family = ipFamilyOf(p[0]!);
  if (family === undefined) return undefined;
  requireHeader(p, 12, "neighbour");
  const a = attrMap(p, 12);
  const dst = a.get(NDA_DST);
  const mac = a.get(NDA_LLADDR);
  return {
    family,
    index: readI32(p, 4),
    ip: dst !== undefined ? bytesToIp(dst) : "",
    mac: mac !== undefined && mac.length > 0 ? bytesToMac(mac) : undefined,
    state: readU16(p, 8),
    flags: p[10]!,
    type: p[11]!,
  };
}
