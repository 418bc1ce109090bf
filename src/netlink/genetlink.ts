/**
 * Generic netlink (NETLINK_GENERIC): the genlmsghdr after the netlink header, and the controller
 * "nlctrl" that maps a family name ("wireguard") to the message type its requests use.
 * Constants from linux/include/uapi/linux/genetlink.h.
 */
import { attrMap, readU16, stringAttr } from "./attributes.js";
import { NLM_F_ACK, NLM_F_REQUEST } from "./constants.js";
import { encodeMessage, type NetlinkMessage } from "./message.js";

export const NETLINK_GENERIC = 16;
/** The controller's own type: NLMSG_MIN_TYPE. */
export const GENL_ID_CTRL = 0x10;
export const CTRL_CMD_GETFAMILY = 3;
export const CTRL_ATTR_FAMILY_ID = 1;
export const CTRL_ATTR_FAMILY_NAME = 2;
/** The controller's version, as wireguard-tools' mnlg and libnl send it. */
export const CTRL_VERSION = 1;
export const GENL_HDRLEN = 4;

/** genlmsghdr: u8 cmd, u8 version, u16 reserved. */
export function genlHeader(cmd: number, version: number): Buffer {
  return Buffer.from([cmd, version, 0, 0]);
}

/** CTRL_CMD_GETFAMILY for a family name. */
export function encodeGetFamily(name: string): Buffer {
  return encodeMessage(
    GENL_ID_CTRL,
    NLM_F_REQUEST | NLM_F_ACK,
    genlHeader(CTRL_CMD_GETFAMILY, CTRL_VERSION),
    [stringAttr(CTRL_ATTR_FAMILY_NAME, name)],
  );
}

/** The family id from the controller's answer (CTRL_CMD_NEWFAMILY), or undefined if it has none. */
export function decodeFamilyId(message: NetlinkMessage): number | undefined {
  const id = attrMap(message.payload, GENL_HDRLEN).get(CTRL_ATTR_FAMILY_ID);
  return id && id.length >= 2 ? readU16(id) : undefined;
}
