// The rtnetlink codec against hand-assembled bytes (x86-64: host byte order is little-endian).
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { bytesToIp, bytesToMac, ipToBytes, macToBytes } from "../../src/netlink/addr-bytes.js";
import { decodeAddress, encodeAddrAdd } from "../../src/netlink/address.js";
import {
  attrMap,
  attrString,
  be16Attr,
  bytesAttr,
  decodeAttrs,
  encodeAttrs,
  flagAttr,
  nestAttr,
  stringAttr,
  u8Attr,
  u16Attr,
  u32Attr,
} from "../../src/netlink/attributes.js";
import { NLA_F_NESTED, NLMSG_DONE, NLMSG_ERROR, RTM_NEWLINK } from "../../src/netlink/constants.js";
import { errnoName, NetlinkError } from "../../src/netlink/errors.js";
import { decodeEvent } from "../../src/netlink/events.js";
import { decodeFdb, encodeFdbAppend, encodeFdbDel } from "../../src/netlink/fdb.js";
import { decodeLink, encodeLinkAdd, encodeLinkSet } from "../../src/netlink/link.js";
import {
  decodeDone,
  decodeError,
  decodeMessages,
  encodeMessage,
  setSequence,
} from "../../src/netlink/message.js";
import { decodeNeigh, encodeNeighReplace } from "../../src/netlink/neigh.js";
import { decodeRoute, encodeRouteDel, encodeRouteDump, encodeRouteReplace } from "../../src/netlink/route.js";

/** "3c 00 00 00 | 18 00" -> bytes; "|" and line breaks are only for reading. */
function hex(text: string): Buffer {
  return Buffer.from(text.replace(/[^0-9a-fA-F]/g, ""), "hex");
}

/** Wraps an encoded request as if the kernel had sent it back (same layout as a notification). */
function asMessage(bytes: Buffer) {
  const [message] = decodeMessages(bytes);
  assert.ok(message);
  return message;
}

describe("attributes", () => {
  it("pads values to 4 bytes but records the unpadded length", () => {
    const bytes = encodeAttrs([
      u8Attr(1, 0xab),
      u16Attr(2, 0x1234),
      bytesAttr(3, hex("01 02 03")),
      flagAttr(4),
    ]);
    assert.deepEqual(
      bytes,
      hex(`
        05 00 01 00  ab 00 00 00
        06 00 02 00  34 12 00 00
        07 00 03 00  01 02 03 00
        04 00 04 00`),
    );
  });

  it("writes ports big-endian and strings NUL-terminated", () => {
    assert.deepEqual(encodeAttrs([be16Attr(15, 8472)]), hex("06 00 0f 00 21 18 00 00"));
    assert.deepEqual(encodeAttrs([stringAttr(3, "eth0")]), hex("09 00 03 00 65 74 68 30 00 00 00 00"));
    assert.deepEqual(encodeAttrs([stringAttr(3, "abc")]), hex("08 00 03 00 61 62 63 00"));
  });

  it("nests with the children's padded size as the parent's length", () => {
    const bytes = encodeAttrs([nestAttr(18, [u8Attr(1, 7), u32Attr(2, 9)])]);
    assert.deepEqual(bytes, hex("14 00 12 00 | 05 00 01 00 07 00 00 00 | 08 00 02 00 09 00 00 00"));
  });

  it("decodes odd lengths, masks NLA_F_NESTED and stops at a truncated tail", () => {
    const bytes = Buffer.concat([
      hex("05 00 01 00 ff 00 00 00"), // u8 with 3 pad bytes
      hex("0c 00 02 80 08 00 01 00 2a 00 00 00"), // nested flag set
      hex("0a 00 03 00 61 62"), // claims 10 bytes, only 6 present
    ]);
    const attrs = decodeAttrs(bytes);
    assert.equal(attrs.length, 2);
    assert.equal(attrs[0]!.type, 1);
    assert.deepEqual(attrs[0]!.value, hex("ff"));
    assert.equal(attrs[1]!.type, 2);
    assert.equal(attrs[1]!.type & NLA_F_NESTED, 0);
    assert.equal(attrMap(attrs[1]!.value).get(1)!.readUInt32LE(0), 42);
  });

  it("stops at an attribute shorter than its own header", () => {
    assert.deepEqual(decodeAttrs(hex("02 00 01 00 08 00 02 00 01 00 00 00")), []);
  });

  it("handles a final attribute without trailing padding", () => {
    const attrs = decodeAttrs(hex("05 00 01 00 07"));
    assert.equal(attrs.length, 1);
    assert.deepEqual(attrs[0]!.value, hex("07"));
  });

  it("strips the NUL from strings", () => {
    assert.equal(attrString(hex("66 6c 61 6e 6e 65 6c 2e 31 00")), "flannel.1");
    assert.equal(attrString(hex("6c 6f")), "lo");
  });
});

describe("addresses and MACs", () => {
  it("converts IPv4 and IPv6 both ways", () => {
    assert.deepEqual(ipToBytes("10.244.4.0"), hex("0a f4 04 00"));
    assert.deepEqual(ipToBytes("fd44::1"), hex("fd44 0000 0000 0000 0000 0000 0000 0001"));
    assert.deepEqual(ipToBytes("::ffff:1.2.3.4"), hex("0000 0000 0000 0000 0000 ffff 0102 0304"));
    assert.deepEqual(ipToBytes("::"), Buffer.alloc(16));
    assert.equal(bytesToIp(hex("fd44 0000 0000 0000 0000 0000 0000 0001")), "fd44::1");
    assert.equal(bytesToIp(hex("2001 0db8 0000 0000 0001 0000 0000 0001")), "2001:db8::1:0:0:1");
    assert.equal(bytesToIp(hex("2001 0db8 0000 0001 0001 0001 0001 0001")), "2001:db8:0:1:1:1:1:1");
    assert.equal(bytesToIp(Buffer.alloc(16)), "::");
    assert.equal(bytesToIp(hex("c0 a8 01 02")), "192.168.1.2");
  });

  it("rejects malformed addresses", () => {
    for (const bad of [
      "10.0.0",
      "10.0.0.256",
      "1::2::3",
      "1:2:3:4:5:6:7:8:9",
      "12345::",
      "::1.2.3.4:5",
      "x",
    ]) {
      assert.throws(() => ipToBytes(bad), TypeError, bad);
    }
  });

  it("converts MACs", () => {
    assert.deepEqual(macToBytes("AA:bb:cc:dd:ee:0f"), hex("aa bb cc dd ee 0f"));
    assert.equal(bytesToMac(hex("0a 00 00 00 00 ff")), "0a:00:00:00:00:ff");
    assert.throws(() => macToBytes("aa:bb:cc:dd:ee:f"), TypeError);
    assert.throws(() => macToBytes("aa-bb-cc-dd-ee-ff"), TypeError);
  });
});

describe("request encoding", () => {
  it("RTM_NEWROUTE replace 10.244.4.0/24 via 10.244.4.0 onlink dev 3", () => {
    const bytes = encodeRouteReplace({ dst: "10.244.4.0/24", gateway: "10.244.4.0", oif: 3, onlink: true });
    setSequence(bytes, 7);
    assert.deepEqual(
      bytes,
      hex(`
        3c 00 00 00  18 00  00 05  07 00 00 00  00 00 00 00
        02 18 00 00  fe 03 00 01  04 00 00 00
        08 00 01 00  0a f4 04 00
        08 00 05 00  0a f4 04 00
        08 00 04 00  03 00 00 00
        08 00 0f 00  fe 00 00 00`),
    );
  });

  it("RTM_DELROUTE matches any scope, type and protocol unless told", () => {
    const bytes = encodeRouteDel({ dst: "fd44:1::/64", table: 1000 });
    assert.deepEqual(
      bytes,
      hex(`
        38 00 00 00  19 00  00 00  00 00 00 00  00 00 00 00
        0a 40 00 00  00 00 ff 00  00 00 00 00
        14 00 01 00  fd 44 00 01 00 00 00 00 00 00 00 00 00 00 00 00
        08 00 0f 00  e8 03 00 00`),
    );
  });

  it("route dumps ask for the table both in the header and as RTA_TABLE", () => {
    assert.deepEqual(
      encodeRouteDump(4),
      hex(
        "24 00 00 00 1a 00 00 00 00 00 00 00 00 00 00 00 | 02 00 00 00 fe 00 00 00 00 00 00 00 | 08 00 0f 00 fe 00 00 00",
      ),
    );
  });

  it("RTM_NEWNEIGH AF_BRIDGE fdb append (self, permanent, dst)", () => {
    const bytes = encodeFdbAppend({ index: 5, mac: "aa:bb:cc:dd:ee:ff", dst: "192.168.1.2" });
    assert.deepEqual(
      bytes,
      hex(`
        30 00 00 00  1c 00  00 0c  00 00 00 00  00 00 00 00
        07 00 00 00  05 00 00 00  80 00 02 00
        0a 00 02 00  aa bb cc dd ee ff 00 00
        08 00 01 00  c0 a8 01 02`),
    );
  });

  it("fdb delete with an IPv6 remote", () => {
    const bytes = encodeFdbDel({ index: 9, mac: "00:00:00:00:00:00", dst: "fd00::2" });
    assert.deepEqual(
      bytes,
      hex(`
        3c 00 00 00  1d 00  00 00  00 00 00 00  00 00 00 00
        07 00 00 00  09 00 00 00  00 00 02 00
        0a 00 02 00  00 00 00 00 00 00 00 00
        14 00 01 00  fd 00 00 00 00 00 00 00 00 00 00 00 00 00 00 02`),
    );
  });

  it("RTM_NEWLINK vxlan with IFLA_LINKINFO / IFLA_INFO_DATA nesting", () => {
    const bytes = encodeLinkAdd({
      kind: "vxlan",
      name: "flannel.1",
      vxlan: { vni: 1, devIndex: 2, local: "192.168.1.1", learning: false, port: 8472, gbp: true },
    });
    assert.deepEqual(
      bytes,
      hex(`
        70 00 00 00  10 00  00 06  00 00 00 00  00 00 00 00
        00 00 00 00  00 00 00 00  00 00 00 00  00 00 00 00
        0e 00 03 00  66 6c 61 6e 6e 65 6c 2e 31 00 00 00
        40 00 12 00
          0a 00 01 00  76 78 6c 61 6e 00 00 00
          30 00 02 00
            08 00 01 00  01 00 00 00
            08 00 03 00  02 00 00 00
            08 00 04 00  c0 a8 01 01
            05 00 07 00  00 00 00 00
            06 00 0f 00  21 18 00 00
            04 00 17 00`),
    );
  });

  it("link set up by name puts IFF_UP in flags and change", () => {
    assert.deepEqual(
      encodeLinkSet("eth0", { up: true }),
      hex(`
        2c 00 00 00  10 00  00 00  00 00 00 00  00 00 00 00
        00 00 00 00  00 00 00 00  01 00 00 00  01 00 00 00
        09 00 03 00  65 74 68 30 00 00 00 00`),
    );
    const down = encodeLinkSet(4, { up: false });
    assert.equal(down.readUInt32LE(16 + 8), 0);
    assert.equal(down.readUInt32LE(16 + 12), 1);
  });

  it("veth carries a whole ifinfomsg inside VETH_INFO_PEER", () => {
    const bytes = encodeLinkAdd({ kind: "veth", name: "a", peer: { name: "b", netnsFd: 11 } });
    const link = attrMap(bytes, 32).get(18)!;
    const data = attrMap(link).get(2)!;
    const peer = attrMap(data).get(1)!;
    assert.equal(peer.length, 16 + 8 + 8);
    assert.deepEqual(peer.subarray(0, 16), Buffer.alloc(16));
    const peerAttrs = attrMap(peer, 16);
    assert.equal(attrString(peerAttrs.get(3)!), "b");
    assert.equal(peerAttrs.get(28)!.readUInt32LE(0), 11);
  });

  it("an IPv4 address sets IFA_LOCAL and IFA_ADDRESS", () => {
    assert.deepEqual(
      encodeAddrAdd({ index: 2, address: "10.1.0.1", prefixlen: 24 }),
      hex(`
        28 00 00 00  14 00  00 06  00 00 00 00  00 00 00 00
        02 18 00 00  02 00 00 00
        08 00 02 00  0a 01 00 01
        08 00 01 00  0a 01 00 01`),
    );
  });
});

describe("reply decoding", () => {
  it("decodes its own vxlan request as a link", () => {
    const link = decodeLink(
      asMessage(
        encodeLinkAdd({
          kind: "vxlan",
          name: "flannel.1",
          mtu: 1450,
          mac: "0a:0b:0c:0d:0e:0f",
          vxlan: { vni: 7, local: "fd00::1", devIndex: 2, port: 4789, learning: true, gbp: false, ttl: 64 },
        }),
      ),
    );
    assert.equal(link.name, "flannel.1");
    assert.equal(link.kind, "vxlan");
    assert.equal(link.mtu, 1450);
    assert.equal(link.mac, "0a:0b:0c:0d:0e:0f");
    assert.deepEqual(link.vxlan, {
      vni: 7,
      local: "fd00::1",
      devIndex: 2,
      port: 4789,
      learning: true,
      ttl: 64,
      gbp: false,
    });
  });

  it("decodes a kernel RTM_NEWLINK for lo", () => {
    // Shaped like the kernel's reply for lo in a fresh namespace, trimmed to a few attributes.
    const bytes = hex(`
      4c 00 00 00  10 00 02 00  01 00 00 00  2a 00 00 00
      00 00 04 03  01 00 00 00  49 00 01 00  00 00 00 00
      07 00 03 00  6c 6f 00 00
      08 00 04 00  00 00 01 00
      05 00 10 00  00 00 00 00
      0a 00 01 00  00 00 00 00 00 00 00 00
      08 00 0d 00  e8 03 00 00`);
    const link = decodeLink(asMessage(bytes));
    assert.equal(link.index, 1);
    assert.equal(link.name, "lo");
    assert.equal(link.type, 772);
    assert.equal(link.mtu, 65536);
    assert.equal(link.up, true);
    assert.equal(link.lowerUp, true);
    assert.equal(link.operstate, "unknown");
    assert.equal(link.mac, "00:00:00:00:00:00");
    assert.equal(link.txqlen, 1000);
    assert.equal(link.kind, undefined);
    assert.equal(decodeEvent(asMessage(bytes))?.kind, "link");
  });

  it("decodes routes, neighbours, fdb entries and addresses", () => {
    const route = decodeRoute(
      asMessage(
        encodeRouteReplace({
          dst: "10.244.4.0/24",
          gateway: "10.244.4.0",
          oif: 3,
          onlink: true,
          priority: 10,
        }),
      ),
    );
    assert.deepEqual(route, {
      family: 4,
      dst: "10.244.4.0/24",
      gateway: "10.244.4.0",
      oif: 3,
      table: 254,
      protocol: 3,
      scope: 0,
      type: 1,
      flags: 4,
      onlink: true,
      priority: 10,
      prefsrc: undefined,
    });
    const neigh = decodeNeigh(
      asMessage(encodeNeighReplace({ index: 4, ip: "fd44::7", mac: "aa:bb:cc:00:11:22" })),
    );
    assert.deepEqual(neigh, {
      family: 6,
      index: 4,
      ip: "fd44::7",
      mac: "aa:bb:cc:00:11:22",
      state: 0x80,
      flags: 0,
      type: 0,
    });
    const fdb = decodeFdb(
      asMessage(encodeFdbAppend({ index: 5, mac: "aa:bb:cc:dd:ee:ff", dst: "192.168.1.2", vni: 3 })),
    );
    assert.equal(fdb?.dst, "192.168.1.2");
    assert.equal(fdb?.vni, 3);
    assert.equal(fdb?.state, 0x80);
    assert.equal(fdb?.flags, 2);
    assert.equal(decodeNeigh(asMessage(encodeFdbAppend({ index: 5, mac: "aa:bb:cc:dd:ee:ff" }))), undefined);
    const addr = decodeAddress(asMessage(encodeAddrAdd({ index: 2, address: "10.1.0.1", prefixlen: 24 })));
    assert.equal(addr?.address, "10.1.0.1");
    assert.equal(addr?.prefixlen, 24);
    assert.equal(addr?.peer, undefined);
  });

  it("decodes a default route without RTA_DST", () => {
    const bytes = hex(`
      24 00 00 00  18 00 02 00  01 00 00 00  00 00 00 00
      0a 00 00 00  fe 03 00 01  00 00 00 00
      08 00 04 00  02 00 00 00`);
    const route = decodeRoute(asMessage(bytes));
    assert.equal(route?.dst, "::/0");
    assert.equal(route?.oif, 2);
    assert.equal(route?.gateway, undefined);
  });

  it("splits a multipart datagram and reads NLMSG_DONE", () => {
    const part = (index: number) =>
      encodeMessage(
        RTM_NEWLINK,
        0x2,
        hex(`00 00 01 00 ${index.toString(16).padStart(2, "0")} 00 00 00 00 00 00 00 00 00 00 00`),
        [stringAttr(3, `d${index}`)],
        9,
      );
    const done = hex("14 00 00 00 03 00 02 00 09 00 00 00 00 00 00 00 00 00 00 00");
    const messages = decodeMessages(Buffer.concat([part(1), part(2), done]));
    assert.deepEqual(
      messages.map((m) => [m.type, m.flags, m.seq]),
      [
        [RTM_NEWLINK, 2, 9],
        [RTM_NEWLINK, 2, 9],
        [NLMSG_DONE, 2, 9],
      ],
    );
    assert.deepEqual(
      messages.slice(0, 2).map((m) => decodeLink(m).name),
      ["d1", "d2"],
    );
    assert.deepEqual(decodeDone(messages[2]!), { errno: 0 });
  });

  it("reads a dump error carried by NLMSG_DONE with ext ack", () => {
    const done = hex(`
      24 00 00 00  03 00 02 02  05 00 00 00  00 00 00 00
      ea ff ff ff
      0d 00 01 00  62 61 64 20 64 75 6d 70 00 00 00 00`);
    const messages = decodeMessages(done);
    assert.equal(messages.length, 1);
    assert.deepEqual(decodeDone(messages[0]!), { errno: 22, extAck: "bad dump" });
  });

  it("decodes NLMSG_ERROR with a capped request and extended ack text", () => {
    const bytes = hex(`
      48 00 00 00  02 00  00 03  07 00 00 00  00 00 00 00
      ef ff ff ff
      3c 00 00 00  18 00 05 06  07 00 00 00  00 00 00 00
      1b 00 01 00  4e 65 78 74 68 6f 70 20 68 61 73 20 69 6e 76 61 6c 69 64 20 67 77 00 00
      08 00 02 00  24 00 00 00`);
    const [message] = decodeMessages(bytes);
    assert.equal(message!.type, NLMSG_ERROR);
    const status = decodeError(message!);
    assert.equal(status.errno, 17);
    assert.equal(status.extAck, "Nexthop has invalid gw");
    assert.equal(status.extAckOffset, 0x24);
    assert.deepEqual(status.request, { len: 0x3c, type: 24, flags: 0x0605, seq: 7, pid: 0 });
  });

  it("skips the echoed request of an uncapped error before the TLVs", () => {
    const bytes = hex(`
      34 00 00 00  02 00  00 02  03 00 00 00  00 00 00 00
      ed ff ff ff
      14 00 00 00  10 00 05 00  03 00 00 00  00 00 00 00  ff ff ff ff
      0b 00 01 00  6e 6f 20 64 65 76 00 00`);
    const status = decodeError(decodeMessages(bytes)[0]!);
    assert.equal(status.errno, 19);
    assert.equal(status.extAck, "no dev");
  });

  it("treats a zero error as an ack", () => {
    const bytes = hex(
      "24 00 00 00 02 00 00 01 05 00 00 00 00 00 00 00 | 00 00 00 00 | 10 00 00 00 10 00 05 00 05 00 00 00 00 00 00 00",
    );
    const status = decodeError(decodeMessages(bytes)[0]!);
    assert.equal(status.errno, 0);
    assert.equal(status.extAck, undefined);
  });

  it("ignores a truncated trailing message", () => {
    const bytes = Buffer.concat([
      hex("14 00 00 00 03 00 02 00 01 00 00 00 00 00 00 00 00 00 00 00"),
      hex("40 00 00 00 10 00"),
    ]);
    assert.equal(decodeMessages(bytes).length, 1);
  });
});

describe("errors", () => {
  it("names errnos the way the kernel does and keeps the ext ack", () => {
    assert.equal(errnoName(17), "EEXIST");
    assert.equal(errnoName(95), "EOPNOTSUPP");
    assert.equal(errnoName(11), "EAGAIN");
    const err = new NetlinkError(17, "route add 10.0.0.0/24", "Route exists");
    assert.equal(err.code, "EEXIST");
    assert.equal(err.errno, 17);
    assert.match(err.message, /^route add 10\.0\.0\.0\/24: EEXIST .*Route exists$/);
  });
});
