// Interface addresses: RTM_NEWADDR/DELADDR/GETADDR with struct ifaddrmsg.
//   struct ifaddrmsg { u8 family; u8 prefixlen; u8 flags; u8 scope; u32 index; }  (8 bytes)
import { addressFamily, bytesToIp, type IpFamily, ipFamily, ipFamilyOf, ipToBytes } from "./addr-bytes.js";
import {
  type Attr,
  attrMap,
  attrString,
  bytesAttr,
  readU32,
  requireHeader,
  stringAttr,
  u32Attr,
  writeU32,
} from "./attributes.js";
import {
  AF_UNSPEC,
  IFA_ADDRESS,
  IFA_BROADCAST,
  IFA_FLAGS,
  IFA_LABEL,
  IFA_LOCAL,
  NLM_F_CREATE,
  NLM_F_EXCL,
  NLM_F_REPLACE,
  RT_SCOPE_UNIVERSE,
  RTM_DELADDR,
  RTM_GETADDR,
  RTM_NEWADDR,
} from "./constants.js";
import { encodeMessage, type NetlinkMessage } from "./message.js";

export interface Address {
  family: IpFamily;
  index: number;
  /** The interface's own address (IFA_LOCAL, else IFA_ADDRESS). */
  address: string;
  prefixlen: number;
  /** RT_SCOPE_* (0 universe/global, 253 link, 254 host). */
  scope: number;
  /** IFA_F_* flags (permanent, secondary, nodad, ...). */
  flags: number;
  /** Point-to-point peer, when IFA_ADDRESS differs from IFA_LOCAL. */
  peer: string | undefined;
  broadcast: string | undefined;
  label: string | undefined;
}

export interface AddressSpec {
  index: number;
  address: string;
  prefixlen: number;
  scope?: number;
  /** IFA_F_* flags, e.g. IFA_F_NODAD for IPv6 addresses usable at once. */
  flags?: number;
  peer?: string;
  broadcast?: string;
  label?: string;
}

export function encodeIfaddrmsg(
  family: number,
  prefixlen: number,
  flags: number,
  scope: number,
  index: number,
): Buffer {
  const b = Buffer.alloc(8);
  b[0] = family;
  b[1] = prefixlen;
  b[2] = flags & 0xff;
  b[3] = scope;
  writeU32(b, index, 4);
  return b;
}

function addressMessage(type: number, flags: number, spec: AddressSpec): Buffer {
  const family = ipFamily(spec.address);
  const local = ipToBytes(spec.address);
  const attrs: Attr[] = [
    bytesAttr(IFA_LOCAL, local),
    bytesAttr(IFA_ADDRESS, spec.peer !== undefined ? ipToBytes(spec.peer) : local),
  ];
  if (spec.broadcast !== undefined) attrs.push(bytesAttr(IFA_BROADCAST, ipToBytes(spec.broadcast)));
  if (spec.label !== undefined) attrs.push(stringAttr(IFA_LABEL, spec.label));
  // Flags above 0xff only fit in IFA_FLAGS.
  if (spec.flags !== undefined && spec.flags > 0xff) attrs.push(u32Attr(IFA_FLAGS, spec.flags));
  const header = encodeIfaddrmsg(
    addressFamily(family),
    spec.prefixlen,
    spec.flags ?? 0,
    spec.scope ?? RT_SCOPE_UNIVERSE,
    spec.index,
  );
  return encodeMessage(type, flags, header, attrs);
}

export function encodeAddrAdd(spec: AddressSpec): Buffer {
  return addressMessage(RTM_NEWADDR, NLM_F_CREATE | NLM_F_EXCL, spec);
}

export function encodeAddrReplace(spec: AddressSpec): Buffer {
  return addressMessage(RTM_NEWADDR, NLM_F_CREATE | NLM_F_REPLACE, spec);
}

export function encodeAddrDel(spec: AddressSpec): Buffer {
  return addressMessage(RTM_DELADDR, 0, spec);
}

/** Dump of one family (or both with 0), optionally of one interface. */
export function encodeAddrDump(family: IpFamily | 0 = 0, index = 0): Buffer {
  const af = family === 0 ? AF_UNSPEC : addressFamily(family);
  return encodeMessage(RTM_GETADDR, 0, encodeIfaddrmsg(af, 0, 0, 0, index));
}

/** Decodes RTM_NEWADDR/RTM_DELADDR; undefined for families other than IPv4/IPv6. */
export function decodeAddress(message: NetlinkMessage): Address | undefined {
  const p = message.payload;
  const family = ipFamilyOf(p[0]!);
  if (family === undefined) return undefined;
  requireHeader(p, 8, "address");
  const a = attrMap(p, 8);
  const local = a.get(IFA_LOCAL);
  const address = a.get(IFA_ADDRESS);
  const own = local ?? address;
  const broadcast = a.get(IFA_BROADCAST);
  const label = a.get(IFA_LABEL);
  const extFlags = a.get(IFA_FLAGS);
  return {
    family,
    index: readU32(p, 4),
    address: own !== undefined ? bytesToIp(own) : "",
    prefixlen: p[1]!,
    scope: p[3]!,
    flags: extFlags !== undefined ? readU32(extFlags) : p[2]!,
    peer:
      local !== undefined && address !== undefined && !local.equals(address) ? bytesToIp(address) : undefined,
    broadcast: broadcast !== undefined ? bytesToIp(broadcast) : undefined,
    label: label !== undefined ? attrString(label) : undefined,
  };
}
