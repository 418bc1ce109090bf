/**
 * The protobuf codec and etcd's messages on bytes. Expected encodings are derived by hand from the wire
 * format (tag = field << 3 | wire type; varints 7 bits at a time, low first) and etcd's field numbers.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  decodeAuthenticateResponse,
  decodeKeyValue,
  decodeLeaseGrantResponse,
  decodeRangeResponse,
  decodeTxnSucceeded,
  decodeWatchResponse,
  encodeAuthenticateRequest,
  encodeCreateIfAbsentTxn,
  encodeDeleteRangeRequest,
  encodeLeaseGrantRequest,
  encodePutRequest,
  encodeRangeRequest,
  encodeWatchCreateRequest,
  leaseIdValue,
  prefixRangeEnd,
} from "../../src/subnet/etcd/etcd-messages.js";
import { ProtoReader, ProtoWriter } from "../../src/subnet/etcd/protobuf.js";
import { b, fields, header, keyValue } from "./etcd-fake-server.js";

const LEASE = "7587880429463148041";
/** LEASE as a varint, worked out apart from the codec. */
const LEASE_VARINT = "89aca8e2c5a1e4a669";

describe("protobuf varints", () => {
  it("encodes varints low 7 bits first, int64 as 64-bit two's complement", () => {
    assert.deepEqual(new ProtoWriter().int64(1, 1).finish(), b("08 01"));
    assert.deepEqual(new ProtoWriter().int64(1, 300).finish(), b("08 ac02"));
    assert.deepEqual(new ProtoWriter().int64(1, 2n ** 53n + 1n).finish(), b("08 8180808080808010"));
    assert.deepEqual(new ProtoWriter().int64(1, 2n ** 63n - 1n).finish(), b("08 ffffffffffffffff7f"));
    assert.deepEqual(new ProtoWriter().int64(2, -1).finish(), b("10 ffffffffffffffffff01"));
    assert.deepEqual(new ProtoWriter().int64(1, BigInt(LEASE)).finish(), b(`08 ${LEASE_VARINT}`));
    // Field numbers above 15 take two bytes of tag: 64 << 3 | 2 = 0x202.
    assert.deepEqual(new ProtoWriter().bytesField(64, "a").finish(), b("8204 01 61"));
    assert.throws(() => new ProtoWriter().int64(1, 2n ** 64n), /does not fit in 64 bits/);
  });

  it("leaves proto3 defaults out unless asked, and writes empty messages", () => {
    const w = new ProtoWriter().int64(1, 0).bool(2, false).bytesField(3, "").int64(4, 0, true);
    assert.deepEqual(w.message(5, new ProtoWriter()).finish(), b("20 00 2a 00"));
  });

  it("decodes what it encodes, keeping int64 above 2^53 exact and negatives signed", () => {
    const values = [0n, 1n, 127n, 128n, 2n ** 53n + 1n, 2n ** 63n - 1n, -1n, -(2n ** 63n), BigInt(LEASE)];
    const w = new ProtoWriter();
    for (const v of values) w.int64(7, v, true);
    w.bytesField(8, "välue").bool(9, true);
    const r = new ProtoReader(w.finish());
    for (const v of values) {
      assert.equal(r.next(), 7);
      assert.equal(r.int64(), v);
    }
    assert.equal(r.next(), 8);
    assert.equal(r.string(), "välue");
    assert.equal(r.next(), 9);
    assert.equal(r.bool(), true);
    assert.equal(r.next(), undefined);
  });

  it("skips fields of every wire type it does not read", () => {
    // 1: varint, 2: fixed64, 3: bytes, 5: fixed32, then 6: varint 5.
    const r = new ProtoReader(b("08 96 01  11 0102030405060708  1a 02 6869  2d 01020304  30 05"));
    for (let field = r.next(); field !== 6; field = r.next()) r.skip();
    assert.equal(r.int64(), 5n);
    assert.equal(r.next(), undefined);
  });

  it("refuses truncated input, wrong wire types and overlong varints", () => {
    assert.throws(() => {
      const r = new ProtoReader(b("0a 05 6869"));
      r.next();
      r.bytes();
    }, /runs past the end/);
    assert.throws(() => {
      const r = new ProtoReader(b("08 96"));
      r.next();
      r.int64();
    }, /runs past the end/);
    assert.throws(() => {
      const r = new ProtoReader(b("0a 01 61"));
      r.next();
      r.int64();
    }, /wire type 2, expected 0/);
    assert.throws(() => {
      const r = new ProtoReader(b("08 ffffffffffffffffffff01"));
      r.next();
      r.int64();
    }, /longer than 10 bytes/);
    assert.throws(() => new ProtoReader(b("00 01")).next(), /field number 0/);
  });
});

describe("etcd requests", () => {
  it("RangeRequest: key=1, range_end=2", () => {
    assert.deepEqual(encodeRangeRequest("/p/", prefixRangeEnd("/p/")), b("0a 03 2f702f  12 03 2f7030"));
    assert.deepEqual(encodeRangeRequest("/k"), b("0a 02 2f6b"));
  });

  it("PutRequest: key=1, value=2, lease=3 only when there is one", () => {
    assert.deepEqual(encodePutRequest("/k", "v", LEASE), b(`0a 02 2f6b  12 01 76  18 ${LEASE_VARINT}`));
    assert.deepEqual(encodePutRequest("/k", "", "0"), b("0a 02 2f6b"));
    assert.throws(() => encodePutRequest("/k", "v", "12a"), /not an integer/);
    assert.throws(() => leaseIdValue("9223372036854775808"), /does not fit in an int64/);
  });

  it("TxnRequest for create-if-absent: compare create_revision = 0 (written: a oneof), success put", () => {
    const compare = "10 01  1a 02 2f6b  28 00"; // target CREATE, key, create_revision 0 (result EQUAL = 0)
    const put = `0a 02 2f6b  12 01 76  18 ${LEASE_VARINT}`; // 4 + 3 + 10 = 17 bytes
    // success=2 holds a RequestOp (19 bytes) whose request_put=2 holds the PutRequest.
    assert.deepEqual(encodeCreateIfAbsentTxn("/k", "v", LEASE), b(`0a 08 ${compare}  12 13  12 11 ${put}`));
  });

  it("DeleteRangeRequest, LeaseGrantRequest, AuthenticateRequest", () => {
    assert.deepEqual(encodeDeleteRangeRequest("/k"), b("0a 02 2f6b"));
    assert.deepEqual(encodeLeaseGrantRequest(60), b("08 3c"));
    assert.deepEqual(encodeAuthenticateRequest("root", "s3cret"), b("0a 04 726f6f74  12 06 733363726574"));
  });

  it("WatchRequest with a create_request: key=1 range_end=2 start_revision=3 progress_notify=4", () => {
    const create = { key: "/p/", rangeEnd: prefixRangeEnd("/p/"), startRevision: 8n, progressNotify: true };
    assert.deepEqual(encodeWatchCreateRequest(create), b("0a 0e  0a 03 2f702f  12 03 2f7030  18 08  20 01"));
  });

  it("prefix range end: the last byte below 0xff incremented, on bytes, \\0 for everything", () => {
    assert.deepEqual(
      prefixRangeEnd("/coreos.com/network/subnets/"),
      Buffer.from("/coreos.com/network/subnets0"),
    );
    assert.deepEqual(prefixRangeEnd("a\u00ff"), Buffer.from([0x61, 0xc3, 0xc0])); // ÿ is c3 bf
    assert.deepEqual(prefixRangeEnd(""), Buffer.from([0]));
  });
});

describe("etcd responses", () => {
  it("KeyValue: key, value, create and mod revisions and a lease above 2^53, exactly", () => {
    // key "/a", create_revision 5, mod_revision 6, version 2, value "välue", lease
    const kv = b(`0a 02 2f61  10 05  18 06  20 02  2a 06 76c3a46c7565  30 ${LEASE_VARINT}`);
    assert.deepEqual(decodeKeyValue(kv), {
      key: "/a",
      value: "välue",
      modRevision: 6n,
      createRevision: 5n,
      leaseId: LEASE,
    });
    assert.deepEqual(decodeKeyValue(b("0a 02 2f61")), {
      key: "/a",
      value: "",
      modRevision: 0n,
      createRevision: 0n,
      leaseId: "0",
    });
  });

  it("RangeResponse: the header's revision and every kv, skipping count and more", () => {
    const response = new ProtoWriter()
      .message(1, header(2n ** 53n + 3n))
      .message(2, keyValue("/p/a", "A", 6, BigInt(LEASE)))
      .message(2, keyValue("/p/b", "", 7))
      .bool(3, true)
      .int64(4, 2)
      .finish();
    assert.deepEqual(decodeRangeResponse(response), {
      revision: 2n ** 53n + 3n,
      kvs: [
        { key: "/p/a", value: "A", modRevision: 6n, createRevision: 6n, leaseId: LEASE },
        { key: "/p/b", value: "", modRevision: 7n, createRevision: 7n, leaseId: "0" },
      ],
    });
    assert.deepEqual(decodeRangeResponse(Buffer.alloc(0)), { revision: 0n, kvs: [] });
  });

  it("TxnResponse, LeaseGrantResponse, AuthenticateResponse", () => {
    assert.equal(decodeTxnSucceeded(b("10 01")), true);
    assert.equal(decodeTxnSucceeded(b("0a 02 1801")), false);
    assert.deepEqual(decodeLeaseGrantResponse(b(`0a 02 1801  10 ${LEASE_VARINT}  18 3c`)), {
      id: LEASE,
      ttl: 60n,
      error: "",
    });
    assert.deepEqual(decodeAuthenticateResponse(b("0a 00  12 04 746f6b31")), { token: "tok1" });
  });

  it("WatchResponse: created, events in order (PUT is type 0, a DELETE's revision is its mod_revision)", () => {
    assert.deepEqual(decodeWatchResponse(b("0a 02 1805  18 01")), { kind: "created" });
    assert.deepEqual(decodeWatchResponse(b("0a 02 1805")), { kind: "progress" });
    const put = new ProtoWriter().message(2, keyValue("/p/a", "1", 8, BigInt(LEASE)));
    const del = new ProtoWriter().int64(1, 1).message(2, new ProtoWriter().bytesField(1, "/p/b").int64(3, 9));
    const events = new ProtoWriter().message(1, header(9)).message(11, put).message(11, del).finish();
    assert.deepEqual(decodeWatchResponse(events), {
      kind: "events",
      events: [
        { type: "put", kv: { key: "/p/a", value: "1", modRevision: 8n, createRevision: 8n, leaseId: LEASE } },
        { type: "delete", key: "/p/b", revision: 9n },
      ],
    });
    assert.throws(
      () => decodeWatchResponse(new ProtoWriter().message(11, new ProtoWriter().int64(1, 7)).finish()),
      /unknown type 7/,
    );
  });

  it("WatchResponse: a cancel, with etcd's reason or for a compaction (etcd 3.4 gives no reason then)", () => {
    assert.deepEqual(decodeWatchResponse(b("20 01  28 04")), {
      kind: "canceled",
      reason: "the revision asked for is compacted (compact revision 4)",
      compactRevision: 4n,
    });
    // A refused watch: watch_id -1, created and canceled at once.
    const reason = "etcdserver: permission denied";
    const refused = new ProtoWriter().int64(2, -1).bool(3, true).bool(4, true).bytesField(6, reason).finish();
    assert.deepEqual(decodeWatchResponse(refused), { kind: "canceled", reason, compactRevision: 0n });
    assert.deepEqual(fields(refused)[0], [2, 2n ** 64n - 1n]);
  });
});
