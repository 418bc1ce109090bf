// IP-in-IP tunnel devices (kind "ipip"): the IFLA_IPTUN_* attributes inside IFLA_INFO_DATA.
// Encoded in the order and with the full set iproute2 sends (test/fixtures/ipip-link-add.hex), so a
// request from weft and one from `ip link add ... type ipip` are the same bytes apart from seq and pid.
import { bytesToIp, ipToBytes } from "./addr-bytes.js";
import { type Attr, attrMap, be16Attr, bytesAttr, readU32, u8Attr, u16Attr, u32Attr } from "./attributes.js";

// include/uapi/linux/if_tunnel.h
export const IFLA_IPTUN_LINK = 1;
export const IFLA_IPTUN_LOCAL = 2;
export const IFLA_IPTUN_REMOTE = 3;
export const IFLA_IPTUN_TTL = 4;
export const IFLA_IPTUN_TOS = 5;
export const IFLA_IPTUN_PMTUDISC = 10;
export const IFLA_IPTUN_PROTO = 9;
export const IFLA_IPTUN_ENCAP_TYPE = 15;
export const IFLA_IPTUN_ENCAP_FLAGS = 16;
export const IFLA_IPTUN_ENCAP_SPORT = 17;
export const IFLA_IPTUN_ENCAP_DPORT = 18;
export const IFLA_IPTUN_FWMARK = 20;

export interface IptunInfo {
  /** Source address of the outer header; undefined = any. */
  local?: string;
  /** Fixed remote; undefined = any (flannel's device: routes choose the peer). */
  remote?: string;
  /** Underlay device ifindex; 0 = none. */
  link?: number;
  /** 0 = inherit the inner packet's TTL. */
  ttl: number;
  tos: number;
  /** Path MTU discovery (DF on the outer header). flannel's device has it off. */
  pmtudisc: boolean;
}

export function iptunAttrs(t: IptunInfo): Attr[] {
  const attrs: Attr[] = [u8Attr(IFLA_IPTUN_PROTO, 0)];
  if (t.local !== undefined) attrs.push(bytesAttr(IFLA_IPTUN_LOCAL, ipToBytes(t.local)));
  if (t.remote !== undefined) attrs.push(bytesAttr(IFLA_IPTUN_REMOTE, ipToBytes(t.remote)));
  attrs.push(
    u8Attr(IFLA_IPTUN_PMTUDISC, t.pmtudisc ? 1 : 0),
    u8Attr(IFLA_IPTUN_TOS, t.tos),
    u8Attr(IFLA_IPTUN_TTL, t.ttl),
    u32Attr(IFLA_IPTUN_LINK, t.link ?? 0),
    u32Attr(IFLA_IPTUN_FWMARK, 0),
    // No foo-over-udp encapsulation.
    u16Attr(IFLA_IPTUN_ENCAP_TYPE, 0),
    u16Attr(IFLA_IPTUN_ENCAP_FLAGS, 0),
    be16Attr(IFLA_IPTUN_ENCAP_SPORT, 0),
    be16Attr(IFLA_IPTUN_ENCAP_DPORT, 0),
  );
  return attrs;
}

export function decodeIptun(data: Buffer): IptunInfo {
  const a = attrMap(data);
  const address = (type: number) => {
    const v = a.get(type);
    // The kernel reports 0.0.0.0 for "any".
    if (v === undefined || v.length !== 4 || readU32(v) === 0) return undefined;
    return bytesToIp(v);
  };
  const info: IptunInfo = {
    ttl: a.get(IFLA_IPTUN_TTL)?.[0] ?? 0,
    tos: a.get(IFLA_IPTUN_TOS)?.[0] ?? 0,
    pmtudisc: (a.get(IFLA_IPTUN_PMTUDISC)?.[0] ?? 1) !== 0,
  };
  const local = address(IFLA_IPTUN_LOCAL);
  if (local !== undefined) info.local = local;
  const remote = address(IFLA_IPTUN_REMOTE);
  if (remote !== undefined) info.remote = remote;
  const link = a.get(IFLA_IPTUN_LINK);
  if (link !== undefined && readU32(link) !== 0) info.link = readU32(link);
  return info;
}
