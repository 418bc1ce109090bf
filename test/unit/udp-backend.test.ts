/**
 * The udp backend's pure parts: its config keys, the desired forwarding table and Network route, the
 * registry choosing udp for a config without Backend; and the ICMP net-unreachable the native forwarder
 * builds, checked byte by byte against an independent encoding here.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { configureBackend } from "../../src/backend/registry.js";
import { tunAddon } from "../../src/backend/udp/tun-addon.js";
import { parseUdpConfig, udpMtu } from "../../src/backend/udp/udp-config.js";
import { udpForwardingTable, udpNetworkRoute } from "../../src/backend/udp/udp-desired.js";
import { udpMetricLines } from "../../src/backend/udp/udp-metrics.js";
import { udpPeerShape } from "../../src/backend/udp/udp-peer-kind.js";
import { ConfigError, parseNetworkConfig } from "../../src/config/network-config.js";
import { parseCIDR } from "../../src/ip/ip-network.js";
import type { Lease, LeaseAttrs } from "../../src/lease/lease.js";
import { encodeLeaseAttrs } from "../../src/lease/lease-json.js";
import { RT_SCOPE_UNIVERSE } from "../../src/netlink/constants.js";
import { annotationNames } from "../../src/subnet/kube/kube-annotations.js";
import { nodeToLease } from "../../src/subnet/kube/node-lease.js";

function lease(subnet: string, attrs: Partial<LeaseAttrs> = {}): Lease {
  return {
    key: subnet.replace("/", "-"),
    subnet: parseCIDR(subnet),
    ipv6Subnet: undefined,
    attrs: {
      publicIP: "172.31.0.9",
      publicIPv6: undefined,
      backendType: undefined,
      backendData: undefined,
      backendV6Data: undefined,
      ...attrs,
    },
    reservation: false,
  };
}

describe("udp config", () => {
  it("defaults Port to flannel's 8285 and reads it case-insensitively", () => {
    assert.equal(parseUdpConfig({}).port, 8285);
    assert.equal(parseUdpConfig({ Type: "udp", port: 9000 }).port, 9000);
  });

  it("refuses a bad Port with an error naming the key", () => {
    for (const port of [0, 65536, "8285", 1.5]) {
      assert.throws(
        () => parseUdpConfig({ Type: "udp", Port: port }),
        (err: unknown) => err instanceof ConfigError && /Backend\.Port of the udp backend/.test(err.message),
      );
    }
  });

  it("gives flannel0 the interface MTU minus the 28 bytes of IP and UDP header", () => {
    assert.equal(udpMtu(1500), 1472);
    assert.equal(udpMtu(9000), 8972);
  });

  it("is the backend of a config without Backend, and of Type udp", () => {
    assert.equal(
      configureBackend(parseNetworkConfig('{"Network":"10.244.0.0/16"}')).registration.type,
      "udp",
    );
    const typed = parseNetworkConfig('{"Network":"10.244.0.0/16","Backend":{"Type":"UDP","Port":8285}}');
    assert.equal(configureBackend(typed).registration.type, "udp");
  });

  it("waits for a fixed config when the udp backend cannot carry it", () => {
    const v6only = parseNetworkConfig('{"EnableIPv4":false,"EnableIPv6":true,"IPv6Network":"fd44::/56"}');
    assert.throws(
      () => configureBackend(v6only),
      (err: unknown) => err instanceof ConfigError && /IPv4 only/.test(err.message),
    );
    const badPort = parseNetworkConfig('{"Network":"10.244.0.0/16","Backend":{"Type":"udp","Port":-1}}');
    assert.throws(() => configureBackend(badPort), /Backend\.Port/);
  });

  it("publishes a lease with no BackendType, byte for byte as flanneld", () => {
    const attrs: LeaseAttrs = {
      publicIP: "172.31.0.2",
      publicIPv6: undefined,
      backendType: undefined,
      backendData: undefined,
      backendV6Data: undefined,
    };
    assert.equal(encodeLeaseAttrs(attrs), '{"PublicIP":"172.31.0.2","PublicIPv6":null}');
  });
});

describe("udp in kube mode", () => {
  it("takes a node flanneld annotated for udp (an empty backend-type) as a peer", () => {
    const names = annotationNames("flannel.alpha.coreos.com");
    const config = parseNetworkConfig('{"Network":"10.244.0.0/16"}');
    const annotations = {
      [names.kubeSubnetManager]: "true",
      [names.backendType]: "",
      [names.backendData]: "null",
      [names.publicIP]: "172.31.0.2",
    };
    const node = { name: "n2", resourceVersion: "1", podCIDRs: ["10.244.2.0/24"], annotations };
    const result = nodeToLease(node, names, config);
    assert.ok("lease" in result, `not a lease: ${"skip" in result ? result.skip : "ignored"}`);
    assert.equal(result.lease.attrs.publicIP, "172.31.0.2");
    const vxlanNode = { ...node, annotations: { ...annotations, [names.backendType]: "vxlan" } };
    assert.deepEqual(nodeToLease(vxlanNode, names, config), { ignore: true });
  });
});

describe("udp desired state", () => {
  const own = lease("10.244.1.0/24", { publicIP: "172.31.0.1" });

  it("routes the whole Network through flannel0 with scope universe, as flanneld", () => {
    assert.deepEqual(udpNetworkRoute(parseCIDR("10.244.0.0/16")!, "flannel0"), {
      dst: "10.244.0.0/16",
      gateway: undefined,
      dev: "flannel0",
      onlink: false,
      scope: RT_SCOPE_UNIVERSE,
    });
  });

  it("forwards each peer's subnet to its PublicIP and the configured port, in address order", () => {
    const peers = [
      own,
      lease("10.244.9.0/24", { publicIP: "172.31.0.3" }),
      lease("10.244.2.0/24", { publicIP: "172.31.0.2", backendType: "udp" }),
    ];
    const { entries, problems } = udpForwardingTable(own, peers, 8285);
    assert.deepEqual(entries, [
      { subnet: "10.244.2.0/24", peer: "172.31.0.2", port: 8285 },
      { subnet: "10.244.9.0/24", peer: "172.31.0.3", port: 8285 },
    ]);
    assert.deepEqual(problems, []);
  });

  it("reports, and does not forward to, peers on another backend, without PublicIP, or overlapping", () => {
    const peers = [
      lease("10.244.3.0/24", { backendType: "vxlan" }),
      lease("10.244.4.0/24", { publicIP: undefined }),
      lease("10.244.1.128/25"), // inside our own subnet
      lease("10.244.6.0/23", { publicIP: "172.31.0.6" }),
      lease("10.244.7.0/24", { publicIP: "172.31.0.7" }), // inside the /23 above
      { ...lease("10.244.8.0/24"), subnet: undefined }, // IPv6-only: udp carries IPv4 only
    ];
    const { entries, problems } = udpForwardingTable(own, peers, 8285);
    assert.deepEqual(entries, [{ subnet: "10.244.6.0/23", peer: "172.31.0.6", port: 8285 }]);
    assert.deepEqual(
      problems.map((p) => p.key),
      ["10.244.3.0-24", "10.244.4.0-24", "10.244.1.128-25", "10.244.7.0-24"],
    );
    assert.match(problems[0]!.reason, /vxlan backend/);
    assert.match(problems[1]!.reason, /no PublicIP/);
    assert.match(problems[2]!.reason, /overlaps ours/);
    assert.match(problems[3]!.reason, /overlaps another lease's \(10\.244\.6\.0\/23\)/);
  });

  it("keys forwarding entries by subnet and sees a moved peer as a change", () => {
    const a = { subnet: "10.244.2.0/24", peer: "172.31.0.2", port: 8285 };
    assert.equal(udpPeerShape.key(a), "10.244.2.0/24");
    assert.ok(udpPeerShape.same(a, { ...a }));
    assert.ok(!udpPeerShape.same(a, { ...a, peer: "172.31.0.3" }));
    assert.ok(!udpPeerShape.same(a, { ...a, port: 8286 }));
    assert.equal(udpPeerShape.describe(a), "udp peer 10.244.2.0/24 -> 172.31.0.2:8285");
  });
});

describe("udp metrics", () => {
  it("renders the forwarder's counters, drops by reason", () => {
    const lines = udpMetricLines({
      txPackets: 10,
      txBytes: 1000,
      rxPackets: 7,
      rxBytes: 700,
      noRoute: 3,
      unreachableSent: 2,
      ttlExpired: 1,
      malformed: 4,
      sendErrors: 5,
      tunWriteErrors: 6,
      gso: true,
      tunLost: false,
    });
    for (const line of [
      'weft_udp_packets_total{direction="tx"} 10',
      'weft_udp_bytes_total{direction="rx"} 700',
      'weft_udp_dropped_packets_total{reason="no_peer"} 3',
      'weft_udp_dropped_packets_total{reason="ttl_expired"} 1',
      'weft_udp_dropped_packets_total{reason="not_ipv4"} 4',
      'weft_udp_dropped_packets_total{reason="send_error"} 5',
      'weft_udp_dropped_packets_total{reason="tun_write_error"} 6',
      "weft_udp_unreachable_sent_total 2",
      "# TYPE weft_udp_dropped_packets_total counter",
    ]) {
      assert.ok(lines.includes(line), `missing: ${line}`);
    }
    assert.deepEqual(udpMetricLines(undefined), [], "no forwarder, no lines");
  });
});

/** The internet checksum, written independently of native/tun.c. */
function internetChecksum(bytes: Uint8Array): number {
  let sum = 0;
  for (let i = 0; i < bytes.length; i += 2) sum += (bytes[i]! << 8) | (bytes[i + 1] ?? 0);
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return sum;
}

function ipv4Packet(options: {
  protocol: number;
  payload: number[];
  ihl?: number;
  fragmentOffset?: number;
}): Buffer {
  const ihl = options.ihl ?? 5;
  const header = Buffer.alloc(ihl * 4);
  header[0] = 0x40 | ihl;
  header.writeUInt16BE(header.length + options.payload.length, 2);
  header.writeUInt16BE(0xbeef, 4);
  header.writeUInt16BE(0x4000 | (options.fragmentOffset ?? 0), 6); // DF set
  header[8] = 61;
  header[9] = options.protocol;
  Buffer.from([10, 244, 1, 5]).copy(header, 12);
  Buffer.from([10, 244, 254, 7]).copy(header, 16);
  for (let i = 20; i < header.length; i++) header[i] = 1; // NOP options
  header.writeUInt16BE(0xffff - internetChecksum(header), 10);
  return Buffer.concat([header, Buffer.from(options.payload)]);
}

const TCP_SYN = [0x9c, 0x40, 0x00, 0x50, 0, 0, 0, 1, 0, 0, 0, 0, 0x50, 0x02, 0xff, 0xff, 0, 0, 0, 0];

describe("ICMP net-unreachable (native forwarder)", () => {
  const build = (packet: Uint8Array) => tunAddon().netUnreachable(packet, "10.244.1.0");

  it("answers from flannel0's address to the sender, quoting its header and 8 bytes", () => {
    const offender = ipv4Packet({ protocol: 6, payload: TCP_SYN });
    const reply = build(offender);
    assert.ok(reply);
    assert.equal(reply.length, 20 + 8 + 28);
    assert.equal(reply[0], 0x45, "IPv4, 20-byte header");
    assert.equal(reply.readUInt16BE(2), reply.length, "total length");
    assert.equal(reply.readUInt16BE(6), 0, "no flags, no fragment offset");
    assert.equal(reply[8], 8, "TTL 8, as flanneld");
    assert.equal(reply[9], 1, "ICMP");
    assert.deepEqual([...reply.subarray(12, 16)], [10, 244, 1, 0], "from flannel0's address");
    assert.deepEqual([...reply.subarray(16, 20)], [10, 244, 1, 5], "to the offender's source");
    assert.equal(internetChecksum(reply.subarray(0, 20)), 0xffff, "IP header checksum");
    assert.deepEqual([reply[20], reply[21]], [3, 0], "destination unreachable, net unreachable");
    assert.equal(reply.readUInt32BE(24), 0, "unused word");
    assert.equal(internetChecksum(reply.subarray(20)), 0xffff, "ICMP checksum");
    assert.deepEqual(reply.subarray(28), offender.subarray(0, 28), "the offender's header and 8 bytes");
  });

  it("quotes IP options too, and only as much as the packet has", () => {
    const withOptions = ipv4Packet({ protocol: 17, payload: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10], ihl: 6 });
    const reply = build(withOptions)!;
    assert.equal(reply.length, 28 + 24 + 8);
    assert.deepEqual(reply.subarray(28), withOptions.subarray(0, 32));
    assert.equal(internetChecksum(reply.subarray(20)), 0xffff);
    const short = ipv4Packet({ protocol: 17, payload: [1, 2, 3] });
    const shortReply = build(short)!;
    assert.equal(shortReply.length, 28 + 23);
    assert.equal(internetChecksum(shortReply.subarray(20)), 0xffff, "odd length checksum");
  });

  it("answers an echo request (so ping says so) but never an ICMP error, as RFC 1122 says", () => {
    assert.ok(build(ipv4Packet({ protocol: 1, payload: [8, 0, 0, 0, 0, 1, 0, 1] })));
    assert.equal(build(ipv4Packet({ protocol: 1, payload: [3, 1, 0, 0, 0, 0, 0, 0] })), null);
    assert.equal(build(ipv4Packet({ protocol: 1, payload: [11, 0, 0, 0, 0, 0, 0, 0] })), null);
  });

  it("stays silent for a later fragment and for what is not a well-formed IPv4 header", () => {
    assert.equal(build(ipv4Packet({ protocol: 6, payload: TCP_SYN, fragmentOffset: 185 })), null);
    assert.equal(build(Buffer.alloc(19, 0x45)), null, "shorter than a header");
    const v6 = Buffer.alloc(40);
    v6[0] = 0x60;
    assert.equal(build(v6), null, "IPv6");
    const badIhl = ipv4Packet({ protocol: 6, payload: TCP_SYN });
    badIhl[0] = 0x44;
    assert.equal(build(badIhl), null, "IHL below 5");
  });
});
