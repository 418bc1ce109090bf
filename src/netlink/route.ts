// Routes: RTM_NEWROUTE/DELROUTE/GETROUTE with struct rtmsg.
//   struct rtmsg { u8 family, dst_len, src_len, tos, table, protocol, scope, type; u32 flags; }  (12 bytes)
import { addressFamily, bytesToIp, type IpFamily, ipFamily, ipFamilyOf, ipToBytes } from "./addr-bytes.js";
import { type Attr, attrMap, bytesAttr, readU32, requireHeader, u32Attr, writeU32 } from "./attributes.js";
import {
  NLM_F_CREATE,
  NLM_F_EXCL,
  NLM_F_REPLACE,
  RT_SCOPE_LINK,
  RT_SCOPE_NOWHERE,
  RT_SCOPE_UNIVERSE,
  RT_TABLE_MAIN,
  RT_TABLE_UNSPEC,
  RTA_DST,
  RTA_GATEWAY,
  RTA_OIF,
  RTA_PREFSRC,
  RTA_PRIORITY,
  RTA_TABLE,
  RTM_DELROUTE,
  RTM_GETROUTE,
  RTM_NEWROUTE,
  RTN_UNICAST,
  RTN_UNSPEC,
  RTNH_F_ONLINK,
  RTPROT_BOOT,
  RTPROT_UNSPEC,
} from "./constants.js";
import { encodeMessage, type NetlinkMessage } from "./message.js";

export interface Route {
  family: IpFamily;
  /** Destination in CIDR form: "10.244.1.0/24", "0.0.0.0/0", "fd00::/64". */
  dst: string;
  gateway: string | undefined;
  /** Output interface index. */
  oif: number | undefined;
  table: number;
  /** RTPROT_* (2 kernel, 3 boot, 4 static, ...). */
  protocol: number;
  /** RT_SCOPE_* */
  scope: number;
  /** RTN_* (1 unicast, 2 local, 6 blackhole, ...). */
  type: number;
  /** RTNH_F_* / RTM_F_* flags. */
  flags: number;
  onlink: boolean;
  priority: number | undefined;
  prefsrc: string | undefined;
}

export interface RouteSpec {
  /** "10.244.1.0/24", or a bare address for a host route. */
  dst: string;
  /** The next hop ("via"). */
  gateway?: string;
  /** Output interface index ("dev"). */
  oif?: number;
  /** Trust the gateway to be reachable on oif even without a matching prefix (flannel's vxlan). */
  onlink?: boolean;
  /** Default: link scope for device routes without a gateway, otherwise universe. */
  scope?: number;
  /** Default RTPROT_BOOT, like `ip route`. */
  protocol?: number;
  /** Metric. */
  priority?: number;
  /** Default main (254). */
  table?: number;
  /** Default RTN_UNICAST. */
  type?: number;
  prefsrc?: string;
}

/** Splits "a/len" into bytes and prefix length; a bare address is a host route. */
export function parseCidr(cidr: string): { family: IpFamily; bytes: Buffer; len: number } {
  const slash = cidr.indexOf("/");
  const ip = slash < 0 ? cidr : cidr.slice(0, slash);
  const family = ipFamily(ip);
  const max = family === 4 ? 32 : 128;
  const len = slash < 0 ? max : Number(cidr.slice(slash + 1));
  if (!Number.isInteger(len) || len < 0 || len > max) throw new TypeError(`bad prefix length in ${cidr}`);
  return { family, bytes: ipToBytes(ip), len };
}

export function encodeRtmsg(fields: {
  family: number;
  dstLen?: number;
  srcLen?: number;
  tos?: number;
  table?: number;
  protocol?: number;
  scope?: number;
  type?: number;
  flags?: number;
}): Buffer {
  const b = Buffer.alloc(12);
  b[0] = fields.family;
  b[1] = fields.dstLen ?? 0;
  b[2] = fields.srcLen ?? 0;
  b[3] = fields.tos ?? 0;
  b[4] = fields.table ?? 0;
  b[5] = fields.protocol ?? 0;
  b[6] = fields.scope ?? 0;
  b[7] = fields.type ?? 0;
  writeU32(b, fields.flags ?? 0, 8);
  return b;
}

// Tables above 255 only fit in RTA_TABLE; the header then says RT_TABLE_UNSPEC.
const headerTable = (table: number) => (table > 255 ? RT_TABLE_UNSPEC : table);

function routeAttrs(spec: RouteSpec, dst: { bytes: Buffer; len: number }, table: number): Attr[] {
  const attrs: Attr[] = [];
  // A default route (/0) carries no RTA_DST, like iproute2 sends it.
  if (dst.len > 0) attrs.push(bytesAttr(RTA_DST, dst.bytes));
  if (spec.gateway !== undefined) attrs.push(bytesAttr(RTA_GATEWAY, ipToBytes(spec.gateway)));
  if (spec.oif !== undefined) attrs.push(u32Attr(RTA_OIF, spec.oif));
  if (spec.priority !== undefined) attrs.push(u32Attr(RTA_PRIORITY, spec.priority));
  if (spec.prefsrc !== undefined) attrs.push(bytesAttr(RTA_PREFSRC, ipToBytes(spec.prefsrc)));
  attrs.push(u32Attr(RTA_TABLE, table));
  return attrs;
}

function newRoute(flags: number, spec: RouteSpec): Buffer {
  const dst = parseCidr(spec.dst);
  const table = spec.table ?? RT_TABLE_MAIN;
  const deviceRoute = spec.gateway === undefined && spec.oif !== undefined;
  const header = encodeRtmsg({
    family: addressFamily(dst.family),
    dstLen: dst.len,
    table: headerTable(table),
    protocol: spec.protocol ?? RTPROT_BOOT,
    scope: spec.scope ?? (deviceRoute ? RT_SCOPE_LINK : RT_SCOPE_UNIVERSE),
    type: spec.type ?? RTN_UNICAST,
    flags: spec.onlink ? RTNH_F_ONLINK : 0,
  });
  return encodeMessage(RTM_NEWROUTE, flags, header, routeAttrs(spec, dst, table));
}

export function encodeRouteAdd(spec: RouteSpec): Buffer {
  return newRoute(NLM_F_CREATE | NLM_F_EXCL, spec);
}

export function encodeRouteReplace(spec: RouteSpec): Buffer {
  return newRoute(NLM_F_CREATE | NLM_F_REPLACE, spec);
}

/**
 * Deletes the first route matching what is given: unset type/protocol/scope match anything, so
 * { dst } alone deletes that prefix from the table whatever its next hop.
 */
export function encodeRouteDel(spec: RouteSpec): Buffer {
  const dst = parseCidr(spec.dst);
  const table = spec.table ?? RT_TABLE_MAIN;
  const header = encodeRtmsg({
    family: addressFamily(dst.family),
    dstLen: dst.len,
    table: headerTable(table),
    protocol: spec.protocol ?? RTPROT_UNSPEC,
    scope: spec.scope ?? RT_SCOPE_NOWHERE,
    type: spec.type ?? RTN_UNSPEC,
  });
  return encodeMessage(RTM_DELROUTE, 0, header, routeAttrs(spec, dst, table));
}

/** A dump of one family; with strict checking the kernel filters by table itself. */
export function encodeRouteDump(family: IpFamily, table = RT_TABLE_MAIN): Buffer {
  const attrs = table === RT_TABLE_UNSPEC ? [] : [u32Attr(RTA_TABLE, table)];
  return encodeMessage(
    RTM_GETROUTE,
    0,
    encodeRtmsg({ family: addressFamily(family), table: headerTable(table) }),
    attrs,
  );
}

/** Asks the kernel which route it would use for an address (like `ip route get`). */
export function encodeRouteGet(address: string): Buffer {
  const family = ipFamily(address);
  const header = encodeRtmsg({ family: addressFamily(family), dstLen: family === 4 ? 32 : 128 });
  return encodeMessage(RTM_GETROUTE, 0, header, [bytesAttr(RTA_DST, ipToBytes(address))]);
}

/** Decodes RTM_NEWROUTE/RTM_DELROUTE; undefined for families other than IPv4/IPv6. */
export function decodeRoute(message: NetlinkMessage): Route | undefined {
  const p = message.payload;
  const family = ipFamilyOf(p[0]!);
  if (family === undefined) return undefined;
  requireHeader(p, 12, "route");
  const a = attrMap(p, 12);
  const dstLen = p[1]!;
  const dst = a.get(RTA_DST);
  const gateway = a.get(RTA_GATEWAY);
  const oif = a.get(RTA_OIF);
  const priority = a.get(RTA_PRIORITY);
  const prefsrc = a.get(RTA_PREFSRC);
  const table = a.get(RTA_TABLE);
  const flags = readU32(p, 8);
  const zero = family === 4 ? "0.0.0.0" : "::";
  return {
    family,
    dst: `${dst !== undefined ? bytesToIp(dst) : zero}/${dstLen}`,
    gateway: gateway !== undefined ? bytesToIp(gateway) : undefined,
    oif: oif !== undefined ? readU32(oif) : undefined,
    table: table !== undefined ? readU32(table) : p[4]!,
    protocol: p[5]!,
    scope: p[6]!,
    type: p[7]!,
    flags,
    onlink: (flags & RTNH_F_ONLINK) !== 0,
    priority: priority !== undefined ? readU32(priority) : undefined,
    prefsrc: prefsrc !== undefined ? bytesToIp(prefsrc) : undefined,
  };
}
