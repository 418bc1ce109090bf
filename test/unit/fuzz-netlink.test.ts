// Fuzz: rtnetlink message decoding from random and nearly valid bytes. The kernel is trusted, but a decoder
// that throws a RangeError on a short attribute takes weftd down from inside a socket callback.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import { decodeAddress } from "../../src/netlink/address.js";
import { encodeAttrs } from "../../src/netlink/attributes.js";
import { NetlinkDecodeError } from "../../src/netlink/errors.js";
import { decodeEvent } from "../../src/netlink/events.js";
import { decodeFdb } from "../../src/netlink/fdb.js";
import { decodeLink } from "../../src/netlink/link.js";
import {
  decodeDone,
  decodeError,
  decodeMessages,
  encodeMessage,
  type NetlinkMessage,
} from "../../src/netlink/message.js";
import { decodeNeigh } from "../../src/netlink/neigh.js";
import { decodeRoute } from "../../src/netlink/route.js";
import { checkProperty, onlyOwnErrors } from "./fuzz-harness.js";
import { bytes } from "./fuzz-inputs.js";

const ALLOWED = [NetlinkDecodeError];

/** Attributes of any type weft reads (1-30), any length, sometimes nested in a linkinfo/vxlan shape. */
type GenAttr = { type: number; value: Uint8Array | GenAttr[] };
const leafAttr: fc.Arbitrary<GenAttr> = fc.record({
  type: fc.oneof(fc.integer({ min: 0, max: 30 }), fc.integer({ min: 0, max: 0xffff })),
  value: fc.oneof(
    fc.uint8Array({ maxLength: 20 }),
    fc.constantFrom(2, 4, 6, 16).chain((n) => fc.uint8Array({ minLength: n, maxLength: n })),
  ),
});
const kindAttr = fc
  .constantFrom("vxlan", "bridge", "veth", "")
  .map((k) => ({ type: 1, value: Buffer.from(`${k}\0`) }));
const attrs: fc.Arbitrary<GenAttr[]> = fc.array(
  fc.oneof(
    { weight: 4, arbitrary: leafAttr },
    {
      weight: 1,
      arbitrary: fc
        .tuple(kindAttr, fc.array(leafAttr, { maxLength: 6 }))
        .map(([kind, data]) => ({ type: 18, value: [kind, { type: 2, value: data }] })),
    },
  ),
  { maxLength: 10 },
);

const familyHeader = fc
  .tuple(
    fc.constantFrom(0, 2, 7, 10, 255),
    fc.oneof(fc.constantFrom(0, 4, 8, 12, 16, 20), fc.nat(40)),
    fc.uint8Array({ maxLength: 40 }),
  )
  .map(([family, len, rest]) => {
    const b = Buffer.alloc(len);
    b.set(rest.subarray(0, len));
    if (len > 0) b[0] = family;
    return b;
  });

const messageType = fc.constantFrom(2, 3, 16, 17, 20, 21, 24, 25, 28, 29, 1, 4, 99);

/** A well-framed message of a type weft follows, with a family header and attributes of any size. */
const framed = fc
  .tuple(messageType, fc.integer({ min: 0, max: 0xffff }), familyHeader, attrs)
  .map(([type, flags, header, list]) => encodeMessage(type, flags, header, list as never));

/** Framed messages with their bytes damaged: lengths that lie, truncation, flipped bytes. */
const damaged = fc
  .tuple(framed, fc.array(fc.tuple(fc.nat(), fc.nat(255)), { maxLength: 6 }), fc.option(fc.nat()))
  .map(([m, flips, cut]) => {
    const b = Buffer.from(m);
    for (const [at, v] of flips) b[at % b.length] = v;
    return cut === null ? b : b.subarray(0, cut % (b.length + 1));
  });

const datagram = fc.oneof(
  framed,
  damaged,
  bytes(256),
  fc.array(fc.oneof(framed, damaged), { maxLength: 4 }).map((ms) => Buffer.concat(ms)),
);

function decodeEverything(message: NetlinkMessage): void {
  onlyOwnErrors(ALLOWED, () => decodeEvent(message));
  for (const decode of [
    decodeLink,
    decodeRoute,
    decodeAddress,
    decodeNeigh,
    decodeFdb,
    decodeError,
    decodeDone,
  ]) {
    onlyOwnErrors(ALLOWED, () => decode(message));
  }
}

describe("fuzz: netlink decoding", () => {
  it("decodeMessages never throws and never reads past the datagram", (t) => {
    checkProperty(t, { runs: 3000 }, datagram, (d) => {
      const messages = onlyOwnErrors([], () => decodeMessages(d)) ?? [];
      let total = 0;
      for (const m of messages) total += m.payload.length + 16;
      assert.ok(total <= d.length);
    });
  });

  it("each object's decoder throws only NetlinkDecodeError, on any message", (t) => {
    checkProperty(t, { runs: 3000 }, datagram, (d) => {
      for (const message of decodeMessages(d)) decodeEverything(message);
    });
  });

  it("any payload at all, with any type and flags, gives a decoded object or NetlinkDecodeError", (t) => {
    checkProperty(
      t,
      { runs: 3000 },
      fc.tuple(messageType, fc.nat(0xffff), bytes(128)),
      ([type, flags, payload]) => {
        decodeEverything({ type, flags, seq: 0, pid: 0, payload });
      },
    );
  });

  it("a well-formed route, address and neighbour decode to what was encoded", (t) => {
    const v4 = fc.uint8Array({ minLength: 4, maxLength: 4 });
    checkProperty(
      t,
      { runs: 1000 },
      fc.tuple(v4, fc.integer({ min: 0, max: 32 }), fc.nat(1000)),
      ([dst, len, oif]) => {
        const header = Buffer.alloc(12);
        header[0] = 2;
        header[1] = len;
        const oifBytes = Buffer.alloc(4);
        oifBytes.writeUInt32LE(oif);
        const payload = Buffer.concat([
          header,
          encodeAttrs([
            { type: 1, value: dst },
            { type: 4, value: oifBytes },
          ]),
        ]);
        const route = decodeRoute({ type: 24, flags: 0, seq: 0, pid: 0, payload });
        assert.equal(route?.dst, `${Array.from(dst).join(".")}/${len}`);
        assert.equal(route?.oif, oif);
      },
    );
  });
});
