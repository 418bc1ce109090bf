/** Each kind of managed state: key, compare, describe, and the netlink messages it decodes and encodes. */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  NTF_MASTER,
  NTF_SELF,
  NUD_PERMANENT,
  NUD_REACHABLE,
  RT_TABLE_LOCAL,
  RT_TABLE_MAIN,
  RTN_LOCAL,
  RTN_UNICAST,
  RTPROT_BOOT,
  RTPROT_KERNEL,
  RTPROT_STATIC,
} from "../../src/netlink/constants.js";
import type { Neigh, FdbEntry as NetlinkFdb, Route } from "../../src/netlink/index.js";
import { NetlinkError } from "../../src/netlink/index.js";
import { decodeFdbEntry, encodeFdb, fdbShape } from "../../src/reconcile/kinds/fdb-kind.js";
import { isGone } from "../../src/reconcile/kinds/gone.js";
import { MissingDeviceError } from "../../src/reconcile/kinds/link-names.js";
import { decodeNeighEntry, encodeNeighPut, neighShape } from "../../src/reconcile/kinds/neigh-kind.js";
import {
  decodeRouteEntry,
  encodeRoutePut,
  encodeRouteRemove,
  routeShape,
} from "../../src/reconcile/kinds/route-kind.js";

const names = new Map([
  [5, "flannel.1"],
  [2, "eth0"],
]);
const nameOf = (index: number | undefined) => (index === undefined ? undefined : names.get(index));

function route(overrides: Partial<Route>): Route {
  return {
    family: 4,
    dst: "10.244.4.0/24",
    gateway: "10.244.4.0",
    oif: 5,
    table: RT_TABLE_MAIN,
    protocol: RTPROT_BOOT,
    scope: 0,
    type: RTN_UNICAST,
    flags: 0,
    onlink: true,
    priority: undefined,
    prefsrc: undefined,
    ...overrides,
  };
}

describe("route kind", () => {
  const entry = { dst: "10.244.4.0/24", gateway: "10.244.4.0", dev: "flannel.1", onlink: true };

  it("keys by destination and compares every field", () => {
    assert.equal(routeShape.key(entry), "10.244.4.0/24");
    assert.equal(routeShape.key({ ...entry, gateway: "10.244.9.0" }), routeShape.key(entry));
    assert.ok(routeShape.same(entry, { ...entry }));
    assert.ok(!routeShape.same(entry, { ...entry, gateway: "10.244.9.0" }));
    assert.ok(!routeShape.same(entry, { ...entry, dev: "eth0" }));
    assert.ok(!routeShape.same(entry, { ...entry, onlink: false }));
    assert.equal(routeShape.describe(entry), "route 10.244.4.0/24 via 10.244.4.0 dev flannel.1 onlink");
  });

  it("decodes main-table unicast routes not made by the kernel, with the device's name", () => {
    assert.deepEqual(decodeRouteEntry(route({}), nameOf), entry);
    assert.deepEqual(
      decodeRouteEntry(route({ protocol: RTPROT_STATIC }), nameOf),
      entry,
      "any protocol but kernel",
    );
    assert.deepEqual(decodeRouteEntry(route({ dst: "10.244.4.7/24" }), nameOf)?.dst, "10.244.4.0/24");
    assert.equal(decodeRouteEntry(route({ protocol: RTPROT_KERNEL }), nameOf), undefined);
    assert.equal(decodeRouteEntry(route({ table: RT_TABLE_LOCAL }), nameOf), undefined);
    assert.equal(decodeRouteEntry(route({ type: RTN_LOCAL }), nameOf), undefined);
    assert.equal(decodeRouteEntry(route({ oif: 99 }), nameOf), undefined, "unknown device");
    assert.equal(decodeRouteEntry(route({ oif: undefined }), nameOf), undefined, "no device");
  });

  it("encodes a put as a proto boot replace in the main table, and a remove of exactly that route", () => {
    assert.deepEqual(encodeRoutePut(entry, 5), {
      dst: "10.244.4.0/24",
      gateway: "10.244.4.0",
      oif: 5,
      onlink: true,
      table: RT_TABLE_MAIN,
      protocol: RTPROT_BOOT,
    });
    assert.deepEqual(encodeRouteRemove(entry, 5), {
      dst: "10.244.4.0/24",
      gateway: "10.244.4.0",
      oif: 5,
      table: RT_TABLE_MAIN,
    });
  });
});

describe("neighbour kind", () => {
  const entry = { dev: "flannel.1", ip: "10.244.4.0", mac: "ca:02:e3:ba:24:33" };
  const neigh = (overrides: Partial<Neigh>): Neigh => ({
    family: 4,
    index: 5,
    ip: "10.244.4.0",
    mac: "ca:02:e3:ba:24:33",
    state: NUD_PERMANENT,
    flags: 0,
    type: 0,
    ...overrides,
  });

  it("keys by device and address and compares the MAC", () => {
    assert.equal(neighShape.key(entry), "flannel.1|10.244.4.0");
    assert.notEqual(neighShape.key({ ...entry, dev: "flannel-v6.1" }), neighShape.key(entry));
    assert.ok(neighShape.same(entry, { ...entry }));
    assert.ok(!neighShape.same(entry, { ...entry, mac: "aa:bb:cc:dd:ee:ff" }));
    assert.equal(neighShape.describe(entry), "neighbour 10.244.4.0 lladdr ca:02:e3:ba:24:33 dev flannel.1");
  });

  it("decodes only permanent entries, except on deletion where the state is gone", () => {
    assert.deepEqual(decodeNeighEntry(neigh({}), nameOf), entry);
    assert.equal(decodeNeighEntry(neigh({ state: NUD_REACHABLE }), nameOf), undefined);
    assert.deepEqual(decodeNeighEntry(neigh({ state: 0 }), nameOf, true), entry);
    assert.equal(decodeNeighEntry(neigh({ index: 99 }), nameOf), undefined);
  });

  it("encodes a put as a permanent entry", () => {
    assert.deepEqual(encodeNeighPut(entry, 5), {
      index: 5,
      ip: "10.244.4.0",
      mac: "ca:02:e3:ba:24:33",
      state: NUD_PERMANENT,
    });
  });
});

describe("FDB kind", () => {
  const entry = { dev: "flannel.1", mac: "ca:02:e3:ba:24:33", dst: "172.31.0.2" };
  const fdb = (overrides: Partial<NetlinkFdb>): NetlinkFdb => ({
    index: 5,
    mac: "ca:02:e3:ba:24:33",
    dst: "172.31.0.2",
    vni: undefined,
    port: undefined,
    vlan: undefined,
    masterIndex: undefined,
    state: NUD_PERMANENT,
    flags: NTF_SELF,
    ...overrides,
  });

  it("keys by device and MAC (one remote per MAC) and compares the remote", () => {
    assert.equal(fdbShape.key(entry), "flannel.1|ca:02:e3:ba:24:33");
    assert.equal(fdbShape.key({ ...entry, dst: "172.31.0.9" }), fdbShape.key(entry));
    assert.ok(!fdbShape.same(entry, { ...entry, dst: "172.31.0.9" }));
    assert.equal(fdbShape.describe(entry), "fdb ca:02:e3:ba:24:33 dst 172.31.0.2 dev flannel.1");
  });

  it("decodes permanent NTF_SELF entries with a remote; not the bridge's or the all-zeros default", () => {
    assert.deepEqual(decodeFdbEntry(fdb({}), nameOf), entry);
    assert.equal(decodeFdbEntry(fdb({ flags: NTF_MASTER }), nameOf), undefined);
    assert.equal(decodeFdbEntry(fdb({ dst: undefined }), nameOf), undefined);
    assert.equal(decodeFdbEntry(fdb({ state: NUD_REACHABLE }), nameOf), undefined);
    assert.deepEqual(decodeFdbEntry(fdb({ state: 0 }), nameOf, true), entry);
  });

  it("encodes the device index, MAC and remote", () => {
    assert.deepEqual(encodeFdb(entry, 5), { index: 5, mac: "ca:02:e3:ba:24:33", dst: "172.31.0.2" });
  });
});

describe("removes of what is already gone", () => {
  it("count as done: ESRCH, ENOENT, ENODEV and a device that no longer exists", () => {
    for (const errno of [3, 2, 19]) assert.ok(isGone(new NetlinkError(errno, "route del")), String(errno));
    assert.ok(isGone(new MissingDeviceError("flannel.1")));
    assert.ok(!isGone(new NetlinkError(1, "route del")), "EPERM");
    assert.ok(!isGone(new Error("socket closed")));
  });
});
