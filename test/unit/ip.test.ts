import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { formatIP, parseIP, parseIPv4, parseIPv6 } from "../../src/ip/ip-address.js";
import {
  countSubnetsInRange,
  formatCIDR,
  networkContains,
  networkContainsNetwork,
  networksOverlap,
  nextNetwork,
  parseCIDR,
  subnetsInRange,
} from "../../src/ip/ip-network.js";

describe("IP addresses", () => {
  it("parses and formats IPv4", () => {
    assert.equal(parseIPv4("10.244.63.1")?.value, 0x0af43f01n);
    assert.equal(formatIP(parseIP("172.31.0.2")!), "172.31.0.2");
    for (const bad of ["10.244.63", "10.244.63.256", "10.244.063.1", "a.b.c.d", "1.2.3.4.5", ""]) {
      assert.equal(parseIPv4(bad), undefined, bad);
    }
  });

  it("formats IPv6 as Go does (first longest zero run compressed, single zeros kept)", () => {
    const cases: Array<[string, string]> = [
      ["fd44:0:0:3c:0:0:0:0", "fd44:0:0:3c::"],
      ["fd44::3c:0:0:0:0", "fd44:0:0:3c::"],
      ["::", "::"],
      ["::1", "::1"],
      ["fd31::1", "fd31::1"],
      ["2001:db8:0:1:0:0:1:1", "2001:db8:0:1::1:1"],
      ["2001:db8:0:0:1:0:0:1", "2001:db8::1:0:0:1"],
      ["1:0:2:0:3:0:4:0", "1:0:2:0:3:0:4:0"],
      ["FD44::ABCD", "fd44::abcd"],
      ["::ffff:1.2.3.4", "::ffff:102:304"],
    ];
    for (const [input, expected] of cases) assert.equal(formatIP(parseIPv6(input)!), expected, input);
    for (const bad of [":::", "1::2::3", "12345::", "1:2:3:4:5:6:7:8:9", "g::1", "fe80::1%eth0"]) {
      assert.equal(parseIPv6(bad), undefined, bad);
    }
  });
});

describe("IP networks", () => {
  it("parses CIDR and masks host bits like net.ParseCIDR", () => {
    assert.equal(formatCIDR(parseCIDR("10.244.63.1/24")!), "10.244.63.0/24");
    assert.equal(formatCIDR(parseCIDR("fd44:0:0:3c::1/64")!), "fd44:0:0:3c::/64");
    assert.equal(parseCIDR("10.0.0.0/33"), undefined);
    assert.equal(parseCIDR("10.0.0.0"), undefined);
    assert.equal(parseCIDR("fd44::/129"), undefined);
  });

  it("answers contains and overlap for both families", () => {
    const net = parseCIDR("10.244.0.0/16")!;
    assert.ok(networkContains(net, parseIP("10.244.255.255")!));
    assert.ok(!networkContains(net, parseIP("10.245.0.0")!));
    assert.ok(!networkContains(net, parseIP("fd44::1")!));
    assert.ok(networkContainsNetwork(net, parseCIDR("10.244.3.0/24")!));
    assert.ok(!networkContainsNetwork(parseCIDR("10.244.3.0/24")!, net));
    assert.ok(networksOverlap(parseCIDR("10.244.3.0/24")!, net));
    assert.ok(!networksOverlap(parseCIDR("10.244.3.0/24")!, parseCIDR("10.244.4.0/24")!));
    assert.ok(networkContainsNetwork(parseCIDR("fd44::/56")!, parseCIDR("fd44:0:0:3c::/64")!));
  });

  it("steps to the next subnet and iterates a range", () => {
    assert.equal(formatCIDR(nextNetwork(parseCIDR("10.244.255.0/24")!)), "10.245.0.0/24");
    assert.equal(formatCIDR(nextNetwork(parseCIDR("fd44:0:0:ff::/64")!)), "fd44:0:0:100::/64");
    const first = parseIP("10.244.1.0")!.value;
    const last = parseIP("10.244.4.0")!.value;
    assert.deepEqual([...subnetsInRange(4, first, last, 24)].map(formatCIDR), [
      "10.244.1.0/24",
      "10.244.2.0/24",
      "10.244.3.0/24",
      "10.244.4.0/24",
    ]);
    assert.equal(countSubnetsInRange(4, first, last, 24), 4n);
    assert.equal(countSubnetsInRange(6, parseIP("fd44::")!.value, parseIP("fd44:0:0:ff::")!.value, 64), 256n);
  });
});
