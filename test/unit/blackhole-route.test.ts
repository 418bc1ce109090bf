/** --ip-blackhole-route: the route entry, its netlink bytes, its ownership and the daemon's desired routes. */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { parseNetworkConfig } from "../../src/config/network-config.js";
import { ownBlackholeRoutes, withBlackholeRoutes } from "../../src/daemon/blackhole-routes.js";
import { type IPNetwork, parseCIDR } from "../../src/ip/ip-network.js";
import type { Lease } from "../../src/lease/lease.js";
import {
  NLM_F_CREATE,
  NLM_F_EXCL,
  RT_TABLE_MAIN,
  RTM_NEWROUTE,
  RTN_BLACKHOLE,
  RTPROT_BOOT,
} from "../../src/netlink/constants.js";
import type { Route } from "../../src/netlink/index.js";
import { encodeRouteAdd, encodeRouteDel } from "../../src/netlink/route.js";
import {
  blackholeRoute,
  decodeRouteEntry,
  encodeRoutePut,
  encodeRouteRemove,
  ownsRoute,
  routeShape,
} from "../../src/reconcile/kinds/route-kind.js";
import type { OwnershipScope } from "../../src/reconcile/reconciler.js";

const cidr = (text: string) => parseCIDR(text) as IPNetwork;

function kernelRoute(overrides: Partial<Route>): Route {
  return {
    family: 4,
    dst: "10.244.3.0/24",
    gateway: undefined,
    oif: undefined,
    table: RT_TABLE_MAIN,
    protocol: RTPROT_BOOT,
    scope: 0,
    type: RTN_BLACKHOLE,
    flags: 0,
    onlink: false,
    priority: undefined,
    prefsrc: undefined,
    ...overrides,
  };
}

const SCOPE: OwnershipScope = {
  networks: [cidr("10.244.0.0/16"), cidr("fd44::/56")],
  ownSubnets: [cidr("10.244.3.0/24")],
  routeDevices: ["flannel.1"],
  ownedDevices: ["flannel.1"],
};

describe("blackhole route entry", () => {
  const hole = blackholeRoute("10.244.3.0/24");

  it("differs from a unicast route to the same destination, and says what it is", () => {
    const unicast = { dst: "10.244.3.0/24", gateway: undefined, dev: "cni0", onlink: false };
    assert.equal(routeShape.key(hole), routeShape.key(unicast));
    assert.ok(!routeShape.same(hole, { ...unicast, dev: "" }));
    assert.ok(routeShape.same(hole, blackholeRoute("10.244.3.0/24")));
    assert.equal(routeShape.describe(hole), "route blackhole 10.244.3.0/24");
  });

  it("decodes blackhole routes without their device (IPv6 ones show lo)", () => {
    const nameOf = (i: number | undefined) => (i === 1 ? "lo" : undefined);
    assert.deepEqual(decodeRouteEntry(kernelRoute({}), nameOf), hole);
    assert.deepEqual(
      decodeRouteEntry(kernelRoute({ family: 6, dst: "fd44:0:0:3::/64", oif: 1 }), nameOf),
      blackholeRoute("fd44:0:0:3::/64"),
    );
    assert.equal(decodeRouteEntry(kernelRoute({ table: 255 }), nameOf), undefined, "local table");
    assert.equal(decodeRouteEntry(kernelRoute({ type: 7 }), nameOf), undefined, "unreachable is not ours");
  });

  it("is added as type blackhole, proto boot, table main, no device; removed by type and proto", () => {
    const put = encodeRoutePut(hole, undefined);
    assert.deepEqual(put, {
      dst: "10.244.3.0/24",
      table: RT_TABLE_MAIN,
      protocol: RTPROT_BOOT,
      type: RTN_BLACKHOLE,
    });
    const bytes = encodeRouteAdd(put);
    // nlmsghdr: length, RTM_NEWROUTE, create|excl (never a replace: that would overwrite cni0's route)
    assert.equal(bytes.readUInt16LE(4), RTM_NEWROUTE);
    assert.equal(bytes.readUInt16LE(6) & (NLM_F_CREATE | NLM_F_EXCL), NLM_F_CREATE | NLM_F_EXCL);
    // rtmsg: AF_INET, /24, src 0, tos 0, table main, proto boot, scope universe, type blackhole
    assert.deepEqual(
      [...bytes.subarray(16, 24)],
      [2, 24, 0, 0, RT_TABLE_MAIN, RTPROT_BOOT, 0, RTN_BLACKHOLE],
    );
    // attributes: RTA_DST 10.244.3.0 and RTA_TABLE 254 only (no RTA_OIF)
    assert.deepEqual(
      [...bytes.subarray(28)],
      [8, 0, 1, 0, 10, 244, 3, 0, 8, 0, 15, 0, RT_TABLE_MAIN, 0, 0, 0],
    );
    // The delete matches type and protocol (any scope: 255), so cni0's proto kernel route stays.
    const del = encodeRouteDel(encodeRouteRemove(hole, undefined));
    assert.deepEqual(
      [...del.subarray(16, 24)],
      [2, 24, 0, 0, RT_TABLE_MAIN, RTPROT_BOOT, 255, RTN_BLACKHOLE],
    );
  });

  it("is ours inside the pod network only; unicast routes keep their own rule", () => {
    assert.ok(ownsRoute(hole, SCOPE), "our own subnet");
    assert.ok(ownsRoute(blackholeRoute("10.244.9.0/24"), SCOPE), "a lost lease's subnet");
    assert.ok(ownsRoute(blackholeRoute("fd44:0:0:3::/64"), SCOPE));
    assert.ok(!ownsRoute(blackholeRoute("192.168.0.0/24"), SCOPE), "someone else's blackhole");
    const own = { dst: "10.244.3.0/24", gateway: undefined, dev: "flannel.1", onlink: false };
    assert.ok(ownsRoute(own, SCOPE), "everything on an owned device");
    assert.ok(!ownsRoute({ ...own, dev: "cni0" }, SCOPE), "our subnet on the bridge is not ours");
  });
});

describe("the daemon's blackhole routes", () => {
  const lease: Lease = {
    key: "10.244.3.0-24&fd44:0:0:3::-64",
    subnet: cidr("10.244.3.0/24"),
    ipv6Subnet: cidr("fd44:0:0:3::/64"),
    attrs: { publicIP: "172.31.0.1" } as Lease["attrs"],
    reservation: false,
  };

  it("are one per enabled family, for the lease's subnets", () => {
    const dual = parseNetworkConfig(
      '{"EnableIPv6":true,"Network":"10.244.0.0/16","IPv6Network":"fd44::/56","Backend":{"Type":"vxlan"}}',
    );
    assert.deepEqual(ownBlackholeRoutes(dual, lease), [
      blackholeRoute("10.244.3.0/24"),
      blackholeRoute("fd44:0:0:3::/64"),
    ]);
    const v4 = parseNetworkConfig('{"Network":"10.244.0.0/16","Backend":{"Type":"vxlan"}}');
    assert.deepEqual(ownBlackholeRoutes(v4, lease), [blackholeRoute("10.244.3.0/24")]);
  });

  it("join the backend's routes and leave the other kinds alone", () => {
    const peer = { dst: "10.244.4.0/24", gateway: "10.244.4.0", dev: "flannel.1", onlink: true };
    const state = { route: [peer], neigh: [{ ip: "10.244.4.0" }] };
    const hole = blackholeRoute("10.244.3.0/24");
    assert.deepEqual(withBlackholeRoutes(state, [hole]), { route: [peer, hole], neigh: state.neigh });
    assert.deepEqual(withBlackholeRoutes({}, [hole]), { route: [hole] });
    assert.equal(withBlackholeRoutes(state, []), state);
  });
});
