/**
 * The kernel WireGuard path on bytes. This machine's kernel has no WireGuard module (`ip link add x type
 * wireguard` fails with "Unknown device type"), so nothing here reaches a kernel: each expected message
 * is written out by hand from the uapi layouts (linux/genetlink.h, linux/wireguard.h, struct sockaddr_in
 * from linux/in.h) and the order wireguard-tools' ipc-linux.h puts attributes in, nests marked NLA_F_NESTED
 * as libmnl's mnl_attr_nest_start does. Little-endian host assumed (x86-64), as netlink uses host order.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { decodeFamilyId, encodeGetFamily, GENL_ID_CTRL } from "../../src/netlink/genetlink.js";
import { decodeMessages } from "../../src/netlink/message.js";
import {
  decodeDevice,
  encodeGetDevice,
  encodeSetDevice,
  encodeSockaddr,
} from "../../src/netlink/wireguard-genl.js";

const hex = (...parts: string[]) => parts.join("").replace(/\s+/g, "");

describe("generic netlink: nlctrl", () => {
  // Byte for byte what wireguard-tools sends first (seq aside): `strace -f -e trace=sendto -xx wg set nosuch
  // listen-port 1` here shows nlmsg_len=36, nlctrl, NLM_F_REQUEST|NLM_F_ACK and
  // "\x03\x01\x00\x00\x0e\x00\x02\x00wireguard\x00\x00\x00", then "Protocol not supported": the family
  // does not exist on this kernel, so wg sends nothing further and the later messages are checked on layouts.
  it("asks the controller for the wireguard family, as `wg` does", () => {
    assert.equal(GENL_ID_CTRL, 0x10);
    assert.equal(
      encodeGetFamily("wireguard").toString("hex"),
      hex(
        "24000000 1000 0500 00000000 00000000", // nlmsghdr: len 36, GENL_ID_CTRL, REQUEST|ACK
        "03 01 0000", // genlmsghdr: CTRL_CMD_GETFAMILY, version 1
        "0e00 0200 776972656775617264 00 0000", // CTRL_ATTR_FAMILY_NAME "wireguard\0", padding
      ),
    );
  });

  it("reads the family id from CTRL_CMD_NEWFAMILY", () => {
    const reply = Buffer.from(
      hex(
        "2c000000 1000 0000 01000000 00000000",
        "01 02 0000", // CTRL_CMD_NEWFAMILY, version 2
        "0e00 0200 776972656775617264 00 0000", // name
        "0600 0100 1500 0000", // CTRL_ATTR_FAMILY_ID 0x15
      ),
      "hex",
    );
    assert.equal(decodeFamilyId(decodeMessages(reply)[0]!), 0x15);
  });
});

describe("generic netlink: wireguard", () => {
  const KEY1 = "11".repeat(32);
  const KEY2 = "22".repeat(32);

  it("encodes WG_CMD_SET_DEVICE with a private key, a port and one peer", () => {
    const message = encodeSetDevice(0x15, {
      ifname: "flannel-wg",
      privateKey: KEY1,
      listenPort: 51820,
      peers: [
        {
          publicKey: KEY2,
          presharedKey: undefined,
          endpoint: "172.31.0.2:51820",
          keepaliveSeconds: 25,
          allowedIPs: ["10.244.2.0/24"],
        },
      ],
    });
    assert.equal(
      message.toString("hex"),
      hex(
        "c0000000 1500 0500 00000000 00000000", // len 192, family 0x15, REQUEST|ACK
        "01 01 0000", // WG_CMD_SET_DEVICE, WG_GENL_VERSION 1
        "0f00 0200 666c616e6e656c2d7767 00 00", // WGDEVICE_A_IFNAME "flannel-wg\0"
        `2400 0300 ${KEY1}`, // WGDEVICE_A_PRIVATE_KEY
        "0600 0600 6cca 0000", // WGDEVICE_A_LISTEN_PORT 51820 (u16, host order)
        "7000 0880", // WGDEVICE_A_PEERS | NLA_F_NESTED, 112 bytes
        "6c00 0080", // peer nest (type 0 | NESTED), 108 bytes
        `2400 0100 ${KEY2}`, // WGPEER_A_PUBLIC_KEY
        "0800 0300 02000000", // WGPEER_A_FLAGS = WGPEER_F_REPLACE_ALLOWEDIPS
        "1400 0400 0200 ca6c ac1f0002 0000000000000000", // WGPEER_A_ENDPOINT sockaddr_in 172.31.0.2:51820
        "0600 0500 1900 0000", // WGPEER_A_PERSISTENT_KEEPALIVE_INTERVAL 25
        "2000 0980", // WGPEER_A_ALLOWEDIPS | NESTED
        "1c00 0080", // allowed IP nest
        "0600 0100 0200 0000", // WGALLOWEDIP_A_FAMILY AF_INET
        "0800 0200 0af40200", // WGALLOWEDIP_A_IPADDR 10.244.2.0
        "0500 0300 18 000000", // WGALLOWEDIP_A_CIDR_MASK 24
      ),
    );
  });

  it("encodes a peer's removal and the IPv6 sockaddr", () => {
    assert.equal(
      encodeSetDevice(0x15, { ifname: "wg0", removePeers: [KEY2] }).toString("hex"),
      hex(
        "50000000 1500 0500 00000000 00000000",
        "01 01 0000",
        "0800 0200 77673000", // "wg0\0"
        "3400 0880",
        "3000 0080",
        `2400 0100 ${KEY2}`,
        "0800 0300 01000000", // WGPEER_F_REMOVE_ME
      ),
    );
    assert.equal(
      encodeSockaddr("[fd31::2]:51821").toString("hex"),
      hex("0a00 ca6d 00000000 fd310000000000000000000000000002 00000000"), // sockaddr_in6, AF_INET6 = 10
    );
  });

  it("encodes WG_CMD_GET_DEVICE as a dump", () => {
    assert.equal(
      encodeGetDevice(0x15, "wg0").toString("hex"),
      hex("1c000000 1500 0503 00000000 00000000", "00 01 0000", "0800 0200 77673000"),
    );
  });

  it("decodes a GET_DEVICE reply split over two messages into the UAPI's device shape", () => {
    const first = hex(
      "c0000000 1500 0200 01000000 00000000", // len 192, NLM_F_MULTI
      "00 01 0000",
      `2400 0300 ${KEY1}`,
      "0600 0600 6cca 0000",
      "8000 0880",
      "7c00 0080",
      `2400 0100 ${KEY2}`,
      "2000 0400 0a00 ca6d 00000000 fd310000000000000000000000000002 00000000", // [fd31::2]:51821
      "0600 0500 0000 0000",
      "2c00 0980",
      "2800 0080",
      "0600 0100 0a00 0000",
      "1400 0200 fd440000000000020000000000000000", // fd44:0:0:2::
      "0500 0300 40 000000", // /64
    );
    const second = hex(
      "50000000 1500 0200 01000000 00000000",
      "00 01 0000",
      "3c00 0880",
      "3800 0080",
      `2400 0100 ${KEY2}`, // the same peer, continued
      "1000 0980",
      "0c00 0080 0500 0300 18 000000", // an entry with a mask only: skipped
    );
    // The second message's allowed IP lacks family and address, so it adds nothing.
    const messages = decodeMessages(Buffer.from(first + second, "hex"));
    assert.equal(messages.length, 2);
    assert.deepEqual(decodeDevice(messages), {
      privateKey: KEY1,
      listenPort: 51820,
      peers: [
        {
          publicKey: KEY2,
          presharedKey: "0".repeat(64),
          endpoint: "[fd31::2]:51821",
          keepaliveSeconds: 0,
          allowedIPs: ["fd44:0:0:2::/64"],
        },
      ],
    });
  });
});
