/** Backends' desired kernel state and the reconciler's diff, as data. */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { ExternalInterface } from "../../src/backend/backend.js";
import { hostGwDesiredState } from "../../src/backend/host-gw/host-gw-desired.js";
import { vxlanDesiredState } from "../../src/backend/vxlan/vxlan-desired.js";
import { parseCIDR } from "../../src/ip/ip-network.js";
import type { Lease } from "../../src/lease/lease.js";
import { fdbShape } from "../../src/reconcile/kinds/fdb-kind.js";
import { neighShape } from "../../src/reconcile/kinds/neigh-kind.js";
import { type RouteEntry, routeShape } from "../../src/reconcile/kinds/route-kind.js";
import { isOurRoute } from "../../src/reconcile/reconciler.js";
import { diffEntries } from "../../src/reconcile/state-diff.js";
import { type DesiredState, entriesOf } from "../../src/reconcile/state-kind.js";

const routes = (state: DesiredState) => entriesOf(state, routeShape);
const neighs = (state: DesiredState) => entriesOf(state, neighShape);
const fdbs = (state: DesiredState) => entriesOf(state, fdbShape);

const ext: ExternalInterface = {
  name: "eth0",
  index: 2,
  mtu: 1500,
  ipv4: "172.31.0.1",
  ipv6: "fd31::1",
  publicIP: "172.31.0.1",
  publicIPv6: "fd31::1",
  connected: [parseCIDR("172.31.0.0/16")!, parseCIDR("fd31::/64")!],
};

function lease(
  key: string,
  publicIP: string,
  type: string,
  mac?: string,
  v6?: { subnet: string; ip: string; mac: string },
): Lease {
  const [v4] = key.split("&");
  return {
    key,
    subnet: parseCIDR(v4!.replace(/-(\d+)$/, "/$1")),
    ipv6Subnet: v6 ? parseCIDR(v6.subnet) : undefined,
    attrs: {
      publicIP,
      publicIPv6: v6?.ip,
      backendType: type,
      backendData: mac ? { VNI: 1, VtepMAC: mac } : undefined,
      backendV6Data: v6 ? { VNI: 1, VtepMAC: v6.mac } : undefined,
    },
    reservation: false,
  };
}

const own = lease("10.244.63.0-24", "172.31.0.1", "vxlan", "1e:b0:d9:82:fa:43");
const peer = lease("10.244.4.0-24", "172.31.0.2", "vxlan", "ca:02:e3:ba:24:33");

describe("vxlan desired state", () => {
  it("is a neighbour, an FDB entry and an onlink route per peer, as in the reference", () => {
    const { state, problems } = vxlanDesiredState(
      own,
      [own, peer],
      [{ family: 4, device: "flannel.1" }],
      false,
      ext,
    );
    assert.deepEqual(problems, []);
    assert.deepEqual(neighs(state), [{ dev: "flannel.1", ip: "10.244.4.0", mac: "ca:02:e3:ba:24:33" }]);
    assert.deepEqual(fdbs(state), [{ dev: "flannel.1", mac: "ca:02:e3:ba:24:33", dst: "172.31.0.2" }]);
    assert.deepEqual(routes(state), [
      { dst: "10.244.4.0/24", gateway: "10.244.4.0", dev: "flannel.1", onlink: true },
    ]);
  });

  it("routes directly via the peer host with DirectRouting on the same L2, and encapsulates otherwise", () => {
    const far = lease("10.244.9.0-24", "192.168.9.9", "vxlan", "aa:bb:cc:dd:ee:ff");
    const { state } = vxlanDesiredState(own, [peer, far], [{ family: 4, device: "flannel.4096" }], true, ext);
    assert.deepEqual(routes(state), [
      { dst: "10.244.4.0/24", gateway: "172.31.0.2", dev: "eth0", onlink: false },
      { dst: "10.244.9.0/24", gateway: "10.244.9.0", dev: "flannel.4096", onlink: true },
    ]);
    assert.equal(neighs(state).length, 1);
  });

  it("programs the IPv6 side on flannel-v6.<VNI> from BackendV6Data", () => {
    const dual = lease("10.244.89.0-24&fd44:0:0:36::-64", "172.31.0.2", "vxlan", "6e:00:e9:78:8a:f3", {
      subnet: "fd44:0:0:36::/64",
      ip: "fd31::2",
      mac: "ae:36:4f:50:76:de",
    });
    const families = [
      { family: 4 as const, device: "flannel.1" },
      { family: 6 as const, device: "flannel-v6.1" },
    ];
    const { state } = vxlanDesiredState(own, [dual], families, false, ext);
    assert.deepEqual(routes(state)[1], {
      dst: "fd44:0:0:36::/64",
      gateway: "fd44:0:0:36::",
      dev: "flannel-v6.1",
      onlink: true,
    });
    assert.deepEqual(fdbs(state)[1], { dev: "flannel-v6.1", mac: "ae:36:4f:50:76:de", dst: "fd31::2" });
  });

  it("skips peers of another backend and unusable ones, reporting each instead of failing", () => {
    const hostgw = lease("10.244.5.0-24", "172.31.0.3", "host-gw");
    const broken = {
      ...peer,
      key: "10.244.6.0-24",
      subnet: parseCIDR("10.244.6.0/24"),
      attrs: { ...peer.attrs, backendData: { VNI: 1, VtepMAC: "zz" } },
    };
    const { state, problems } = vxlanDesiredState(
      own,
      [hostgw, broken],
      [{ family: 4, device: "flannel.1" }],
      false,
      ext,
    );
    assert.equal(routes(state).length, 0);
    assert.deepEqual(problems, [
      {
        key: "10.244.5.0-24",
        reason: 'it is a "host-gw" lease, not vxlan; every host of a network must use the same backend',
      },
      { key: "10.244.6.0-24", reason: 'its VtepMAC "zz" is not a MAC address' },
    ]);
  });
});

describe("host-gw desired state", () => {
  it("routes each peer subnet via the peer host, and refuses peers off our L2", () => {
    const near = lease("10.244.63.0-24", "172.31.0.2", "host-gw");
    const far = lease("10.244.7.0-24", "10.9.9.9", "host-gw");
    const { state, problems } = hostGwDesiredState(
      lease("10.244.87.0-24", "172.31.0.1", "host-gw"),
      [near, far],
      [4],
      ext,
    );
    assert.deepEqual(routes(state), [
      { dst: "10.244.63.0/24", gateway: "172.31.0.2", dev: "eth0", onlink: false },
    ]);
    assert.equal(problems.length, 1);
    assert.match(problems[0]!.reason, /not on the same network as eth0/);
  });
});

describe("reconcile diff", () => {
  const scope = {
    networks: [parseCIDR("10.244.0.0/16")!],
    ownSubnets: [parseCIDR("10.244.63.0/24")!],
    routeDevices: ["flannel.1", "eth0"],
    ownedDevices: ["flannel.1"],
  };

  it("owns every route on its own devices, and only Network routes on a shared one", () => {
    const route = (dst: string, dev: string) => ({ dst, gateway: undefined, dev, onlink: false });
    assert.ok(isOurRoute(route("10.244.4.0/24", "flannel.1"), scope));
    assert.ok(isOurRoute(route("10.244.4.0/24", "eth0"), scope));
    assert.ok(!isOurRoute(route("10.244.63.0/24", "eth0"), scope), "own subnet");
    assert.ok(!isOurRoute(route("10.244.4.0/24", "cni0"), scope), "another device");
    assert.ok(!isOurRoute(route("192.168.1.0/24", "eth0"), scope), "outside the network, shared device");
    assert.ok(!isOurRoute(route("0.0.0.0/0", "eth0"), scope), "default route");
    // What an older weft routed for leases it should have refused must be recognised, to be removed.
    assert.ok(isOurRoute(route("10.244.0.0/16", "eth0"), scope), "the network itself, shared device");
    assert.ok(isOurRoute(route("10.244.63.128/25", "eth0"), scope), "half of our own subnet");
    assert.ok(isOurRoute(route("10.244.0.0/16", "flannel.1"), scope), "the network itself, own device");
    assert.ok(isOurRoute(route("10.245.1.0/24", "flannel.1"), scope), "outside the network, own device");
    assert.ok(isOurRoute(route("172.31.0.0/16", "flannel.1"), scope), "the underlay, own device");
    assert.ok(isOurRoute(route("10.244.63.0/24", "flannel.1"), scope), "own subnet on our own device");
  });

  it("puts what is missing or different and removes what is no longer wanted", () => {
    const r = (dst: string, gateway: string) => ({ dst, gateway, dev: "flannel.1", onlink: true });
    const diff = (want: RouteEntry[], have: RouteEntry[]) =>
      diffEntries(want, have, routeShape.key, routeShape.same);
    const changes = diff(
      [r("10.244.1.0/24", "10.244.1.0"), r("10.244.2.0/24", "10.244.2.0")],
      [r("10.244.2.0/24", "10.244.9.9"), r("10.244.3.0/24", "10.244.3.0")],
    );
    assert.deepEqual(
      changes.put.map((x) => x.dst),
      ["10.244.1.0/24", "10.244.2.0/24"],
    );
    assert.deepEqual(
      changes.remove.map((x) => x.dst),
      ["10.244.3.0/24"],
    );
    const same = diff([r("10.244.1.0/24", "10.244.1.0")], [r("10.244.1.0/24", "10.244.1.0")]);
    assert.equal(same.put.length + same.remove.length, 0, "nothing to do when equal");
  });
});
