/**
 * The ipip backend's pure parts: the RTM_NEWLINK for flannel.ipip compared field for field with what
 * iproute2 sends for the same device (test/fixtures/ipip-link-add.hex, captured with strace), the
 * decoded device, the desired routes, DirectRouting, config errors.
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { describe, it } from "node:test";
import { IPIP_DEVICE, parseIpipConfig } from "../../src/backend/ipip/ipip-config.js";
import { ipipDesiredState } from "../../src/backend/ipip/ipip-desired.js";
import { ipipDifferences, ipipLinkSpec } from "../../src/backend/ipip/ipip-device.js";
import { configureBackend } from "../../src/backend/registry.js";
import { ConfigError, parseNetworkConfig } from "../../src/config/network-config.js";
import { parseCIDR } from "../../src/ip/ip-network.js";
import type { Lease, LeaseAttrs } from "../../src/lease/lease.js";
import { decodeAttrs, encodeAttrs, nestAttr, stringAttr } from "../../src/netlink/attributes.js";
import {
  IFLA_INFO_DATA,
  IFLA_INFO_KIND,
  IFLA_LINKINFO,
  NLM_F_ACK,
  NLM_F_REQUEST,
} from "../../src/netlink/constants.js";
import { iptunAttrs } from "../../src/netlink/iptun.js";
import { decodeLink, encodeIfinfomsg, encodeLinkAdd } from "../../src/netlink/link.js";
import { decodeMessages, messageFlags, setFlags } from "../../src/netlink/message.js";

const fixtureUrl = new URL("../../../test/fixtures/ipip-link-add.hex", import.meta.url);

function fixtureBytes(): Buffer {
  const hex = readFileSync(fixtureUrl, "utf8")
    .split("\n")
    .filter((line) => !line.startsWith("#"))
    .join(" ")
    .replace(/\s+/g, "");
  return Buffer.from(hex, "hex");
}

/** Attributes as [type, hex or nested list], recursively for the nests we know. */
function tree(buf: Uint8Array, nested: ReadonlySet<number>): unknown[] {
  return decodeAttrs(buf).map((a) =>
    nested.has(a.type) ? [a.type, tree(a.value, nested)] : [a.type, a.value.toString("hex")],
  );
}

function lease(
  subnet: string,
  publicIP: string | undefined,
  backendType: string | undefined = "ipip",
): Lease {
  const attrs: LeaseAttrs = {
    publicIP,
    publicIPv6: undefined,
    backendType,
    backendData: undefined,
    backendV6Data: undefined,
  };
  return {
    key: subnet.replace("/", "-"),
    subnet: parseCIDR(subnet),
    ipv6Subnet: undefined,
    attrs,
    reservation: false,
  };
}

const ext = {
  name: "eth0",
  index: 2,
  mtu: 1500,
  ipv4: "172.31.0.1",
  ipv6: undefined,
  publicIP: "172.31.0.1",
  publicIPv6: undefined,
  connected: [parseCIDR("172.31.0.0/24")!],
};

describe("ipip netlink request", () => {
  it("is the bytes iproute2 sends for the same device, apart from seq and pid", () => {
    const reference = fixtureBytes();
    assert.equal(reference.length, reference.readUInt32LE(0), "the fixture holds one whole message");
    const ours = encodeLinkAdd(ipipLinkSpec({ local: "172.31.0.1", mtu: 1480 }));
    // The socket adds REQUEST|ACK when it sends, as iproute2 does.
    setFlags(ours, messageFlags(ours) | NLM_F_REQUEST | NLM_F_ACK);
    const [mine] = decodeMessages(ours);
    const [theirs] = decodeMessages(reference);
    assert.ok(mine && theirs);
    assert.equal(mine.type, theirs.type, "message type");
    assert.equal(mine.flags, theirs.flags, "flags");
    assert.equal(
      mine.payload.subarray(0, 16).toString("hex"),
      theirs.payload.subarray(0, 16).toString("hex"),
      "ifinfomsg",
    );
    const nests = new Set([IFLA_LINKINFO, IFLA_INFO_DATA]);
    assert.deepEqual(tree(mine.payload.subarray(16), nests), tree(theirs.payload.subarray(16), nests));
    // And so the whole message, with seq and pid zeroed.
    const zeroed = Buffer.from(reference);
    zeroed.fill(0, 8, 16);
    assert.equal(ours.toString("hex"), zeroed.toString("hex"));
  });

  it("decodes the kernel's description of an ipip device", () => {
    const header = encodeIfinfomsg(7, 1, 0);
    const attrs = encodeAttrs([
      stringAttr(3, IPIP_DEVICE),
      nestAttr(IFLA_LINKINFO, [
        stringAttr(IFLA_INFO_KIND, "ipip"),
        nestAttr(
          IFLA_INFO_DATA,
          iptunAttrs({ local: "172.31.0.1", remote: "0.0.0.0", ttl: 0, tos: 0, pmtudisc: false }),
        ),
      ]),
    ]);
    const payload = Buffer.concat([header, attrs]);
    const link = decodeLink({ type: 16, flags: 0, seq: 0, pid: 0, payload });
    assert.equal(link.kind, "ipip");
    // 0.0.0.0 is the kernel's "any" remote.
    assert.deepEqual(link.iptun, { local: "172.31.0.1", ttl: 0, tos: 0, pmtudisc: false });
    assert.deepEqual(ipipDifferences({ ...link, mtu: 1480 }, { local: "172.31.0.1", mtu: 1480 }), []);
    assert.deepEqual(ipipDifferences({ ...link, mtu: 1480 }, { local: "172.31.0.2", mtu: 1480 }), [
      "local address 172.31.0.1, expected 172.31.0.2",
    ]);
    assert.deepEqual(ipipDifferences({ ...link, kind: "vxlan" }, { local: "172.31.0.1", mtu: 1480 }), [
      "it is a vxlan device, not ipip",
    ]);
  });
});

describe("ipip desired state", () => {
  const own = lease("10.244.1.0/24", "172.31.0.1");
  it("routes each peer's subnet onlink via its PublicIP through flannel.ipip", () => {
    const { state, problems } = ipipDesiredState(
      own,
      [own, lease("10.244.2.0/24", "172.31.5.2"), lease("10.244.3.0/24", "172.31.0.3")],
      false,
      ext,
    );
    assert.deepEqual(problems, []);
    assert.deepEqual(state.route, [
      { dst: "10.244.2.0/24", gateway: "172.31.5.2", dev: IPIP_DEVICE, onlink: true },
      { dst: "10.244.3.0/24", gateway: "172.31.0.3", dev: IPIP_DEVICE, onlink: true },
    ]);
  });

  it("with DirectRouting, routes a peer on our L2 via the external interface", () => {
    const { state } = ipipDesiredState(
      own,
      [lease("10.244.2.0/24", "172.31.5.2"), lease("10.244.3.0/24", "172.31.0.3")],
      true,
      ext,
    );
    assert.deepEqual(state.route, [
      { dst: "10.244.2.0/24", gateway: "172.31.5.2", dev: IPIP_DEVICE, onlink: true },
      { dst: "10.244.3.0/24", gateway: "172.31.0.3", dev: "eth0", onlink: false },
    ]);
  });

  it("leaves out, with a reason, a lease of another backend or without PublicIP", () => {
    const { state, problems } = ipipDesiredState(
      own,
      [lease("10.244.2.0/24", "172.31.5.2", "vxlan"), lease("10.244.3.0/24", undefined)],
      false,
      ext,
    );
    assert.deepEqual(state.route, []);
    assert.equal(problems.length, 2);
    assert.match(problems[0]!.reason, /"vxlan" lease, not ipip/);
    assert.match(problems[1]!.reason, /no PublicIP/);
  });
});

describe("ipip config", () => {
  it("reads DirectRouting, default false", () => {
    assert.deepEqual(parseIpipConfig({}), { directRouting: false });
    assert.deepEqual(parseIpipConfig({ directrouting: true }), { directRouting: true });
  });
  it("names a bad key", () => {
    const config = parseNetworkConfig(
      '{"Network":"10.244.0.0/16","Backend":{"Type":"ipip","DirectRouting":"yes"}}',
    );
    assert.throws(
      () => configureBackend(config),
      (err: unknown) =>
        err instanceof ConfigError && /Backend\.DirectRouting of the ipip backend/.test(err.message),
    );
  });
  it("refuses an IPv6-only network (ipip is IPv4 only)", () => {
    const config = parseNetworkConfig(
      '{"EnableIPv4":false,"EnableIPv6":true,"IPv6Network":"fd44::/56","Backend":{"Type":"ipip"}}',
    );
    assert.throws(() => configureBackend(config), /ipip backend carries IPv4 only/);
  });
  it("is registered", () => {
    const config = parseNetworkConfig('{"Network":"10.244.0.0/16","Backend":{"Type":"IPIP"}}');
    assert.equal(configureBackend(config).registration.type, "ipip");
  });
});
