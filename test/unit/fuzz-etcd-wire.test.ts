// Fuzz: what comes back from an etcd endpoint (flannel fuzzes subnet/etcd): gRPC frames, protobuf
// messages, grpc-status headers. A broken proxy or a foreign server must give an error, not a crash.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import {
  decodeAuthenticateResponse,
  decodeKeyValue,
  decodeLeaseGrantResponse,
  decodeRangeResponse,
  decodeTxnSucceeded,
  decodeWatchResponse,
  leaseIdValue,
} from "../../src/subnet/etcd/etcd-messages.js";
import { encodeGrpcFrame, GrpcFrameReader } from "../../src/subnet/etcd/grpc-frame.js";
import { decodeGrpcMessage, describeGrpcStatus, readGrpcStatus } from "../../src/subnet/etcd/grpc-status.js";
import { ProtoWriter } from "../../src/subnet/etcd/protobuf.js";
import { checkProperty, onlyOwnErrors } from "./fuzz-harness.js";
import { bytes, hostileString, smallHostileString } from "./fuzz-inputs.js";

/**
 * The etcd client's decoders throw plain Errors that name the wire problem; every caller catches them
 * and reports them as an EtcdError of that call or watch. Anything else escaping is a finding.
 */
const WIRE_ERRORS = [Error];

type Field = { field: number; kind: "varint" | "bytes" | "message"; value: bigint | Uint8Array | Field[] };
const field: fc.Arbitrary<Field> = fc.letrec<{ f: Field }>((tie) => ({
  f: fc.oneof(
    { depthSize: "small", withCrossShrink: true },
    fc.record({
      field: fc.integer({ min: 1, max: 12 }),
      kind: fc.constant("varint" as const),
      value: fc.bigInt({ min: -(1n << 63n), max: (1n << 64n) - 1n }),
    }),
    fc.record({
      field: fc.integer({ min: 1, max: 12 }),
      kind: fc.constant("bytes" as const),
      value: fc.oneof(
        fc.uint8Array({ maxLength: 24 }),
        fc.string({ maxLength: 16 }).map((s) => Buffer.from(s)),
      ),
    }),
    fc.record({
      field: fc.integer({ min: 1, max: 12 }),
      kind: fc.constant("message" as const),
      value: fc.array(tie("f"), { maxLength: 4 }),
    }),
  ),
})).f;

function write(fields: Field[]): Buffer {
  const w = new ProtoWriter();
  for (const f of fields) {
    if (f.kind === "varint") w.int64(f.field, BigInt.asIntN(64, f.value as bigint), true);
    else if (f.kind === "bytes") w.bytesField(f.field, f.value as Uint8Array);
    else w.message(f.field, write(f.value as Field[]));
  }
  return w.finish();
}

/** Protobuf messages: well-formed with fields of any type at any number, damaged, or random bytes. */
const message = fc.oneof(
  fc.array(field, { maxLength: 8 }).map(write),
  fc
    .tuple(
      fc.array(field, { maxLength: 8 }).map(write),
      fc.array(fc.tuple(fc.nat(), fc.nat(255)), { maxLength: 4 }),
      fc.nat(),
    )
    .map(([b, flips, cut]) => {
      const out = Buffer.from(b);
      for (const [at, v] of flips) if (out.length > 0) out[at % out.length] = v;
      return out.subarray(0, out.length === 0 ? 0 : cut % (out.length + 1));
    }),
  bytes(128),
);

const decoders = [
  decodeKeyValue,
  decodeRangeResponse,
  decodeTxnSucceeded,
  decodeLeaseGrantResponse,
  decodeAuthenticateResponse,
  decodeWatchResponse,
];

describe("fuzz: etcd wire decoding", () => {
  it("every response decoder throws only its wire Error, bounded, on any bytes", (t) => {
    checkProperty(t, { runs: 3000 }, message, (data) => {
      for (const decode of decoders) onlyOwnErrors(WIRE_ERRORS, () => decode(data));
    });
  });

  it("a well-formed KeyValue decodes to its key, value, revision and lease", (t) => {
    const kv = fc.record({
      key: fc.string({ maxLength: 40 }),
      value: fc.string({ maxLength: 80 }),
      mod: fc.bigInt({ min: 0n, max: (1n << 63n) - 1n }),
      lease: fc.bigInt({ min: -(1n << 63n), max: (1n << 63n) - 1n }),
    });
    checkProperty(t, { runs: 1500 }, kv, ({ key, value, mod, lease }) => {
      const bytes = new ProtoWriter()
        .bytesField(1, key)
        .int64(3, mod)
        .bytesField(5, value)
        .int64(6, lease)
        .finish();
      const decoded = decodeKeyValue(bytes);
      assert.equal(decoded.key, Buffer.from(key).toString("utf8"));
      assert.equal(decoded.value, Buffer.from(value).toString("utf8"));
      assert.equal(decoded.modRevision, mod);
      assert.equal(decoded.leaseId, lease.toString());
    });
  });

  it("gRPC frames: any split of any stream gives the same messages, or one bounded Error", (t) => {
    const stream = fc.oneof(
      fc.array(bytes(64), { maxLength: 5 }).map((ms) => Buffer.concat(ms.map(encodeGrpcFrame))),
      bytes(256),
    );
    checkProperty(
      t,
      { runs: 2000 },
      fc.tuple(stream, fc.array(fc.nat(300), { maxLength: 6 })),
      ([data, cuts]) => {
        const whole = onlyOwnErrors(WIRE_ERRORS, () => new GrpcFrameReader().push(data));
        const reader = new GrpcFrameReader();
        const pieces: Buffer[] = [];
        let at = 0;
        const messages = onlyOwnErrors(WIRE_ERRORS, () => {
          for (const cut of [...cuts].sort((a, b) => a - b)) {
            const end = Math.min(cut, data.length);
            if (end > at) pieces.push(...reader.push(data.subarray(at, end)));
            at = Math.max(at, end);
          }
          pieces.push(...reader.push(data.subarray(at)));
          return pieces;
        });
        if (whole && messages)
          assert.deepEqual(
            messages.map((m) => m.toString("hex")),
            whole.map((m) => m.toString("hex")),
          );
      },
    );
  });

  it("grpc-status and grpc-message headers of any content give a status and a bounded description", (t) => {
    const headers = fc.record({
      "grpc-status": fc.oneof(
        fc.nat(20).map(String),
        smallHostileString,
        fc.array(fc.nat(20).map(String), { maxLength: 2 }),
      ),
      "grpc-message": fc.oneof(
        hostileString,
        fc
          .array(fc.constantFrom("%", "%2", "%zz", "%e2%82", "%ac", "a", "%0a"), { maxLength: 30 })
          .map((p) => p.join("")),
      ),
    });
    checkProperty(t, { runs: 2000 }, headers, (h) => {
      const status = onlyOwnErrors([], () => readGrpcStatus(h as never));
      if (status) onlyOwnErrors([], () => describeGrpcStatus(status));
      onlyOwnErrors([], () => decodeGrpcMessage(String(h["grpc-message"])));
    });
  });

  // Lease IDs are only ever our own (a LeaseGrant's answer as text): numbers, in or out of range.
  it("a lease ID is an int64 or one bounded Error", (t) => {
    const id = fc.bigInt({ min: -(1n << 70n), max: 1n << 70n }).map(String);
    checkProperty(t, { runs: 2000 }, id, (text) => {
      const value = onlyOwnErrors(WIRE_ERRORS, () => leaseIdValue(text));
      if (value !== undefined) assert.equal(BigInt.asIntN(64, value), value);
    });
  });
});
