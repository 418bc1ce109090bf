// Malformed rtnetlink messages, as the fuzz suite found them: each is one NetlinkDecodeError, never a
// RangeError or TypeError from inside a read (which, in an event callback, would end weftd).
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { encodeAttrs } from "../../src/netlink/attributes.js";
import { NetlinkDecodeError } from "../../src/netlink/errors.js";
import { decodeEvent } from "../../src/netlink/events.js";
import { decodeLink } from "../../src/netlink/link.js";
import { decodeError, type NetlinkMessage } from "../../src/netlink/message.js";
import { decodeRoute } from "../../src/netlink/route.js";

function message(type: number, payload: Buffer, flags = 0): NetlinkMessage {
  return { type, flags, seq: 0, pid: 0, payload };
}

function rtmsg(): Buffer {
  const header = Buffer.alloc(12);
  header[0] = 2; // AF_INET
  header[1] = 24;
  return header;
}

describe("malformed netlink messages", () => {
  it("a route whose RTA_OIF has 2 bytes, or whose gateway has 3, is a NetlinkDecodeError", () => {
    const shortOif = Buffer.concat([rtmsg(), encodeAttrs([{ type: 4, value: Buffer.from([1, 0]) }])]);
    assert.throws(() => decodeRoute(message(24, shortOif)), NetlinkDecodeError);
    const shortGateway = Buffer.concat([rtmsg(), encodeAttrs([{ type: 5, value: Buffer.from([10, 0, 0]) }])]);
    assert.throws(
      () => decodeEvent(message(24, shortGateway)),
      (err: unknown) => err instanceof NetlinkDecodeError && /4 or 16 bytes, not 3/.test(err.message),
    );
  });

  it("a message shorter than its family header is a NetlinkDecodeError naming the header", () => {
    assert.throws(
      () => decodeLink(message(16, Buffer.alloc(10))),
      /link message of 10 bytes is shorter than its 16-byte header/,
    );
    assert.throws(() => decodeRoute(message(24, Buffer.from([2, 24, 0]))), NetlinkDecodeError);
  });

  it("an error whose echoed request length lies (past the end, or over 2^31) is still read", () => {
    const p = Buffer.alloc(20);
    p.writeInt32LE(-17, 0); // EEXIST
    p.writeUInt32LE(0xb2590000, 4); // echoed length: negative when aligned as an int32
    const status = decodeError(message(2, p, 0x200 /* NLM_F_ACK_TLVS */));
    assert.equal(status.errno, 17);
    assert.equal(status.extAck, undefined);
  });

  it("a well-formed route still decodes", () => {
    const ok = Buffer.concat([
      rtmsg(),
      encodeAttrs([
        { type: 1, value: Buffer.from([10, 244, 4, 0]) },
        { type: 5, value: Buffer.from([10, 244, 4, 0]) },
      ]),
    ]);
    const route = decodeRoute(message(24, ok));
    assert.equal(route?.dst, "10.244.4.0/24");
    assert.equal(route?.gateway, "10.244.4.0");
  });
});
