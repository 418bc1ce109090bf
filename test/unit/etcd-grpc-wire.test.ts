/** gRPC framing, status reading and the errors it maps to: pure, on bytes and headers. */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { describeSocketError, EtcdError, isAuthTokenError } from "../../src/subnet/etcd/etcd-errors.js";
import { callError } from "../../src/subnet/etcd/etcd-grpc.js";
import { encodeGrpcFrame, GrpcFrameReader, MAX_MESSAGE_BYTES } from "../../src/subnet/etcd/grpc-frame.js";
import { decodeGrpcMessage, describeGrpcStatus, readGrpcStatus } from "../../src/subnet/etcd/grpc-status.js";
import { b } from "./etcd-fake-server.js";

describe("gRPC framing", () => {
  it("prefixes a message with flag 0 and its big-endian length", () => {
    assert.deepEqual(encodeGrpcFrame(b("0a 02 2f6b")), b("00 00000004 0a022f6b"));
    assert.deepEqual(encodeGrpcFrame(Buffer.alloc(0)), b("00 00000000"));
    assert.equal(encodeGrpcFrame(Buffer.alloc(70_000)).readUInt32BE(1), 70_000);
  });

  it("reassembles messages split and joined at any byte", () => {
    const messages = [b("0a 02 2f6b"), Buffer.alloc(0), Buffer.alloc(300, 7), b("18 01")];
    const stream = Buffer.concat(messages.map(encodeGrpcFrame));
    for (const size of [1, 2, 5, 7, 64, stream.length]) {
      const reader = new GrpcFrameReader();
      const out: Buffer[] = [];
      for (let at = 0; at < stream.length; at += size)
        out.push(...reader.push(stream.subarray(at, at + size)));
      assert.deepEqual(out, messages, `in pieces of ${size}`);
      assert.equal(reader.partialBytes, 0);
    }
    const reader = new GrpcFrameReader();
    assert.deepEqual(reader.push(b("00 00000003 0a01")), []);
    assert.equal(reader.partialBytes, 7);
  });

  it("refuses compressed and oversized messages", () => {
    assert.throws(() => new GrpcFrameReader().push(b("01 00000001 00")), /compressed gRPC message/);
    const huge = Buffer.alloc(5);
    huge.writeUInt32BE(MAX_MESSAGE_BYTES + 1, 1);
    assert.throws(() => new GrpcFrameReader().push(huge), /gRPC message of \d+ bytes/);
  });
});

describe("gRPC status", () => {
  it("reads grpc-status and the percent-encoded grpc-message", () => {
    assert.deepEqual(readGrpcStatus({ "grpc-status": "0" }), { code: 0, message: "" });
    assert.deepEqual(
      readGrpcStatus({ "grpc-status": "14", "grpc-message": "etcdserver:%20no%20leader%20%E2%9C%93" }),
      { code: 14, message: "etcdserver: no leader ✓" },
    );
    assert.equal(readGrpcStatus({ "content-type": "application/grpc" }), undefined);
    assert.equal(readGrpcStatus(undefined), undefined);
    assert.deepEqual(readGrpcStatus({ "grpc-status": "x" }), {
      code: 2,
      message: 'unreadable grpc-status "x"',
    });
    assert.equal(decodeGrpcMessage("100%zz done %"), "100%zz done %");
  });

  it("names the code after etcd's message", () => {
    assert.equal(
      describeGrpcStatus({ code: 14, message: "etcdserver: no leader" }),
      "etcdserver: no leader (UNAVAILABLE)",
    );
    assert.equal(describeGrpcStatus({ code: 4, message: "" }), "no message (DEADLINE_EXCEEDED)");
    assert.equal(describeGrpcStatus({ code: 42, message: "x" }), "x (code 42)");
    assert.match(describeGrpcStatus({ code: 12, message: "unknown service" }), /not an etcd v3 endpoint\?/);
  });

  it("maps how a call ended to an error naming the endpoint and the method", () => {
    const ep = "https://10.0.0.1:2379";
    const expired = callError(
      ep,
      "KV/Range",
      { kind: "status", status: { code: 16, message: "etcdserver: invalid auth token" } },
      false,
    );
    assert.equal(
      expired.message,
      `etcd at ${ep}: KV/Range: etcdserver: invalid auth token (UNAUTHENTICATED)`,
    );
    assert.equal(expired.grpcCode, 16);
    assert.equal(expired.detail, "etcdserver: invalid auth token");
    assert.equal(expired.tokenRejected, true);
    assert.equal(expired.notSent, false);
    const unavailable = callError(
      ep,
      "KV/Put",
      { kind: "status", status: { code: 14, message: "etcdserver: no leader" } },
      true,
    );
    assert.equal(unavailable.message, `etcd at ${ep}: KV/Put: etcdserver: no leader (UNAVAILABLE)`);
    assert.equal(unavailable.tokenRejected, false);
    const http = callError(
      ep,
      "KV/Range",
      { kind: "http", httpStatus: 404, contentType: "text/plain" },
      true,
    );
    assert.match(http.message, /KV\/Range answered HTTP 404 \(text\/plain\), not gRPC/);
    const refused = Object.assign(new Error("connect ECONNREFUSED 10.0.0.1:2379"), { code: "ECONNREFUSED" });
    const down = callError(
      ep,
      "KV/Range",
      { kind: "failed", error: refused, answered: false, refused: false },
      true,
    );
    assert.equal(down.message, `etcd at ${ep}: connection refused`);
    assert.equal(down.notSent, true, "nothing went out on a connection never made");
    const cut = callError(
      ep,
      "KV/Txn",
      { kind: "failed", error: new Error("the connection closed"), answered: true, refused: false },
      true,
    );
    assert.equal(cut.notSent, false, "etcd answered: it may have applied the call");
    const goaway = callError(
      ep,
      "KV/Txn",
      { kind: "failed", error: new Error("x"), answered: false, refused: true },
      false,
    );
    assert.equal(goaway.notSent, true, "a refused stream was never processed");
  });

  it("knows which errors a new token fixes", () => {
    assert.equal(isAuthTokenError(16, "anything"), true);
    assert.equal(isAuthTokenError(3, "etcdserver: user name is empty"), true);
    assert.equal(
      isAuthTokenError(undefined, "rpc error: code = Unauthenticated desc = etcdserver: invalid auth token"),
      true,
    );
    assert.equal(isAuthTokenError(3, "etcdserver: revision of auth store is old"), true);
    assert.equal(
      isAuthTokenError(3, "etcdserver: authentication failed, invalid user ID or password"),
      false,
    );
    assert.equal(isAuthTokenError(7, "etcdserver: permission denied"), false);
  });

  it("names socket, TLS and HTTP/2 errors in plain words", () => {
    const coded = (message: string, code: string, cause?: Error) =>
      Object.assign(new Error(message, cause ? { cause } : {}), { code });
    assert.equal(describeSocketError(coded("connect ECONNREFUSED", "ECONNREFUSED")), "connection refused");
    assert.equal(
      describeSocketError(
        coded("The pending stream has been canceled", "ERR_HTTP2_STREAM_CANCEL", coded("x", "EHOSTUNREACH")),
      ),
      "host unreachable",
    );
    assert.equal(
      describeSocketError(coded("The pending stream has been canceled", "ERR_HTTP2_STREAM_CANCEL")),
      "the connection closed",
    );
    assert.equal(
      describeSocketError(coded("self-signed certificate", "DEPTH_ZERO_SELF_SIGNED_CERT")),
      "TLS: self-signed certificate",
    );
    assert.equal(
      describeSocketError(coded("Session closed with error code 11", "ERR_HTTP2_SESSION_ERROR")),
      "etcd closed the connection with an error: Session closed with error code 11",
    );
    assert.equal(describeSocketError(new Error("odd")), "odd");
    assert.equal(new EtcdError("a,b", "both failed", { combined: true }).message, "both failed");
  });
});
