/**
 * The native udp forwarder (native/tun.c through src/backend/udp/udp-forwarder.ts) on a real TUN device
 * in a lab host: the route table, TUN -> UDP and UDP -> TUN in flanneld's wire format (one IP packet per
 * UDP payload, TTL decremented), drops counted (TTL, no peer) with ICMP net-unreachable, and the device
 * gone once the forwarder stops. The child process (udp-forwarder-child.ts) does the I/O in the host.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { Lab } from "./lab.js";

const child = join(fileURLToPath(new URL(".", import.meta.url)), "udp-forwarder-child.js");

describe("native udp forwarder on a TUN device", { timeout: 60_000 }, () => {
  let lab: Lab;
  // biome-ignore lint/suspicious/noExplicitAny: the child's JSON report, checked field by field
  let seen: any;

  before(async () => {
    lab = await Lab.create({ hosts: 1, tag: "tun" });
    const host = lab.host(1);
    const result = await lab.exec(host, [process.execPath, child, host.ip], { timeoutMs: 30_000 });
    seen = JSON.parse(result.stdout.trim().split("\n").pop() ?? "{}");
    assert.equal(seen.error, undefined, `child failed: ${seen.error}\n${result.stderr}`);
  });
  after(async () => lab?.destroy());

  it("opens a TUN without packet info, with the queue length asked for", () => {
    assert.match(seen.link, /qlen 2000/);
    assert.match(seen.link, /tun type tun pi off vnet_hdr off persist off/);
    assert.equal(seen.secondOpen, "EBUSY", "a second process must not attach to our flannel0");
  });

  it("keeps a table of disjoint subnets: set, replace, overlap refused, delete", () => {
    assert.equal(seen.overlap, "EEXIST");
    assert.deepEqual(seen.routesBefore, [
      { subnet: "10.99.2.0/24", peer: "172.31.0.1", port: 18286 },
      { subnet: "10.99.3.0/24", peer: "192.0.2.2", port: 2 },
    ]);
    assert.deepEqual(seen.routesAfter, [{ subnet: "10.99.2.0/24", peer: "172.31.0.1", port: 18286 }]);
  });

  it("sends a packet read from the TUN as the whole UDP payload, TTL decremented", () => {
    assert.ok(seen.tunToUdp, "the peer received nothing");
    assert.equal(seen.tunToUdp.src, "10.99.1.0");
    assert.equal(seen.tunToUdp.dst, "10.99.2.9");
    assert.equal(seen.tunToUdp.ttl, 63);
    assert.equal(seen.tunToUdp.headerChecksumOk, true, "the checksum is patched with the TTL");
    assert.equal(seen.tunToUdp.length, seen.tunToUdp.totalLength, "exactly one IP packet");
    assert.equal(seen.tunToUdp.payload, "to-the-peer");
  });

  it("writes a received payload to the TUN, and the kernel's answer goes back to the peer", () => {
    assert.deepEqual(seen.udpToTun, { src: "10.99.1.0", dst: "10.99.2.9", id: 0x7765 });
  });

  it("counts what it drops and answers a packet to no peer's subnet with net-unreachable", () => {
    assert.equal(seen.stats.ttlExpired, 1);
    assert.ok(seen.stats.noRoute >= 1, `noRoute ${seen.stats.noRoute}`);
    assert.equal(seen.stats.unreachableSent, seen.stats.noRoute);
    assert.equal(
      seen.noPeerIcmp,
      "Destination Net Unreachable",
      "ping to a subnet with no peer gets the ICMP error",
    );
    assert.ok(
      seen.noPeerIcmpMs < 2500,
      `the ICMP error came at once, not after ping's wait: ${seen.noPeerIcmpMs} ms`,
    );
    assert.equal(seen.stats.rxPackets, 1, "only the echo request with TTL 64 got through");
    assert.ok(seen.stats.txPackets >= 2, "the datagram and the echo reply");
    assert.equal(seen.stats.sendErrors, 0);
  });

  it("removes the device when it stops, as flanneld's exit does", () => {
    assert.equal(seen.deviceAfterStop, false);
  });
});
