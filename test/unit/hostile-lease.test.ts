/**
 * Leases someone else wrote, hostile or careless: each problem stays with its lease (reported once,
 * bounded, its subnet still taken) and the others go on; leases outside the lease scope are refused.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { ExternalInterface } from "../../src/backend/backend.js";
import { HostGwBackend } from "../../src/backend/host-gw/host-gw-backend.js";
import { hostGwDesiredState } from "../../src/backend/host-gw/host-gw-desired.js";
import { PeerStateCache } from "../../src/backend/peer-state-cache.js";
import { readVtepMac } from "../../src/backend/vxlan/vxlan-backend-data.js";
import { vxlanDesiredState } from "../../src/backend/vxlan/vxlan-desired.js";
import { parseNetworkConfig } from "../../src/config/network-config.js";
import { readHostNetworks } from "../../src/daemon/host-networks.js";
import { PeerLeaseFilter } from "../../src/daemon/peer-lease-filter.js";
import { planUnderlayRescue } from "../../src/daemon/underlay-rescue.js";
import { formatCIDR, parseCIDR } from "../../src/ip/ip-network.js";
import type { Lease } from "../../src/lease/lease.js";
import { describeLeaseFault } from "../../src/lease/lease-fault.js";
import { decodeLeaseAttrs, encodeLeaseAttrs, LeaseDecodeError } from "../../src/lease/lease-json.js";
import { parseSubnetKey } from "../../src/lease/lease-key.js";
import type { Address, Link, Route, RtNetlink } from "../../src/netlink/index.js";
import { createKernelKinds } from "../../src/reconcile/kinds/kernel-kinds.js";
import { type RouteEntry, routeShape } from "../../src/reconcile/kinds/route-kind.js";
import { isOurRoute } from "../../src/reconcile/reconciler.js";
import { type DesiredState, entriesOf } from "../../src/reconcile/state-kind.js";
import { checkLeaseScope, type LeaseScope, partitionByScope } from "../../src/subnet/lease-scope.js";

const routesOf = (state: DesiredState): readonly RouteEntry[] => entriesOf(state, routeShape);

import { LeaseTable } from "../../src/subnet/lease-table.js";

/** What must never reach a log line raw: C0 (newline too), DEL, C1, U+2028/U+2029. */
const RAW_CONTROL = /[\u0000-\u001f\u007f-\u009f\u2028\u2029]/;

/** The reproduction: a 10 KB value nesting 5,000 arrays. */
const DEEP = `${"[".repeat(5000)}${"]".repeat(5000)}`;

const ext: ExternalInterface = {
  name: "eth0",
  index: 2,
  mtu: 1500,
  ipv4: "172.30.0.1",
  ipv6: "fd30::1",
  publicIP: "172.30.0.1",
  publicIPv6: "fd30::1",
  connected: [parseCIDR("172.30.0.0/24")!, parseCIDR("fd30::/64")!],
};

function lease(key: string, attrs: Partial<Lease["attrs"]> = {}): Lease {
  const subnets = parseSubnetKey(key);
  assert.ok(subnets, key);
  return {
    key,
    ...subnets,
    attrs: {
      publicIP: "172.30.0.2",
      publicIPv6: undefined,
      backendType: "vxlan",
      backendData: { VNI: 1, VtepMAC: "ca:02:e3:ba:24:33" },
      backendV6Data: undefined,
      ...attrs,
    },
    reservation: false,
  };
}

const own = lease("10.244.83.0-24", {
  publicIP: "172.30.0.1",
  backendData: { VNI: 1, VtepMAC: "1e:b0:d9:82:fa:43" },
});
const good = lease("10.244.4.0-24");
const v4Only = [{ family: 4 as const, device: "flannel.1" }];

describe("a lease value that cannot be read", () => {
  it("a 10 KB nested PublicIP is reported, bounded, and its subnet stays taken (issue reproduction)", () => {
    const table = new LeaseTable();
    const raw = { subnetKey: "10.244.44.0-24", value: `{"PublicIP":${DEEP}}`, reservation: false };
    const warnings = table.replaceAll([
      raw,
      { subnetKey: good.key, value: encodeLeaseAttrs(good.attrs), reservation: false },
    ]);
    assert.equal(warnings.length, 1);
    assert.match(
      warnings[0]!,
      /^ignoring lease 10\.244\.44\.0-24: PublicIP must be a string, not an array of 1;/,
    );
    assert.ok(warnings[0]!.length < 200, warnings[0]);
    assert.deepEqual([...table.leases.keys()], [good.key]);
    assert.deepEqual([...table.heldSubnets()].map((s) => formatCIDR(s.subnet!)).sort(), [
      "10.244.4.0/24",
      "10.244.44.0/24",
    ]);
    assert.equal(table.put(raw), undefined, "reported once");
  });

  it("never throws, whatever the value, and names any unexpected error by type, truncated", () => {
    const table = new LeaseTable();
    for (const value of [
      DEEP,
      `{"PublicIPv6":{"a":${DEEP}}}`,
      `{"BackendType":${DEEP}}`,
      `{"PublicIP":"${"9".repeat(100_000)}"}`,
      "\u0000\n{",
      `{"PublicIP":"1.2.3.4\\nforged log line"}`,
      JSON.stringify({ PublicIP: "a\u2028b\u0085c" }),
      JSON.stringify({ PublicIPv6: "x".repeat(1e6) }),
    ]) {
      const warning = table.put({ subnetKey: "10.244.45.0-24", value, reservation: false });
      assert.ok(warning, value.slice(0, 20));
      assert.ok(warning.length < 300, warning);
      assert.doesNotMatch(warning, RAW_CONTROL, warning);
    }
    const fault = describeLeaseFault(new RangeError(`x${"y".repeat(5000)}`), "reading it");
    assert.match(fault, /^reading it failed \(RangeError: xyyy/);
    assert.ok(fault.length < 200);
    assert.equal(
      describeLeaseFault(new LeaseDecodeError("PublicIP is bad"), "reading it"),
      "PublicIP is bad",
    );
  });

  it("keeps a second key for a subnet (not in flannel's form) from being routed, its subnet still taken", () => {
    const table = new LeaseTable();
    const value = encodeLeaseAttrs(good.attrs);
    const warnings = table.replaceAll([
      { subnetKey: "10.244.4.0-024", value, reservation: false },
      { subnetKey: "10.244.5.0-24&fd44:0:0:5:0:0:0:0-64", value, reservation: false },
      { subnetKey: "10.244.6.0-24", value, reservation: false },
    ]);
    assert.deepEqual(warnings, [
      "ignoring lease 10.244.4.0-024: the key is not in flannel's form, which is 10.244.4.0-24; its subnet stays reserved (fix or delete that key)",
      "ignoring lease 10.244.5.0-24&fd44:0:0:5:0:0:0:0-64: the key is not in flannel's form, which is 10.244.5.0-24&fd44:0:0:5::-64; its subnet stays reserved (fix or delete that key)",
    ]);
    assert.deepEqual([...table.leases.keys()], ["10.244.6.0-24"]);
    assert.equal([...table.heldSubnets()].length, 3);
  });

  it("bounds a hostile key in its warning", () => {
    const table = new LeaseTable();
    const warning = table.put({ subnetKey: `x\n${"k".repeat(10_000)}`, value: "{}", reservation: false });
    assert.ok(warning && warning.length < 300 && !warning.includes("\n"), warning);
    assert.doesNotMatch(warning, /stays reserved/, "a key that is no subnet reserves nothing");
  });

  it("decodes values flanneld writes unchanged", () => {
    const attrs = decodeLeaseAttrs(encodeLeaseAttrs(good.attrs));
    assert.deepEqual(attrs, good.attrs);
  });
});

describe("a lease the backend cannot use", () => {
  it("a nested VtepMAC is this lease's problem, not every peer's (issue reproduction)", () => {
    const hostile = lease("10.244.45.0-24", { backendData: { VNI: 1, VtepMAC: JSON.parse(DEEP) } });
    const { state, problems } = vxlanDesiredState(own, [hostile, good], v4Only, false, ext);
    assert.deepEqual(problems, [
      { key: "10.244.45.0-24", reason: "its VtepMAC an array of 1 is not a MAC address" },
    ]);
    assert.deepEqual(
      routesOf(state).map((r) => r.dst),
      ["10.244.4.0/24"],
    );
  });

  it("contains any error raised while using one lease, keeping nothing of it", () => {
    const boom = () => {
      throw new TypeError(`boom ${"z".repeat(10_000)}`);
    };
    const hostile = lease("10.244.46.0-24", { backendType: "host-gw" });
    Object.defineProperty(hostile.attrs, "publicIP", { get: boom });
    const config = parseNetworkConfig('{"Network":"10.244.0.0/16","Backend":{"Type":"host-gw"}}');
    // desiredState is pure: the netlink handle is never used, so an empty one stands in.
    const netlink = {} as RtNetlink;
    const backend = new HostGwBackend({
      config,
      extIface: ext,
      netlink,
      kernel: createKernelKinds(netlink),
      log: () => undefined,
      warn: () => undefined,
    });
    const hostGwOwn = { ...own, attrs: { ...own.attrs, backendType: "host-gw" } };
    const hostGwGood = { ...good, attrs: { ...good.attrs, backendType: "host-gw" } };
    const cache = new PeerStateCache();
    for (const run of [
      () => backend.desiredState(hostGwOwn, [hostGwGood, hostile]),
      () =>
        cache.collect(own, [hostile, good], (peer) =>
          peer === hostile ? boom() : vxlanDesiredState(own, [peer], v4Only, false, ext),
        ),
    ]) {
      const { state, problems } = run();
      assert.deepEqual(
        routesOf(state).map((r) => r.dst),
        ["10.244.4.0/24"],
      );
      assert.equal(problems.length, 1);
      assert.equal(problems[0]!.key, "10.244.46.0-24");
      assert.match(problems[0]!.reason, /^using it failed \(TypeError: boom z+… \(\d+ characters\)\)$/);
      assert.ok(problems[0]!.reason.length < 200);
    }
  });

  it("refuses group and all-zero VtepMACs, which no VTEP has and the kernel rejects", () => {
    for (const [mac, kind] of [
      ["ff:ff:ff:ff:ff:ff", "broadcast"],
      ["01:00:5e:00:00:01", "multicast"],
      ["33:33:00:00:00:01", "multicast"],
      ["0F:00:00:00:00:01", "multicast"],
      ["00:00:00:00:00:00", "all-zero"],
    ] as const) {
      const result = readVtepMac({ VNI: 1, VtepMAC: mac });
      assert.ok("reason" in result, mac);
      assert.ok(result.reason.includes(kind), result.reason);
    }
    assert.deepEqual(readVtepMac({ VNI: 1, VtepMAC: "CA:02:E3:BA:24:33" }), { mac: "ca:02:e3:ba:24:33" });
    assert.deepEqual(readVtepMac({ VNI: 1, VtepMAC: "02:00:00:00:00:01" }), { mac: "02:00:00:00:00:01" });
    for (const bad of [`aa${"\n".repeat(10_000)}`, "x".repeat(1e6), "a\u2028b\u0085c", JSON.parse(DEEP)]) {
      const result = readVtepMac({ VtepMAC: bad });
      assert.ok(
        "reason" in result && result.reason.length < 200,
        typeof bad === "string" ? bad.slice(0, 10) : "nested",
      );
      assert.doesNotMatch(result.reason, RAW_CONTROL);
    }
  });

  it("reports a lease of another backend type, as flanneld warns, instead of ignoring it silently", () => {
    const udp = lease("10.244.7.0-24", { backendType: undefined });
    const other = lease("10.244.8.0-24", { backendType: `host-gw${"\n".repeat(500)}` });
    const { state, problems } = vxlanDesiredState(own, [udp, other, good], v4Only, false, ext);
    assert.equal(routesOf(state).length, 1);
    assert.deepEqual(
      problems.map((p) => p.key),
      ["10.244.7.0-24", "10.244.8.0-24"],
    );
    assert.match(problems[0]!.reason, /has no BackendType \(flannel's udp backend\), not vxlan/);
    assert.match(problems[1]!.reason, /is a "host-gw\\n\\n.*… \(507 characters\)" lease, not vxlan/);
    const hostGw = hostGwDesiredState(own, [good], [4], ext);
    assert.match(hostGw.problems[0]!.reason, /is a "vxlan" lease, not host-gw/);
  });
});

const network4 = { network: parseCIDR("10.244.0.0/16")!, subnetLen: 24 };
const network6 = { network: parseCIDR("fd44::/56")!, subnetLen: 64 };
const hostNetworks = [
  { network: parseCIDR("172.30.0.0/24")!, dev: "eth0" },
  { network: parseCIDR("10.244.200.0/22")!, dev: "docker0" },
  { network: parseCIDR("fd44:0:0:ff::/64")!, dev: "docker0" },
  { network: parseCIDR("0.0.0.0/0")!, dev: "ppp0" },
];
const scope: LeaseScope = { ipv4: network4, ipv6: undefined, own, hostNetworks };

describe("the lease scope rule", () => {
  it("refuses each hostile key of the issue by the rule it breaks", () => {
    const cases: [string, string, RegExp][] = [
      [
        "172.30.0.0-24",
        "outside-network",
        /its subnet 172\.30\.0\.0\/24 is not inside the Network 10\.244\.0\.0\/16/,
      ],
      ["10.245.1.0-24", "outside-network", /10\.245\.1\.0\/24 is not inside/],
      ["10.244.0.0-16", "overlaps-own", /10\.244\.0\.0\/16 overlaps our own subnet 10\.244\.83\.0\/24/],
      ["10.244.83.128-25", "overlaps-own", /10\.244\.83\.128\/25 overlaps our own subnet/],
      ["10.244.83.0-24&fd44::-64", "overlaps-own", /overlaps our own subnet/],
      [
        "10.244.201.0-24",
        "overlaps-host",
        /overlaps 10\.244\.200\.0\/22, a network this host reaches directly on docker0/,
      ],
      ["10.244.84.0-25", "subnet-length", /10\.244\.84\.0\/25 is not a \/24, the SubnetLen/],
      ["10.244.82.0-23", "overlaps-own", /10\.244\.82\.0\/23 overlaps our own/],
      ["10.244.2.0-23", "subnet-length", /is not a \/24/],
    ];
    for (const [key, rule, reason] of cases) {
      const refusal = checkLeaseScope(lease(key), scope);
      assert.equal(refusal?.rule, rule, key);
      assert.match(refusal.reason, reason);
    }
    assert.equal(checkLeaseScope(good, scope), undefined, "a /24 inside the Network");
    assert.equal(checkLeaseScope(own, scope), undefined, "our own lease");
    assert.equal(checkLeaseScope(lease("10.244.4.0-24&fd99::-64"), scope), undefined, "IPv6 not enabled");
  });

  it("checks IPv6 likewise, and a lease with one bad family is refused whole", () => {
    const dualOwn = lease("10.244.83.0-24&fd44:0:0:53::-64");
    const dual: LeaseScope = { ipv4: network4, ipv6: network6, own: dualOwn, hostNetworks };
    assert.equal(checkLeaseScope(lease("10.244.4.0-24&fd44:0:0:4::-64"), dual), undefined);
    const expect = [
      ["10.244.4.0-24&fd45::-64", "outside-network"],
      ["10.244.4.0-24&fd44::-56", "overlaps-own"],
      ["10.244.4.0-24&fd44:0:0:53:8000::-65", "overlaps-own"],
      ["10.244.4.0-24&fd44:0:0:ff::-64", "overlaps-host"],
      ["10.244.4.0-24&fd44:0:0:4::-80", "subnet-length"],
      ["10.245.4.0-24&fd44:0:0:4::-64", "outside-network"],
    ];
    for (const [key, rule] of expect) assert.equal(checkLeaseScope(lease(key!), dual)?.rule, rule, key);
  });

  it("takes any length inside the Network where the store decides (kube pod CIDRs), but never the whole", () => {
    const kube: LeaseScope = { ...scope, ipv4: { network: network4.network, subnetLen: undefined } };
    assert.equal(checkLeaseScope(lease("10.244.84.0-25"), kube), undefined);
    assert.equal(checkLeaseScope(lease("10.244.8.0-22"), kube), undefined);
    const ownless: LeaseScope = { ...kube, own: lease("0.0.0.0-0&fd44:0:0:53::-64"), hostNetworks: [] };
    assert.equal(checkLeaseScope(lease("10.244.0.0-16"), ownless)?.rule, "subnet-length");
    assert.match(checkLeaseScope(lease("10.244.0.0-16"), ownless)!.reason, /is the whole Network/);
  });

  it("ignores host routes wider than the whole Network, such as an underlay the Network lies in", () => {
    const inUnderlay: LeaseScope = {
      ipv4: { network: parseCIDR("10.0.0.0/8")!, subnetLen: 24 },
      ipv6: undefined,
      own: lease("10.9.0.0-24"),
      hostNetworks: [
        { network: parseCIDR("10.1.0.0/16")!, dev: "eth0" },
        { network: parseCIDR("0.0.0.0/0")!, dev: "tun0" },
      ],
    };
    assert.equal(checkLeaseScope(lease("10.1.5.0-24"), inUnderlay)?.rule, "overlaps-host");
    assert.equal(checkLeaseScope(lease("10.2.5.0-24"), inUnderlay), undefined);
    const wide: LeaseScope = {
      ...inUnderlay,
      hostNetworks: [{ network: parseCIDR("10.0.0.0/7")!, dev: "eth0" }],
    };
    assert.equal(checkLeaseScope(lease("10.1.5.0-24"), wide), undefined);
  });

  it("refuses both leases that claim one subnet, in either family", () => {
    const dualScope: LeaseScope = { ...scope, ipv6: network6, own: lease("10.244.83.0-24&fd44:0:0:53::-64") };
    const plain = lease("10.244.4.0-24");
    const twin = lease("10.244.4.0-24&fd44:0:0:9::-64");
    const v6twin = lease("10.244.5.0-24&fd44:0:0:9::-64");
    const other = lease("10.244.6.0-24&fd44:0:0:6::-64");
    const { peers, refused } = partitionByScope([plain, twin, v6twin, other], dualScope);
    assert.deepEqual(
      peers.map((p) => p.key),
      [other.key],
    );
    assert.deepEqual(
      refused.map((r) => [r.lease.key, r.refusal.rule]),
      [
        [plain.key, "overlaps-peer"],
        [twin.key, "overlaps-peer"],
        [v6twin.key, "overlaps-peer"],
      ],
    );
    assert.match(
      refused[0]!.refusal.reason,
      /^its subnet 10\.244\.4\.0\/24 is also claimed by lease 10\.244\.4\.0-24&fd44:0:0:9::-64; neither is routed/,
    );
    assert.match(refused[2]!.refusal.reason, /fd44:0:0:9::\/64 is also claimed by lease 10\.244\.4\.0-24&/);
    // A family the network does not enable claims nothing.
    const v4 = partitionByScope(
      [lease("10.244.7.0-24&fd44:0:0:1::-64"), lease("10.244.8.0-24&fd44:0:0:1::-64")],
      scope,
    );
    assert.equal(v4.peers.length, 2);
  });

  it("splits a table into routable peers and refusals, leaving our own lease out of both", () => {
    const { peers, refused } = partitionByScope([own, good, lease("10.245.1.0-24")], scope);
    assert.deepEqual(
      peers.map((p) => p.key),
      [good.key],
    );
    assert.deepEqual(
      refused.map((r) => [r.lease.key, r.refusal.rule]),
      [["10.245.1.0-24", "outside-network"]],
    );
  });
});

describe("the daemon's peer lease filter", () => {
  it("reports each refused or unusable lease once, again after its key went, and counts refusals", async () => {
    const warnings: string[] = [];
    const config = parseNetworkConfig('{"Network":"10.244.0.0/16","Backend":{"Type":"vxlan"}}');
    let host = [{ network: parseCIDR("172.30.0.0/24")!, dev: "eth0" }];
    const filter = new PeerLeaseFilter({
      config,
      kubeMode: false,
      readHostNetworks: async () => host,
      warn: (m) => warnings.push(m),
    });
    assert.equal(await filter.refresh(), true);
    assert.equal(await filter.refresh(), false, "unchanged");
    const bad = lease("10.245.1.0-24");
    const table = new Map([own, good, bad, lease("10.244.83.128-25")].map((l) => [l.key, l]));
    assert.deepEqual(
      filter.peers(table, own).map((l) => l.key),
      [good.key],
    );
    filter.peers(table, own);
    filter.report([{ key: good.key, reason: "its VtepMAC is odd" }]);
    filter.report([{ key: good.key, reason: "its VtepMAC is odd" }]);
    assert.deepEqual(warnings, [
      "refusing lease 10.245.1.0-24: its subnet 10.245.1.0/24 is not inside the Network 10.244.0.0/16; it is not routed (fix or delete that key)",
      "refusing lease 10.244.83.128-25: its subnet 10.244.83.128/25 overlaps our own subnet 10.244.83.0/24; it is not routed (fix or delete that key)",
      "not routing to lease 10.244.4.0-24: its VtepMAC is odd",
    ]);
    const metrics = filter.metricLines().join("\n");
    assert.match(metrics, /^weft_leases_refused\{rule="outside-network"\} 1$/m);
    assert.match(metrics, /^weft_leases_refused\{rule="overlaps-own"\} 1$/m);
    assert.match(metrics, /^weft_leases_refused\{rule="overlaps-host"\} 0$/m);
    assert.match(metrics, /^weft_leases_refused_total 2$/m);
    assert.match(metrics, /^weft_leases_unusable 1$/m);

    table.delete(bad.key);
    filter.peers(table, own);
    assert.match(filter.metricLines().join("\n"), /^weft_leases_refused\{rule="outside-network"\} 0$/m);
    table.set(bad.key, bad);
    filter.peers(table, own);
    assert.equal(warnings.length, 4, "told again once the key came back");
    assert.match(filter.metricLines().join("\n"), /^weft_leases_refused_total 3$/m);

    // A bridge appearing on the host takes its network out of scope.
    host = [...host, { network: parseCIDR("10.244.4.0/24")!, dev: "docker0" }];
    assert.equal(await filter.refresh(), true);
    assert.deepEqual(filter.peers(table, own), []);
    assert.match(warnings.at(-1)!, /^refusing lease 10\.244\.4\.0-24: .* on docker0;/);
  });

  it("takes the pod CIDR length as it comes in kube mode, and SubnetLen otherwise", () => {
    const config = parseNetworkConfig('{"Network":"10.244.0.0/16"}');
    const quarter = lease("10.244.84.0-26");
    for (const kubeMode of [true, false]) {
      const filter = new PeerLeaseFilter({
        config,
        kubeMode,
        readHostNetworks: async () => [],
        warn: () => {},
      });
      const peers = filter.peers(new Map([[quarter.key, quarter]]), own);
      assert.equal(peers.length, kubeMode ? 1 : 0, `kube mode ${kubeMode}`);
    }
  });

  it("keeps the last host networks when reading them fails", async () => {
    const warnings: string[] = [];
    const config = parseNetworkConfig('{"Network":"10.244.0.0/16"}');
    let fail = false;
    const filter = new PeerLeaseFilter({
      config,
      kubeMode: false,
      readHostNetworks: async () => {
        if (fail) throw new Error("netlink is gone");
        return [{ network: parseCIDR("10.244.4.0/24")!, dev: "docker0" }];
      },
      warn: (m) => warnings.push(m),
    });
    await filter.refresh();
    fail = true;
    assert.equal(await filter.refresh(), false);
    assert.match(warnings[0]!, /cannot read the host's routes \(netlink is gone\)/);
    assert.deepEqual(filter.peers(new Map([[good.key, good]]), own), []);
  });
});

describe("route ownership", () => {
  it("claims IPv6 Network routes on a shared device but not other ones", () => {
    const v6scope = {
      networks: [parseCIDR("10.244.0.0/16")!, parseCIDR("fd44::/56")!],
      ownSubnets: [parseCIDR("fd44:0:0:53::/64")!],
      routeDevices: ["eth0"],
      ownedDevices: [],
    };
    const route = (dst: string) => ({ dst, gateway: "fd30::2", dev: "eth0", onlink: false });
    assert.ok(isOurRoute(route("fd44:0:0:4::/64"), v6scope));
    assert.ok(isOurRoute(route("fd44::/56"), v6scope));
    assert.ok(!isOurRoute(route("fd44:0:0:53::/64"), v6scope), "own subnet");
    assert.ok(!isOurRoute(route("fd30::/64"), v6scope), "the underlay");
    assert.ok(!isOurRoute(route("::/0"), v6scope), "default route");
  });
});

describe("the host's own networks", () => {
  it("are its addresses' networks and link routes off weft's devices, and the external interface's", async () => {
    const route = (dst: string, oif: number, scope: number, gateway?: string) => ({
      family: dst.includes(":") ? 6 : 4,
      dst,
      gateway,
      oif,
      table: 254,
      protocol: 2,
      scope,
      type: 1,
      flags: 0,
      onlink: false,
      priority: undefined,
      prefsrc: undefined,
    });
    const address = (index: number, address: string, prefixlen: number, scope = 0) => ({
      index,
      address,
      prefixlen,
      scope,
    });
    const netlink = {
      addrList: async () => [
        address(2, "172.30.0.1", 24),
        address(3, "192.168.5.1", 24),
        address(4, "10.244.83.0", 32),
        address(3, "10.9.9.9", 32),
        address(2, "fe80::1", 64, 253),
      ],
      linkList: async () => [
        { index: 2, name: "eth0" },
        { index: 3, name: "docker0" },
        { index: 4, name: "flannel.1" },
      ],
      routeList: async (family: 4 | 6) =>
        family === 4
          ? [
              route("172.30.0.0/24", 2, 253),
              route("172.17.0.0/16", 3, 253),
              route("10.244.9.0/24", 4, 253),
              route("10.244.4.0/24", 4, 0, "10.244.4.0"),
              route("0.0.0.0/0", 2, 0, "172.30.0.254"),
            ]
          : [route("fe80::/64", 2, 253)],
    };
    const found = await readHostNetworks(netlink as unknown as RtNetlink, ext, ["flannel.1"]);
    assert.deepEqual(
      found.map((h) => `${formatCIDR(h.network)} ${h.dev}`),
      [
        "172.30.0.0/24 eth0",
        "fd30::/64 eth0",
        "192.168.5.0/24 docker0",
        "172.17.0.0/16 docker0",
        "fe80::/64 eth0",
      ],
    );
  });
});

describe("routes an older weft left over the host's own networks", () => {
  const link = (index: number, name: string, kind?: string) => ({ index, name, kind }) as unknown as Link;
  const addr = (index: number, address: string, prefixlen: number) =>
    ({ index, address, prefixlen, scope: 0, family: address.includes(":") ? 6 : 4 }) as unknown as Address;
  const route = (dst: string, oif: number, protocol: number, gateway?: string) =>
    ({ dst, oif, protocol, gateway, table: 254, type: 1, scope: gateway ? 0 : 253 }) as unknown as Route;
  const links = [
    link(2, "eth0", "veth"),
    link(3, "cni0", "bridge"),
    link(4, "flannel.1", "vxlan"),
    link(5, "flannel.1x", "vxlan"),
  ];
  const addresses = [
    addr(2, "172.30.0.1", 24),
    addr(3, "10.244.83.1", 24),
    addr(4, "10.244.83.0", 32),
    addr(6, "10.96.0.1", 32),
  ];

  it("removes a weft vxlan route over a host address and restores the prefix route it replaced", () => {
    const plan = planUnderlayRescue(links, addresses, [
      route("172.30.0.0/24", 4, 3, "172.30.0.0"),
      route("10.244.83.0/24", 3, 2),
      route("10.244.4.0/24", 4, 3, "10.244.4.0"),
      route("10.96.0.0/24", 4, 3, "10.96.0.0"),
      route("172.30.0.0/16", 5, 3, "172.30.0.0"),
      route("0.0.0.0/0", 2, 3, "172.30.0.254"),
    ]);
    assert.deepEqual(
      plan.remove.map((r) => r.dst),
      ["172.30.0.0/24"],
      "peer routes, /32 addresses and devices that are not weft's are left alone",
    );
    assert.deepEqual(plan.restore, [
      { dst: "172.30.0.0/24", oif: 2, scope: 253, protocol: 2, table: 254, prefsrc: "172.30.0.1" },
    ]);
  });

  it("restores nothing the kernel still has, and removes a wider or narrower cover too", () => {
    const plan = planUnderlayRescue(links, addresses, [
      route("172.30.0.0/16", 4, 3, "172.30.0.0"),
      route("10.244.83.0/25", 4, 3, "10.244.83.0"),
      route("172.30.0.0/24", 2, 2),
      route("10.244.83.0/24", 3, 2),
    ]);
    assert.deepEqual(
      plan.remove.map((r) => r.dst),
      ["172.30.0.0/16", "10.244.83.0/25"],
    );
    assert.deepEqual(plan.restore, []);
    assert.deepEqual(
      planUnderlayRescue(links, addresses, [route("172.30.0.0/24", 4, 2)]).remove,
      [],
      "kernel routes",
    );
  });
});
