// Fuzz: lease keys and values as any host may write them under <prefix>/subnets/ (flannel fuzzes
// pkg/subnet and subnet/etcd), and the lease table every weftd keeps of them.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import {
  formatCIDR,
  type IPNetwork,
  makeNetwork,
  networkContainsNetwork,
  networksOverlap,
  parseCIDR,
} from "../../src/ip/ip-network.js";
import type { Lease } from "../../src/lease/lease.js";
import { decodeLeaseAttrs, encodeLeaseAttrs, LeaseDecodeError } from "../../src/lease/lease-json.js";
import { parseSubnetKey, subnetKey } from "../../src/lease/lease-key.js";
import { type LeaseScope, partitionByScope } from "../../src/subnet/lease-scope.js";
import { decodeRawLease, LeaseTable } from "../../src/subnet/lease-table.js";
import { assertBoundedText, checkProperty, onlyOwnErrors } from "./fuzz-harness.js";
import {
  deepValue,
  fieldValue,
  flatWrongJson,
  jsonDocumentText,
  nearIPv4,
  nearIPv6,
  nearLeaseKey,
  recordOf,
  wrongJson,
} from "./fuzz-inputs.js";

const mac = fc
  .uint8Array({ minLength: 6, maxLength: 6 })
  .map((b) => Array.from(b, (x) => x.toString(16).padStart(2, "0")).join(":"));

function leaseDocument(flat: boolean) {
  const data = fc.oneof(
    recordOf(
      { VNI: fieldValue(fc.integer({ min: 0, max: 0xffffff }), flat), VtepMAC: fieldValue(mac, flat) },
      flat ? flatWrongJson : undefined,
    ),
    flat ? flatWrongJson : wrongJson,
  );
  return recordOf(
    {
      PublicIP: fieldValue(nearIPv4, flat),
      PublicIPv6: fieldValue(fc.oneof(nearIPv6, fc.constant(null)), flat),
      BackendType: fieldValue(fc.constantFrom("vxlan", "host-gw", "udp", ""), flat),
      BackendData: data,
      BackendV6Data: data,
    },
    flat ? flatWrongJson : undefined,
  );
}

/** Lease values shaped like flanneld's, with every field sometimes wrong; deep and huge ones included. */
const leaseValueText = jsonDocumentText(leaseDocument(false));
/** The same without deep nesting or huge strings. */
const flatLeaseValueText = jsonDocumentText(leaseDocument(true), true);
const ALLOWED = [LeaseDecodeError];

describe("fuzz: lease keys", () => {
  it("parseSubnetKey never throws; a key it accepts names the pair its canonical form parses to", (t) => {
    checkProperty(t, { runs: 3000 }, nearLeaseKey, (key) => {
      const pair = onlyOwnErrors([], () => parseSubnetKey(key));
      if (!pair) return;
      // Not always the same text: flannel too reads "10.244.4.0-024" as 10.244.4.0/24 (F5).
      assert.deepEqual(parseSubnetKey(subnetKey(pair.subnet, pair.ipv6Subnet)), pair, key);
      assert.ok(pair.subnet === undefined || pair.subnet.family === 4);
      assert.ok(pair.ipv6Subnet === undefined || pair.ipv6Subnet.family === 6);
    });
  });

  it("every subnet pair's key parses back to the same pair", (t) => {
    const v4 = fc.tuple(fc.integer({ min: 0, max: 2 ** 32 - 1 }), fc.integer({ min: 1, max: 32 }));
    const v6 = fc.tuple(fc.bigInt({ min: 0n, max: (1n << 128n) - 1n }), fc.integer({ min: 0, max: 128 }));
    checkProperty(t, { runs: 2000 }, fc.tuple(fc.option(v4), fc.option(v6)), ([a, b]) => {
      const subnet = a ? makeNetwork({ family: 4, value: BigInt(a[0]) }, a[1]) : undefined;
      const ipv6Subnet = b ? makeNetwork({ family: 6, value: b[0] }, b[1]) : undefined;
      const parsed = parseSubnetKey(subnetKey(subnet, ipv6Subnet));
      if (!subnet && !ipv6Subnet) return assert.equal(parsed, undefined);
      assert.deepEqual(parsed, { subnet, ipv6Subnet }, subnetKey(subnet, ipv6Subnet));
    });
  });
});

describe("fuzz: lease values", () => {
  it("decodeLeaseAttrs throws only LeaseDecodeError, bounded and one line, for flat values", (t) => {
    checkProperty(t, { runs: 2500 }, flatLeaseValueText, (text) => {
      onlyOwnErrors(ALLOWED, () => decodeLeaseAttrs(text));
    });
  });

  it("decodeLeaseAttrs throws only LeaseDecodeError, bounded, for any value (deep, huge, mutated)", (t) => {
    checkProperty(t, { runs: 600 }, leaseValueText, (text) => {
      onlyOwnErrors(ALLOWED, () => decodeLeaseAttrs(text));
    });
  });

  it("a deeply nested field of the wrong type is refused, not a stack overflow (issue 7, defect 1)", (t) => {
    const field = fc.constantFrom("PublicIP", "PublicIPv6", "BackendType", "publicip");
    checkProperty(t, { runs: 150 }, fc.tuple(field, deepValue), ([key, value]) => {
      onlyOwnErrors(ALLOWED, () => decodeLeaseAttrs(`{"${key}":${value.text}}`));
    });
  });

  it("what weft encodes decodes back to the same attributes", (t) => {
    const attrs = fc.record({
      publicIP: fc.option(
        fc.ipV4().filter((ip) => ip !== "0.0.0.0"),
        { nil: undefined },
      ),
      publicIPv6: fc.option(
        fc.ipV6().filter((ip) => !ip.includes(".")),
        { nil: undefined },
      ),
      backendType: fc.option(fc.constantFrom("vxlan", "host-gw"), { nil: undefined }),
      backendData: fc.option(
        fc.jsonValue({ maxDepth: 3 }).filter((v) => v !== null),
        { nil: undefined },
      ),
      backendV6Data: fc.option(
        fc.jsonValue({ maxDepth: 3 }).filter((v) => v !== null),
        { nil: undefined },
      ),
    });
    checkProperty(t, { runs: 1500 }, attrs, (a) => {
      const decoded = decodeLeaseAttrs(encodeLeaseAttrs(a));
      assert.equal(decoded.publicIP, a.publicIP);
      assert.equal(decoded.publicIPv6, a.publicIPv6);
      assert.equal(decoded.backendType, a.backendType);
      assert.deepEqual(
        decoded.backendData,
        a.backendData === undefined ? undefined : JSON.parse(JSON.stringify(a.backendData)),
      );
    });
  });
});

describe("fuzz: the lease table", () => {
  const raw = (value: fc.Arbitrary<string>) =>
    fc.record({ subnetKey: nearLeaseKey, value, reservation: fc.boolean() });

  it("put never throws; its warnings are bounded and one line; a bad value's subnet stays reserved", (t) => {
    checkProperty(t, { runs: 1000 }, fc.array(raw(flatLeaseValueText), { maxLength: 6 }), (raws) => {
      const table = new LeaseTable();
      for (const r of raws)
        assertBoundedText(
          "the lease table's warning",
          onlyOwnErrors([], () => table.put(r)),
        );
      checkReserved(table, raws);
    });
  });

  it("put and replaceAll never throw for any value (deep, huge); warnings are bounded", (t) => {
    checkProperty(t, { runs: 400 }, fc.array(raw(leaseValueText), { maxLength: 6 }), (raws) => {
      const table = new LeaseTable();
      for (const r of raws)
        assertBoundedText(
          "the lease table's warning",
          onlyOwnErrors([], () => table.put(r)),
        );
      for (const w of onlyOwnErrors([], () => table.replaceAll(raws)) ?? [])
        assertBoundedText("the warning", w);
      checkReserved(table, raws);
      for (const r of raws) assert.ok(decodeRawLease(r) !== undefined);
    });
  });
});

describe("fuzz: which peer leases are routed (issue 7, defect 2)", () => {
  const v4Key = fc
    .tuple(
      fc.constantFrom(0x0af40000, 0x0af50000, 0xac1e0000, 0),
      fc.nat(0xffff),
      fc.integer({ min: 8, max: 32 }),
    )
    .map(([top, low, len]) =>
      formatCIDR(makeNetwork({ family: 4, value: BigInt((top | low) >>> 0) }, len)).replace("/", "-"),
    );
  const v6Key = fc
    .tuple(fc.bigInt({ min: 0n, max: (1n << 80n) - 1n }), fc.integer({ min: 40, max: 128 }))
    .map(([low, len]) =>
      formatCIDR(makeNetwork({ family: 6, value: (0xfd44n << 112n) | low }, len)).replace("/", "-"),
    );
  const key = fc.oneof(
    v4Key,
    fc.tuple(v4Key, v6Key).map(([a, b]) => `${a}&${b}`),
    v6Key.map((b) => `0.0.0.0-0&${b}`),
    fc.nat(255).map((n) => `10.244.${n}.0-24`),
  );
  const lease = (k: string): Lease | undefined => {
    const pair = parseSubnetKey(k);
    if (!pair) return undefined;
    const attrs = {
      publicIP: "172.30.0.9",
      publicIPv6: undefined,
      backendType: "vxlan",
      backendData: undefined,
      backendV6Data: undefined,
    };
    return { key: k, ...pair, attrs, reservation: false };
  };
  const own = lease("10.244.83.0-24&fd44:0:0:53::-64")!;
  const scope: LeaseScope = {
    ipv4: { network: parseCIDR("10.244.0.0/16")!, subnetLen: 24 },
    ipv6: { network: parseCIDR("fd44::/48")!, subnetLen: 64 },
    own,
    hostNetworks: [
      { network: parseCIDR("172.30.0.0/24")!, dev: "eth0" },
      { network: parseCIDR("10.244.200.0/22")!, dev: "docker0" },
      { network: parseCIDR("0.0.0.0/0")!, dev: "eth0" },
    ],
  };

  it("a routed peer is a block of SubnetLen inside the Network, apart from ours, the host's and every other peer", (t) => {
    let routedRuns = 0;
    checkProperty(t, { runs: 1500 }, fc.array(key, { maxLength: 30 }), (keys) => {
      const leases = [own, ...keys.map(lease).filter((l): l is Lease => l !== undefined)];
      const table = new Map(leases.map((l) => [l.key, l]));
      const { peers, refused } = onlyOwnErrors([], () => partitionByScope(table.values(), scope))!;
      assert.equal(peers.length + refused.length, table.size - 1);
      for (const { refusal } of refused) assertBoundedText("a refusal", refusal.reason);
      const routed: IPNetwork[] = [];
      if (peers.length > 0) routedRuns++;
      for (const peer of peers) {
        for (const [subnet, family, mine] of [
          [peer.subnet, scope.ipv4!, own.subnet!],
          [peer.ipv6Subnet, scope.ipv6!, own.ipv6Subnet!],
        ] as const) {
          if (!subnet) continue;
          assert.ok(networkContainsNetwork(family.network, subnet), `${peer.key}: outside the Network`);
          assert.equal(subnet.prefixLen, family.subnetLen, `${peer.key}: not a /${family.subnetLen}`);
          assert.ok(!networksOverlap(subnet, mine), `${peer.key}: overlaps our own`);
          for (const h of scope.hostNetworks) {
            if (networkContainsNetwork(h.network, family.network)) continue;
            assert.ok(!networksOverlap(subnet, h.network), `${peer.key}: overlaps ${formatCIDR(h.network)}`);
          }
          for (const other of routed)
            assert.ok(!networksOverlap(subnet, other), `${peer.key}: overlaps another peer`);
          routed.push(subnet);
        }
      }
    });
    assert.ok(routedRuns > 0, "some runs route a peer");
  });
});

/** Every key in flannel's form, valid value or not, keeps its subnets held (so nobody else takes them). */
function checkReserved(table: LeaseTable, raws: ReadonlyArray<{ subnetKey: string }>): void {
  const held = new Set<string>();
  for (const pair of table.heldSubnets()) held.add(subnetKey(pair.subnet, pair.ipv6Subnet));
  const last = new Map(raws.map((r) => [r.subnetKey, r]));
  for (const key of last.keys()) {
    const pair = parseSubnetKey(key);
    // Compared in canonical form: "10.244.4.0-024" holds 10.244.4.0/24 (F5).
    if (pair && !held.has(subnetKey(pair.subnet, pair.ipv6Subnet)))
      assert.fail(`${key} is not held (held: ${[...held].join(" ")})`);
  }
  for (const lease of table.leases.values()) if (lease.subnet) formatCIDR(lease.subnet);
}
