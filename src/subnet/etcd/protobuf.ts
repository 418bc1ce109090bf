/**
 * The protobuf wire format, only as far as etcd's messages need it: varints (int64 kept as bigint, never
 * through a JS number), length-delimited fields (bytes, strings, embedded messages) and skipping the rest.
 * Pure: no I/O here.
 */

export const WIRE_VARINT = 0;
export const WIRE_FIXED64 = 1;
export const WIRE_LEN = 2;
export const WIRE_FIXED32 = 5;

const INT64_MIN = -(1n << 63n);
const UINT64_MAX = (1n << 64n) - 1n;

/** Builds one message. Writing a field at its proto3 default (0, false, empty) leaves it out, unless asked. */
export class ProtoWriter {
  private readonly chunks: Buffer[] = [];
  private bytes: number[] = [];

  /** A varint field: int64 and uint64 alike; a negative int64 goes out as its 64-bit two's complement. */
  int64(field: number, value: bigint | number, keepDefault = false): this {
    const big = BigInt(value);
    if (big === 0n && !keepDefault) return this;
    if (big < INT64_MIN || big > UINT64_MAX) throw new RangeError(`${big} does not fit in 64 bits`);
    this.tag(field, WIRE_VARINT);
    this.varint(BigInt.asUintN(64, big));
    return this;
  }

  bool(field: number, value: boolean): this {
    return value ? this.int64(field, 1) : this;
  }

  /** A bytes or string field (strings as UTF-8). */
  bytesField(field: number, value: Uint8Array | string): this {
    const data = typeof value === "string" ? Buffer.from(value, "utf8") : value;
    if (data.length === 0) return this;
    return this.lengthDelimited(field, data);
  }

  /** An embedded message; written even when empty, since its presence means something. */
  message(field: number, value: ProtoWriter | Uint8Array): this {
    return this.lengthDelimited(field, value instanceof ProtoWriter ? value.finish() : value);
  }

  finish(): Buffer {
    this.flush();
    return Buffer.concat(this.chunks);
  }

  private lengthDelimited(field: number, data: Uint8Array): this {
    this.tag(field, WIRE_LEN);
    this.varint(BigInt(data.length));
    this.flush();
    this.chunks.push(Buffer.from(data.buffer, data.byteOffset, data.length));
    return this;
  }

  private tag(field: number, wireType: number): void {
    this.varint(BigInt((field << 3) | wireType));
  }

  private varint(value: bigint): void {
    let rest = value;
    while (rest > 0x7fn) {
      this.bytes.push(Number(rest & 0x7fn) | 0x80);
      rest >>= 7n;
    }
    this.bytes.push(Number(rest));
  }

  private flush(): void {
    if (this.bytes.length === 0) return;
    this.chunks.push(Buffer.from(this.bytes));
    this.bytes = [];
  }
}

/**
 * Reads one message field by field: next() gives the field number and wire type, then exactly one of the
 * value readers (or skip()) consumes the value. Truncated or malformed input throws.
 */
export class ProtoReader {
  private at = 0;
  private wireType = -1;

  constructor(private readonly data: Uint8Array) {}

  /** The next field's number, or undefined at the end of the message. */
  next(): number | undefined {
    if (this.at >= this.data.length) return undefined;
    const key = this.varint();
    const field = Number(key >> 3n);
    this.wireType = Number(key & 7n);
    if (field === 0) throw new Error("protobuf field number 0");
    return field;
  }

  /** The wire type of the field next() just gave. */
  get currentWireType(): number {
    return this.wireType;
  }

  /** An int64 (a varint read as signed 64-bit). */
  int64(): bigint {
    this.expect(WIRE_VARINT);
    return BigInt.asIntN(64, this.varint());
  }

  /** A uint64, or an enum or int32 (small values); as a bigint. */
  uint64(): bigint {
    this.expect(WIRE_VARINT);
    return BigInt.asUintN(64, this.varint());
  }

  bool(): boolean {
    return this.uint64() !== 0n;
  }

  /** A bytes field or an embedded message: a view into the input, not a copy. */
  bytes(): Buffer {
    this.expect(WIRE_LEN);
    const length = Number(this.varint());
    const end = this.at + length;
    if (end > this.data.length) throw new Error("protobuf length runs past the end of the message");
    const view = Buffer.from(this.data.buffer, this.data.byteOffset + this.at, length);
    this.at = end;
    return view;
  }

  string(): string {
    return this.bytes().toString("utf8");
  }

  /** Skips the value of a field we do not read. */
  skip(): void {
    switch (this.wireType) {
      case WIRE_VARINT:
        this.varint();
        return;
      case WIRE_FIXED64:
        this.advance(8);
        return;
      case WIRE_LEN:
        this.bytes();
        return;
      case WIRE_FIXED32:
        this.advance(4);
        return;
      default:
        throw new Error(`protobuf wire type ${this.wireType} is not supported`);
    }
  }

  private expect(wireType: number): void {
    if (this.wireType !== wireType) {
      throw new Error(`protobuf field has wire type ${this.wireType}, expected ${wireType}`);
    }
  }

  private advance(count: number): void {
    if (this.at + count > this.data.length)
      throw new Error("protobuf value runs past the end of the message");
    this.at += count;
  }

  private varint(): bigint {
    // Numbers while they are exact (7 bytes = 49 bits), bigint beyond: most varints are small.
    let small = 0;
    let shift = 0;
    for (; shift < 49; shift += 7) {
      const byte = this.byte();
      small += (byte & 0x7f) * 2 ** shift;
      if (byte < 0x80) return BigInt(small);
    }
    let big = BigInt(small);
    for (let bigShift = 49n; ; bigShift += 7n) {
      if (bigShift > 63n) throw new Error("protobuf varint longer than 10 bytes");
      const byte = this.byte();
      big |= BigInt(byte & 0x7f) << bigShift;
      if (byte < 0x80) return BigInt.asUintN(64, big);
    }
  }

  private byte(): number {
    if (this.at >= this.data.length) throw new Error("protobuf varint runs past the end of the message");
    return this.data[this.at++]!;
  }
}
