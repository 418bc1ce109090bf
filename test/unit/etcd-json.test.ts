/** etcd's JSON gateway shapes: base64 keys and values, int64 strings, watch messages, error bodies. */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { describeSocketError, isAuthTokenError } from "../../src/subnet/etcd/etcd-errors.js";
import {
  fromBase64,
  headerRevision,
  int64Text,
  parseErrorBody,
  parseWatchMessage,
  prefixRangeEnd,
  toBase64,
  toStoredValue,
} from "../../src/subnet/etcd/etcd-json.js";

const b64 = (text: string) => Buffer.from(text).toString("base64");
const bytes = (base64: string) => [...Buffer.from(base64, "base64")];

describe("etcd JSON: key values", () => {
  it("encodes and decodes base64 as UTF-8", () => {
    assert.equal(toBase64("/coreos.com/network/config"), "L2NvcmVvcy5jb20vbmV0d29yay9jb25maWc=");
    assert.equal(fromBase64(toBase64("välue ✓")), "välue ✓");
    assert.equal(fromBase64(undefined), "");
  });

  it("decodes a key value as the gateway writes it, keeping a lease ID above 2^53 exact", () => {
    const kv = {
      key: b64("/coreos.com/network/subnets/10.244.1.0-24"),
      create_revision: "5",
      mod_revision: "9007199254740993",
      version: "1",
      value: b64('{"PublicIP":"172.31.0.1"}'),
      lease: "7587880429463148041",
    };
    assert.deepEqual(toStoredValue(kv), {
      key: "/coreos.com/network/subnets/10.244.1.0-24",
      value: '{"PublicIP":"172.31.0.1"}',
      modRevision: 9007199254740993n,
      leaseId: "7587880429463148041",
    });
  });

  it("reads left-out fields as their proto3 defaults: empty value, no lease", () => {
    assert.deepEqual(toStoredValue({ key: b64("/k"), mod_revision: "3" }), {
      key: "/k",
      value: "",
      modRevision: 3n,
      leaseId: "0",
    });
    assert.equal(headerRevision({ header: { revision: "42" } }), 42n);
    assert.equal(headerRevision({}), 0n);
  });

  it("refuses an int64 that is not an integer rather than guessing", () => {
    assert.equal(int64Text(12, "x"), "12");
    assert.equal(int64Text("-3", "x"), "-3");
    assert.throws(() => int64Text(1.5, "lease"), /etcd sent 1\.5 for lease, which is not an int64/);
    assert.throws(() => int64Text(2 ** 60, "lease"), /not an int64/);
    assert.throws(() => int64Text("12a", "mod_revision"), /not an int64/);
  });
});

describe("etcd JSON: prefix range end", () => {
  it("increments the last byte of the prefix, as clientv3 does", () => {
    assert.equal(fromBase64(prefixRangeEnd("/coreos.com/network/subnets/")), "/coreos.com/network/subnets0");
    assert.equal(fromBase64(prefixRangeEnd("a")), "b");
  });

  it("works on bytes, not characters", () => {
    // "ÿ" is 0xc3 0xbf in UTF-8: the last byte goes to 0xc0.
    assert.deepEqual(bytes(prefixRangeEnd("ÿ")), [0xc3, 0xc0]);
  });

  it("gives \\0 (every key) for an empty prefix", () => {
    assert.deepEqual(bytes(prefixRangeEnd("")), [0]);
  });
});

describe("etcd JSON: watch messages", () => {
  const header = { cluster_id: "1", member_id: "2", revision: "4", raft_term: "2" };
  const line = (result: unknown) => JSON.stringify({ result });

  it("recognises the created confirmation", () => {
    assert.deepEqual(parseWatchMessage(line({ header, created: true })), { kind: "created" });
  });

  it("decodes events in order; a PUT has no type, a DELETE only key and mod_revision", () => {
    const message = parseWatchMessage(
      line({
        header,
        events: [
          { type: "DELETE", kv: { key: b64("/p/a"), mod_revision: "4" } },
          {
            kv: { key: b64("/p/b"), create_revision: "5", mod_revision: "5", version: "1", value: b64("v") },
          },
          { type: "PUT", kv: { key: b64("/p/c"), mod_revision: "6", value: b64("w"), lease: "99" } },
        ],
      }),
    );
    assert.deepEqual(message, {
      kind: "events",
      events: [
        { type: "delete", key: "/p/a", revision: 4n },
        { type: "put", kv: { key: "/p/b", value: "v", modRevision: 5n, leaseId: "0" } },
        { type: "put", kv: { key: "/p/c", value: "w", modRevision: 6n, leaseId: "99" } },
      ],
    });
  });

  it("takes a message without events for a progress notification", () => {
    assert.deepEqual(parseWatchMessage(line({ header })), { kind: "progress" });
  });

  it("reports a cancel for a compacted revision (etcd 3.4 gives no cancel_reason for it)", () => {
    assert.deepEqual(parseWatchMessage(line({ header, canceled: true, compact_revision: "3" })), {
      kind: "canceled",
      reason: "the revision asked for is compacted (compact revision 3)",
      compactRevision: 3n,
    });
  });

  it("reports a refused watch, created and canceled in one message, with etcd's reason", () => {
    const reason = "rpc error: code = Unauthenticated desc = etcdserver: invalid auth token";
    assert.deepEqual(
      parseWatchMessage(
        line({ header, watch_id: "-1", created: true, canceled: true, cancel_reason: reason }),
      ),
      { kind: "canceled", reason, compactRevision: undefined },
    );
  });

  it("reports a gateway error object in the stream", () => {
    assert.deepEqual(
      parseWatchMessage(
        JSON.stringify({ error: { grpc_code: 14, http_code: 503, message: "transport is closing" } }),
      ),
      { kind: "error", message: "transport is closing", grpcCode: 14 },
    );
  });

  it("turns anything unreadable into an error instead of throwing", () => {
    assert.equal(parseWatchMessage("{not json").kind, "error");
    assert.match((parseWatchMessage("{}") as { message: string }).message, /no result in it/);
    assert.match(
      (parseWatchMessage(line({ events: [{ type: "TOUCH", kv: {} }] })) as { message: string }).message,
      /unknown type "TOUCH"/,
    );
    assert.match(
      (parseWatchMessage(line({ events: [{ kv: { mod_revision: 1.5 } }] })) as { message: string }).message,
      /not an int64/,
    );
  });
});

describe("etcd JSON: errors", () => {
  it("reads etcd's error body", () => {
    assert.deepEqual(
      parseErrorBody(
        '{"error":"etcdserver: requested lease not found","message":"etcdserver: requested lease not found","code":5}',
      ),
      { message: "etcdserver: requested lease not found", grpcCode: 5 },
    );
    assert.equal(parseErrorBody("Not Found\n"), undefined);
  });

  it("knows which errors a new token fixes", () => {
    assert.ok(isAuthTokenError(16, "etcdserver: invalid auth token"));
    assert.ok(isAuthTokenError(3, "etcdserver: user name is empty"));
    assert.ok(
      isAuthTokenError(undefined, "rpc error: code = Unauthenticated desc = etcdserver: invalid auth token"),
    );
    assert.ok(!isAuthTokenError(7, "etcdserver: permission denied"));
    assert.ok(!isAuthTokenError(3, "etcdserver: authentication failed, invalid user ID or password"));
  });

  it("names socket errors in plain words", () => {
    const error = (code: string, message = "x") => Object.assign(new Error(message), { code });
    assert.equal(describeSocketError(error("ECONNREFUSED")), "connection refused");
    assert.equal(describeSocketError(error("ECONNRESET")), "connection reset");
    assert.equal(
      describeSocketError(error("DEPTH_ZERO_SELF_SIGNED_CERT", "self-signed certificate")),
      "TLS: self-signed certificate",
    );
    assert.equal(describeSocketError(error("EWHATEVER", "")), "EWHATEVER");
  });
});
