// Fuzz: src/ip (flannel fuzzes pkg/ip): parsing never throws, agrees with Node's own parser, and round-trips.
import assert from "node:assert/strict";
import { isIPv4, isIPv6 } from "node:net";
import { describe, it } from "node:test";
import fc from "fast-check";
import { formatIP, parseIP, parseIPv4, parseIPv6 } from "../../src/ip/ip-address.js";
import {
  countSubnetsInRange,
  formatCIDR,
  makeNetwork,
  networkContains,
  networkContainsNetwork,
  networksOverlap,
  parseCIDR,
  subnetsInRange,
} from "../../src/ip/ip-network.js";
import { checkProperty, onlyOwnErrors } from "./fuzz-harness.js";
import { nearCIDR, nearIP, nearIPv4, nearIPv6 } from "./fuzz-inputs.js";

const NONE = [] as const; // the IP module's parsers answer undefined; they may throw nothing at all

const v4Address = fc
  .integer({ min: 0, max: 2 ** 32 - 1 })
  .map((n) => ({ family: 4 as const, value: BigInt(n) }));
const v6Address = fc
  .bigInt({ min: 0n, max: (1n << 128n) - 1n })
  .map((value) => ({ family: 6 as const, value }));
const anyNetwork = fc
  .oneof(
    fc.tuple(v4Address, fc.integer({ min: 0, max: 32 })),
    fc.tuple(v6Address, fc.integer({ min: 0, max: 128 })),
  )
  .map(([ip, len]) => makeNetwork(ip, len));

describe("fuzz: IP addresses and networks", () => {
  it("parseIPv4 accepts exactly what Node's isIPv4 accepts (both refuse leading zeros)", (t) => {
    checkProperty(t, { runs: 3000 }, nearIPv4, (text) => {
      const parsed = onlyOwnErrors(NONE, () => parseIPv4(text));
      assert.equal(parsed !== undefined, isIPv4(text), text);
    });
  });

  it("parseIPv6 accepts what Node's isIPv6 accepts, zones aside (Go refuses them)", (t) => {
    checkProperty(t, { runs: 3000 }, nearIPv6, (text) => {
      const parsed = onlyOwnErrors(NONE, () => parseIPv6(text));
      assert.equal(parsed !== undefined, isIPv6(text) && !text.includes("%"), text);
    });
  });

  it("parse(format(ip)) gives the same address back, and formatting is canonical", (t) => {
    checkProperty(t, { runs: 2000 }, fc.oneof(v4Address, v6Address), (ip) => {
      const text = formatIP(ip);
      const again = parseIP(text);
      assert.deepEqual(again, ip, text);
      assert.equal(formatIP(again!), text);
    });
  });

  it("parseCIDR never throws on any text; what it returns is masked and formats back to itself", (t) => {
    checkProperty(t, { runs: 3000 }, nearCIDR, (text) => {
      const net = onlyOwnErrors(NONE, () => parseCIDR(text));
      if (!net) return;
      assert.ok(net.prefixLen >= 0 && net.prefixLen <= (net.family === 4 ? 32 : 128), text);
      assert.deepEqual(makeNetwork({ family: net.family, value: net.ip }, net.prefixLen), net);
      assert.deepEqual(parseCIDR(formatCIDR(net)), net, text);
      assert.ok(networkContains(net, { family: net.family, value: net.ip }));
    });
  });

  it("parseIP on arbitrary text never throws and never takes long", (t) => {
    checkProperty(t, { runs: 1500 }, nearIP, (text) => {
      onlyOwnErrors(NONE, () => parseIP(text));
    });
  });

  it("containment and overlap agree with each other for any two networks", (t) => {
    checkProperty(t, { runs: 2000 }, fc.tuple(anyNetwork, anyNetwork), ([a, b]) => {
      const overlap = networksOverlap(a, b);
      assert.equal(overlap, networksOverlap(b, a));
      if (networkContainsNetwork(a, b) && networkContainsNetwork(b, a)) assert.deepEqual(a, b);
      if (a.family !== b.family) assert.equal(overlap, false);
    });
  });

  it("iterating a range is lazy: the first subnets of a huge range come at once, and the count is exact", (t) => {
    checkProperty(t, { runs: 500 }, fc.tuple(anyNetwork, fc.nat({ max: 20 })), ([net, extra]) => {
      const bits = net.family === 4 ? 32 : 128;
      const len = Math.min(bits, net.prefixLen + extra);
      const last = net.ip + (1n << BigInt(bits - net.prefixLen)) - 1n;
      const count = countSubnetsInRange(net.family, net.ip, last, len);
      assert.equal(count, 1n << BigInt(len - net.prefixLen));
      let seen = 0n;
      for (const sub of subnetsInRange(net.family, net.ip, last, len)) {
        assert.ok(networkContainsNetwork(net, sub));
        if (++seen >= 10n) break;
      }
      assert.equal(seen, count < 10n ? count : 10n);
    });
  });
});
