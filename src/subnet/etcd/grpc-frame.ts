/**
 * gRPC's length-prefixed messages: 1 byte compressed-flag (always 0 here: weft asks for no compression),
 * 4 bytes big-endian length, the protobuf bytes. A stream's DATA frames may split or join messages at any
 * byte, so the reader reassembles them. Pure.
 */

/** Larger messages are refused rather than buffered: etcd's own request limit is 1.5 MiB. */
export const MAX_MESSAGE_BYTES = 64 * 1024 * 1024;

export function encodeGrpcFrame(message: Uint8Array): Buffer {
  const frame = Buffer.allocUnsafe(5 + message.length);
  frame[0] = 0;
  frame.writeUInt32BE(message.length, 1);
  frame.set(message, 5);
  return frame;
}

/** Collects DATA chunks and gives back each complete message, in order. */
export class GrpcFrameReader {
  private pending: Buffer = Buffer.alloc(0);

  /** The messages completed by `chunk`; throws on a compressed or oversized message. */
  push(chunk: Buffer): Buffer[] {
    let data = this.pending.length === 0 ? chunk : Buffer.concat([this.pending, chunk]);
    const messages: Buffer[] = [];
    while (data.length >= 5) {
      if (data[0] !== 0) {
        throw new Error(`etcd sent a compressed gRPC message (flag ${data[0]}), which weft did not ask for`);
      }
      const length = data.readUInt32BE(1);
      if (length > MAX_MESSAGE_BYTES) {
        throw new Error(`etcd sent a gRPC message of ${length} bytes (the limit is ${MAX_MESSAGE_BYTES})`);
      }
      if (data.length < 5 + length) break;
      messages.push(data.subarray(5, 5 + length));
      data = data.subarray(5 + length);
    }
    // Copy the rest: a view would pin the whole chunk it came from.
    this.pending = data.length === 0 ? Buffer.alloc(0) : Buffer.from(data);
    return messages;
  }

  /** Bytes of a message begun but not finished (a stream that ends here was cut). */
  get partialBytes(): number {
    return this.pending.length;
  }
}
