// rtattr/nlattr TLVs: u16 length (header + value, unpadded), u16 type, value, padding to 4 bytes.
import { endianness } from "node:os";
import { NLA_TYPE_MASK } from "./constants.js";
import { NetlinkDecodeError } from "./errors.js";

/** One attribute to encode: raw bytes, or nested attributes. */
export interface Attr {
  type: number;
  value: Uint8Array | Attr[];
}

export const ATTR_HEADER_SIZE = 4;

// Netlink integers are in host byte order; only ports and the like are big-endian.
const hostLE = endianness() === "LE";

export const align4 = (n: number): number => (n + 3) & ~3;

export function writeU16(buf: Buffer, value: number, offset: number): void {
  if (hostLE) buf.writeUInt16LE(value, offset);
  else buf.writeUInt16BE(value, offset);
}
export function writeU32(buf: Buffer, value: number, offset: number): void {
  if (hostLE) buf.writeUInt32LE(value >>> 0, offset);
  else buf.writeUInt32BE(value >>> 0, offset);
}
export function writeI32(buf: Buffer, value: number, offset: number): void {
  if (hostLE) buf.writeInt32LE(value, offset);
  else buf.writeInt32BE(value, offset);
}
/** Reads check their bounds themselves, so a short message is a NetlinkDecodeError, not a RangeError. */
function need(buf: Uint8Array, offset: number, size: number): Buffer {
  if (offset < 0 || offset + size > buf.length) {
    throw new NetlinkDecodeError(
      `a ${size}-byte field at offset ${offset} is past the end (${buf.length} bytes)`,
    );
  }
  return buf as Buffer;
}
export function readU16(buf: Uint8Array, offset = 0): number {
  const b = need(buf, offset, 2);
  return hostLE ? b.readUInt16LE(offset) : b.readUInt16BE(offset);
}
export function readU32(buf: Uint8Array, offset = 0): number {
  const b = need(buf, offset, 4);
  return hostLE ? b.readUInt32LE(offset) : b.readUInt32BE(offset);
}
export function readI32(buf: Uint8Array, offset = 0): number {
  const b = need(buf, offset, 4);
  return hostLE ? b.readInt32LE(offset) : b.readInt32BE(offset);
}
/** Checks a message's fixed family header (ifinfomsg, rtmsg...) is all there before it is read. */
export function requireHeader(payload: Uint8Array, size: number, what: string): void {
  if (payload.length < size) {
    throw new NetlinkDecodeError(
      `${what} message of ${payload.length} bytes is shorter than its ${size}-byte header`,
    );
  }
}
/** A big-endian u16 (ports). */
export function readBE16(buf: Uint8Array, offset = 0): number {
  return need(buf, offset, 2).readUInt16BE(offset);
}

// Constructors for the attribute value types the kernel uses.
export function bytesAttr(type: number, value: Uint8Array): Attr {
  return { type, value };
}
export function flagAttr(type: number): Attr {
  return { type, value: Buffer.alloc(0) };
}
export function u8Attr(type: number, value: number): Attr {
  return { type, value: Buffer.from([value & 0xff]) };
}
export function u16Attr(type: number, value: number): Attr {
  const b = Buffer.alloc(2);
  writeU16(b, value, 0);
  return { type, value: b };
}
/** A big-endian u16 (ports). */
export function be16Attr(type: number, value: number): Attr {
  const b = Buffer.alloc(2);
  b.writeUInt16BE(value, 0);
  return { type, value: b };
}
export function u32Attr(type: number, value: number): Attr {
  const b = Buffer.alloc(4);
  writeU32(b, value, 0);
  return { type, value: b };
}
export function i32Attr(type: number, value: number): Attr {
  const b = Buffer.alloc(4);
  writeI32(b, value, 0);
  return { type, value: b };
}
/** A NUL-terminated string, as the kernel's NLA_STRING/NLA_NUL_STRING policies expect. */
export function stringAttr(type: number, value: string): Attr {
  return { type, value: Buffer.from(`${value}\0`, "utf8") };
}
/**
 * A nest. NLA_F_NESTED is not set by default, like iproute2, because some older kernel policies
 * reject it; pass `type | NLA_F_NESTED` where a strict policy demands it.
 */
export function nestAttr(type: number, children: Attr[]): Attr {
  return { type, value: children };
}

/** Bytes the attribute takes including its trailing padding. */
export function attrSize(attr: Attr): number {
  return align4(ATTR_HEADER_SIZE + valueSize(attr));
}

function valueSize(attr: Attr): number {
  if (attr.value instanceof Uint8Array) return attr.value.length;
  let size = 0;
  for (const child of attr.value) size += attrSize(child);
  return size;
}

export function attrsSize(attrs: readonly Attr[]): number {
  let size = 0;
  for (const attr of attrs) size += attrSize(attr);
  return size;
}

/** Writes attributes at `offset` of a zero-filled buffer; returns the offset after them. */
export function writeAttrs(buf: Buffer, attrs: readonly Attr[], offset: number): number {
  let at = offset;
  for (const attr of attrs) {
    const len = ATTR_HEADER_SIZE + valueSize(attr);
    if (len > 0xffff) throw new RangeError(`netlink attribute ${attr.type} is too long (${len} bytes)`);
    writeU16(buf, len, at);
    writeU16(buf, attr.type, at + 2);
    if (attr.value instanceof Uint8Array) buf.set(attr.value, at + ATTR_HEADER_SIZE);
    else writeAttrs(buf, attr.value, at + ATTR_HEADER_SIZE);
    at += align4(len);
  }
  return at;
}

export function encodeAttrs(attrs: readonly Attr[]): Buffer {
  const buf = Buffer.alloc(attrsSize(attrs));
  writeAttrs(buf, attrs, 0);
  return buf;
}

/** A decoded attribute; `type` has the NESTED/NET_BYTEORDER bits removed, `value` is a view. */
export interface RawAttr {
  type: number;
  value: Buffer;
}

/** Walks a TLV area, stopping at a truncated or malformed tail rather than reading past it. */
export function decodeAttrs(buf: Uint8Array, offset = 0, end = buf.length): RawAttr[] {
  const b = Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength);
  const out: RawAttr[] = [];
  let at = offset;
  while (at + ATTR_HEADER_SIZE <= end) {
    const len = readU16(b, at);
    if (len < ATTR_HEADER_SIZE || at + len > end) break;
    out.push({
      type: readU16(b, at + 2) & NLA_TYPE_MASK,
      value: b.subarray(at + ATTR_HEADER_SIZE, at + len),
    });
    at += align4(len);
  }
  return out;
}

/** Attributes by type (the last one wins when a type repeats). */
export function attrMap(buf: Uint8Array, offset = 0, end = buf.length): Map<number, Buffer> {
  const map = new Map<number, Buffer>();
  for (const attr of decodeAttrs(buf, offset, end)) map.set(attr.type, attr.value);
  return map;
}

/** Decodes a string value, dropping the NUL terminator and anything after it. */
export function attrString(value: Uint8Array): string {
  const b = Buffer.from(value.buffer, value.byteOffset, value.byteLength);
  const nul = b.indexOf(0);
  return b.toString("utf8", 0, nul < 0 ? b.length : nul);
}
