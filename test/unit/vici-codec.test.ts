/**
 * The VICI codec on the bytes of strongSwan's own documentation (src/libcharon/plugins/vici/README.md,
 * "Encoding example"), the packet layer and transport framing, and malformed input.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { decodeViciMessage, encodeViciMessage, ViciFormatError } from "../../src/vici/vici-message.js";
import {
  CMD_REQUEST,
  CMD_RESPONSE,
  decodeViciPacket,
  EVENT,
  EVENT_CONFIRM,
  encodeViciPacket,
  ViciFramer,
} from "../../src/vici/vici-packet.js";

const c = (s: string) => [...s].map((ch) => ch.charCodeAt(0));
// The README's C array, element by element, as documented.
const DOCUMENTED = Buffer.from([
  // key1 = value1
  3,
  4,
  ...c("key1"),
  0,
  6,
  ...c("value1"),
  // section1
  1,
  8,
  ...c("section1"),
  // sub-section
  1,
  11,
  ...c("sub-section"),
  // key2 = value2
  3,
  4,
  ...c("key2"),
  0,
  6,
  ...c("value2"),
  // sub-section end
  2,
  // list1
  4,
  5,
  ...c("list1"),
  // item1, item2
  5,
  0,
  5,
  ...c("item1"),
  5,
  0,
  5,
  ...c("item2"),
  // list1 end, section1 end
  6,
  2,
]);
const DOCUMENTED_TREE = {
  key1: "value1",
  section1: { "sub-section": { key2: "value2" }, list1: ["item1", "item2"] },
};

describe("VICI messages", () => {
  it("encodes the documented example to the documented bytes", () => {
    assert.deepEqual(encodeViciMessage(DOCUMENTED_TREE), DOCUMENTED);
  });
  it("decodes the documented bytes to the documented tree", () => {
    assert.deepEqual(decodeViciMessage(DOCUMENTED), DOCUMENTED_TREE);
  });
  it("keeps an empty list, an empty value and UTF-8", () => {
    const tree = { conns: [], errmsg: "", name: "zürich" };
    assert.deepEqual(decodeViciMessage(encodeViciMessage(tree)), tree);
  });
  it("refuses truncated, unbalanced and unknown elements with the byte offset", () => {
    const bad: [number[], RegExp][] = [
      [[3, 4, ...c("key1"), 0, 6, ...c("val")], /truncated/],
      [[1, 1, ...c("s")], /ends inside a section/],
      [[2], /section end without a start/],
      [[5, 0, 1, ...c("x")], /list item outside a list/],
      [[4, 1, ...c("l"), 3, 1, ...c("k"), 0, 0], /inside a list/],
      [[9], /unknown VICI element type 9 at byte 0/],
    ];
    for (const [bytes, why] of bad) {
      assert.throws(
        () => decodeViciMessage(Buffer.from(bytes)),
        (e: unknown) => e instanceof ViciFormatError && why.test(e.message),
      );
    }
  });
});

describe("VICI packets", () => {
  it("frames a named command: 32-bit length, type, 8-bit name length, name, message", () => {
    const bytes = encodeViciPacket({ type: CMD_REQUEST, name: "version", message: {} });
    assert.deepEqual(bytes, Buffer.from([0, 0, 0, 9, CMD_REQUEST, 7, ...c("version")]));
    const response = encodeViciPacket({ type: CMD_RESPONSE, message: { success: "yes" } });
    assert.deepEqual(
      response,
      Buffer.from([0, 0, 0, 15, CMD_RESPONSE, 3, 7, ...c("success"), 0, 3, ...c("yes")]),
    );
  });
  it("splits a stream into packets whatever the chunking", () => {
    const stream = Buffer.concat([
      encodeViciPacket({ type: EVENT_CONFIRM, message: {} }),
      encodeViciPacket({ type: EVENT, name: "list-sa", message: DOCUMENTED_TREE }),
      encodeViciPacket({ type: CMD_RESPONSE, message: {} }),
    ]);
    for (const size of [1, 3, 7, stream.length]) {
      const framer = new ViciFramer();
      const packets = [];
      for (let at = 0; at < stream.length; at += size)
        packets.push(...framer.push(stream.subarray(at, at + size)));
      assert.deepEqual(
        packets.map((p) => [p.type, p.name]),
        [
          [EVENT_CONFIRM, undefined],
          [EVENT, "list-sa"],
          [CMD_RESPONSE, undefined],
        ],
        `chunks of ${size}`,
      );
      assert.deepEqual(packets[1]!.message, DOCUMENTED_TREE);
    }
  });
  it("refuses an unknown packet type and an oversized segment", () => {
    assert.throws(() => decodeViciPacket(Buffer.from([8])), /unknown VICI packet type 8/);
    assert.throws(() => new ViciFramer().push(Buffer.from([0, 0x10, 0, 0])), /512 KiB/);
  });
});
