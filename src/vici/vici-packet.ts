/**
 * VICI packets and their transport framing (README "Transport protocol", "Packet layer"): each packet
 * is a 32-bit big-endian length, then an 8-bit packet type, for named types an 8-bit-length name, then
 * the message.
 */
import { decodeViciMessage, encodeViciMessage, ViciFormatError, type ViciSection } from "./vici-message.js";

export const CMD_REQUEST = 0;
export const CMD_RESPONSE = 1;
export const CMD_UNKNOWN = 2;
export const EVENT_REGISTER = 3;
export const EVENT_UNREGISTER = 4;
export const EVENT_CONFIRM = 5;
export const EVENT_UNKNOWN = 6;
export const EVENT = 7;

const NAMED = new Set([CMD_REQUEST, EVENT_REGISTER, EVENT_UNREGISTER, EVENT]);
/** charon's limit on one segment. */
export const MAX_SEGMENT = 512 * 1024;

export interface ViciPacket {
  readonly type: number;
  /** Command or event name (named packet types only). */
  readonly name?: string;
  readonly message: ViciSection;
}

export function encodeViciPacket(packet: ViciPacket): Buffer {
  const parts: Buffer[] = [Buffer.from([packet.type])];
  if (NAMED.has(packet.type)) {
    const name = Buffer.from(packet.name ?? "", "ascii");
    parts.push(Buffer.from([name.length]), name);
  }
  parts.push(encodeViciMessage(packet.message));
  const body = Buffer.concat(parts);
  const length = Buffer.alloc(4);
  length.writeUInt32BE(body.length, 0);
  return Buffer.concat([length, body]);
}

/** One packet's body (after the length prefix). */
export function decodeViciPacket(body: Uint8Array): ViciPacket {
  const buf = Buffer.from(body.buffer, body.byteOffset, body.length);
  if (buf.length < 1) throw new ViciFormatError("empty VICI packet");
  const type = buf[0]!;
  let at = 1;
  let name: string | undefined;
  if (NAMED.has(type)) {
    const n = buf[1];
    if (n === undefined || 2 + n > buf.length) throw new ViciFormatError("VICI packet name truncated");
    name = buf.toString("ascii", 2, 2 + n);
    at = 2 + n;
  } else if (type > EVENT) {
    throw new ViciFormatError(`unknown VICI packet type ${type}`);
  }
  return { type, ...(name !== undefined ? { name } : {}), message: decodeViciMessage(buf.subarray(at)) };
}

/** Splits a byte stream into packets; keeps a partial packet until the rest arrives. */
export class ViciFramer {
  private pending: Buffer = Buffer.alloc(0);

  push(chunk: Uint8Array): ViciPacket[] {
    this.pending = this.pending.length === 0 ? Buffer.from(chunk) : Buffer.concat([this.pending, chunk]);
    const packets: ViciPacket[] = [];
    while (this.pending.length >= 4) {
      const length = this.pending.readUInt32BE(0);
      if (length > MAX_SEGMENT)
        throw new ViciFormatError(`VICI segment of ${length} bytes is over the 512 KiB limit`);
      if (this.pending.length < 4 + length) break;
      packets.push(decodeViciPacket(this.pending.subarray(4, 4 + length)));
      this.pending = this.pending.subarray(4 + length);
    }
    return packets;
  }
}
