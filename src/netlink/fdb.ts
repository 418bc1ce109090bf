// Bridge forwarding database entries, here on vxlan devices: AF_BRIDGE neighbour messages whose
// NDA_DST is the remote VTEP's underlay address. With NTF_SELF the vxlan device owns the entry.
import { bytesToIp, bytesToMac, ipToBytes, macToBytes } from "./addr-bytes.js";
import {
  type Attr,
  attrMap,
  be16Attr,
  bytesAttr,
  readBE16,
  readI32,
  readU16,
  readU32,
  requireHeader,
  u32Attr,
} from "./attributes.js";
import {
  AF_BRIDGE,
  NDA_DST,
  NDA_IFINDEX,
  NDA_LLADDR,
  NDA_MASTER,
  NDA_PORT,
  NDA_VLAN,
  NDA_VNI,
  NLM_F_APPEND,
  NLM_F_CREATE,
  NLM_F_EXCL,
  NLM_F_REPLACE,
  NTF_SELF,
  NUD_PERMANENT,
  RTM_DELNEIGH,
  RTM_GETNEIGH,
  RTM_NEWNEIGH,
} from "./constants.js";
import { encodeMessage, type NetlinkMessage } from "./message.js";
import { encodeNdmsg } from "./neigh.js";

export interface FdbEntry {
  /** The device the entry belongs to (the vxlan device). */
  index: number;
  mac: string;
  /** Remote VTEP address (IPv4 or IPv6), if any. */
  dst: string | undefined;
  vni: number | undefined;
  port: number | undefined;
  vlan: number | undefined;
  /** Bridge the device is enslaved to, for entries reported by the bridge (NTF_MASTER). */
  masterIndex: number | undefined;
  /** NUD_* state bits. */
  state: number;
  /** NTF_* flags. */
  flags: number;
}

export interface FdbSpec {
  index: number;
  mac: string;
  dst?: string;
  vni?: number;
  port?: number;
  /** Default NUD_PERMANENT. */
  state?: number;
  /** Default NTF_SELF. */
  flags?: number;
}

function fdbMessage(type: number, flags: number, spec: FdbSpec): Buffer {
  const attrs: Attr[] = [bytesAttr(NDA_LLADDR, macToBytes(spec.mac))];
  if (spec.dst !== undefined) attrs.push(bytesAttr(NDA_DST, ipToBytes(spec.dst)));
  if (spec.port !== undefined) attrs.push(be16Attr(NDA_PORT, spec.port));
  if (spec.vni !== undefined) attrs.push(u32Attr(NDA_VNI, spec.vni));
  const header = encodeNdmsg(AF_BRIDGE, spec.index, spec.state ?? NUD_PERMANENT, spec.flags ?? NTF_SELF);
  return encodeMessage(type, flags, header, attrs);
}

/** Adds one more remote for the MAC (`bridge fdb append`): the all-zero MAC floods to every one. */
export function encodeFdbAppend(spec: FdbSpec): Buffer {
  return fdbMessage(RTM_NEWNEIGH, NLM_F_CREATE | NLM_F_APPEND, spec);
}

/** Sets the MAC's single remote (`bridge fdb replace`). */
export function encodeFdbReplace(spec: FdbSpec): Buffer {
  return fdbMessage(RTM_NEWNEIGH, NLM_F_CREATE | NLM_F_REPLACE, spec);
}

export function encodeFdbAdd(spec: FdbSpec): Buffer {
  return fdbMessage(RTM_NEWNEIGH, NLM_F_CREATE | NLM_F_EXCL, spec);
}

/** Deletes the entry; with dst, only that remote of it. */
export function encodeFdbDel(spec: FdbSpec): Buffer {
  return fdbMessage(RTM_DELNEIGH, 0, { ...spec, state: spec.state ?? 0 });
}

/** Dump of all bridge FDB entries (filter by device after decoding, see RtNetlink.fdbList). */
export function encodeFdbDump(index = 0): Buffer {
  const attrs = index > 0 ? [u32Attr(NDA_IFINDEX, index)] : [];
  return encodeMessage(RTM_GETNEIGH, 0, encodeNdmsg(AF_BRIDGE, 0), attrs);
}

/** Decodes an AF_BRIDGE RTM_NEWNEIGH/RTM_DELNEIGH; undefined for other families. */
export function decodeFdb(message: NetlinkMessage): FdbEntry | undefined {
  const p = message.payload;
  if (p[0] !== AF_BRIDGE) return undefined;
  requireHeader(p, 12, "fdb");
  const a = attrMap(p, 12);
  const mac = a.get(NDA_LLADDR);
  const dst = a.get(NDA_DST);
  const port = a.get(NDA_PORT);
  const vni = a.get(NDA_VNI);
  const vlan = a.get(NDA_VLAN);
  const master = a.get(NDA_MASTER);
  return {
    index: readI32(p, 4),
    mac: mac !== undefined ? bytesToMac(mac) : "",
    dst: dst !== undefined ? bytesToIp(dst) : undefined,
    vni: vni !== undefined ? readU32(vni) : undefined,
    port: port !== undefined ? readBE16(port) : undefined,
    vlan: vlan !== undefined ? readU16(vlan) : undefined,
    masterIndex: master !== undefined ? readU32(master) : undefined,
    state: readU16(p, 8),
    flags: p[10]!,
  };
}
