// nlmsghdr framing: u32 len, u16 type, u16 flags, u32 seq, u32 pid; each message padded to 4 bytes.
import {
  type Attr,
  align4,
  attrMap,
  attrString,
  attrsSize,
  readI32,
  readU16,
  readU32,
  writeAttrs,
  writeU16,
  writeU32,
} from "./attributes.js";
import { NLM_F_ACK_TLVS, NLM_F_CAPPED, NLMSGERR_ATTR_MSG, NLMSGERR_ATTR_OFFS } from "./constants.js";

export const NLMSG_HDRLEN = 16;

export interface NetlinkMessage {
  type: number;
  flags: number;
  seq: number;
  pid: number;
  /** Everything after the header (family header + attributes); a view into the datagram. */
  payload: Buffer;
}

/**
 * Encodes one message: header, fixed family header (e.g. ifinfomsg), then attributes.
 * seq is usually left 0 here and stamped by the socket with `setSequence` when sent.
 */
export function encodeMessage(
  type: number,
  flags: number,
  familyHeader: Uint8Array,
  attrs: readonly Attr[] = [],
  seq = 0,
): Buffer {
  const headerEnd = NLMSG_HDRLEN + align4(familyHeader.length);
  const len = headerEnd + attrsSize(attrs);
  const buf = Buffer.alloc(len);
  writeU32(buf, len, 0);
  writeU16(buf, type, 4);
  writeU16(buf, flags, 6);
  writeU32(buf, seq, 8);
  buf.set(familyHeader, NLMSG_HDRLEN);
  writeAttrs(buf, attrs, headerEnd);
  return buf;
}

export function setSequence(message: Buffer, seq: number): void {
  writeU32(message, seq, 8);
}

export function setFlags(message: Buffer, flags: number): void {
  writeU16(message, flags, 6);
}

export function messageFlags(message: Uint8Array): number {
  return readU16(message, 6);
}

export function messageType(message: Uint8Array): number {
  return readU16(message, 4);
}

/** Splits a datagram into messages; a truncated trailing message is ignored. */
export function decodeMessages(datagram: Buffer): NetlinkMessage[] {
  const out: NetlinkMessage[] = [];
  let at = 0;
  while (at + NLMSG_HDRLEN <= datagram.length) {
    const len = readU32(datagram, at);
    if (len < NLMSG_HDRLEN || at + len > datagram.length) break;
    out.push({
      type: readU16(datagram, at + 4),
      flags: readU16(datagram, at + 6),
      seq: readU32(datagram, at + 8),
      pid: readU32(datagram, at + 12),
      payload: datagram.subarray(at + NLMSG_HDRLEN, at + len),
    });
    at += align4(len);
  }
  return out;
}

/** An NLMSG_ERROR (an ack when errno is 0) or the status carried by an NLMSG_DONE. */
export interface NetlinkStatus {
  /** Positive errno, 0 for success. */
  errno: number;
  /** The kernel's extended ack text (NLMSGERR_ATTR_MSG), when it sent one. */
  extAck?: string;
  /** Byte offset of the offending attribute in the request (NLMSGERR_ATTR_OFFS). */
  extAckOffset?: number;
  /** Header of the request being answered (errors only). */
  request?: { len: number; type: number; flags: number; seq: number; pid: number };
}

function readExtAck(status: NetlinkStatus, payload: Buffer, offset: number): void {
  const attrs = attrMap(payload, offset);
  const msg = attrs.get(NLMSGERR_ATTR_MSG);
  if (msg !== undefined) status.extAck = attrString(msg);
  const offs = attrs.get(NLMSGERR_ATTR_OFFS);
  if (offs !== undefined && offs.length >= 4) status.extAckOffset = readU32(offs);
}

/** struct nlmsgerr { int error; struct nlmsghdr msg; } then, with NLM_F_ACK_TLVS, ext-ack attributes. */
export function decodeError(message: NetlinkMessage): NetlinkStatus {
  const p = message.payload;
  if (p.length < 4) return { errno: 0 };
  const status: NetlinkStatus = { errno: -readI32(p, 0) || 0 };
  if (p.length >= 4 + NLMSG_HDRLEN) {
    const len = readU32(p, 4);
    status.request = {
      len,
      type: readU16(p, 8),
      flags: readU16(p, 10),
      seq: readU32(p, 12),
      pid: readU32(p, 16),
    };
    if (message.flags & NLM_F_ACK_TLVS) {
      // Without NLM_F_CAPPED the whole request is echoed back before the TLVs (a length past the end
      // leaves no room for any).
      const echoed = message.flags & NLM_F_CAPPED ? NLMSG_HDRLEN : len;
      if (4 + echoed <= p.length) readExtAck(status, p, 4 + align4(echoed));
    }
  }
  return status;
}

/** NLMSG_DONE carries an int status (dump errors) and, with NLM_F_ACK_TLVS, ext-ack attributes. */
export function decodeDone(message: NetlinkMessage): NetlinkStatus {
  const p = message.payload;
  if (p.length < 4) return { errno: 0 };
  const status: NetlinkStatus = { errno: -readI32(p, 0) || 0 };
  if (message.flags & NLM_F_ACK_TLVS) readExtAck(status, p, 4);
  return status;
}
