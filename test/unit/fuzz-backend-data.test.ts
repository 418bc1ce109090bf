// Fuzz: each backend's lease data as peers publish it (flannel fuzzes backend/vxlan), through to the kernel
// entries the backend wants: vxlan's BackendData {"VNI","VtepMAC"} and host-gw's (none, the PublicIP).
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import type { DesiredPeers, ExternalInterface } from "../../src/backend/backend.js";
import { peerInput } from "../../src/backend/extension/command-inputs.js";
import { hostGwDesiredState } from "../../src/backend/host-gw/host-gw-desired.js";
import { udpForwardingTable } from "../../src/backend/udp/udp-desired.js";
import { readVtepMac } from "../../src/backend/vxlan/vxlan-backend-data.js";
import { vxlanDesiredState } from "../../src/backend/vxlan/vxlan-desired.js";
import { readLeaseData } from "../../src/backend/wireguard/wireguard-desired.js";
import { networksOverlap, parseCIDR } from "../../src/ip/ip-network.js";
import type { Lease } from "../../src/lease/lease.js";
import type { FdbEntry } from "../../src/reconcile/kinds/fdb-kind.js";
import type { NeighEntry } from "../../src/reconcile/kinds/neigh-kind.js";
import type { RouteEntry } from "../../src/reconcile/kinds/route-kind.js";
import { decodeRawLease } from "../../src/subnet/lease-table.js";
import { assertBoundedText, checkProperty, onlyOwnErrors } from "./fuzz-harness.js";
import {
  fieldValue,
  flatWrongJson,
  hostileString,
  jsonDocumentText,
  nearIPv4,
  nearIPv6,
  nearLeaseKey,
  parsed,
  recordOf,
  smallHostileString,
  wrongJson,
} from "./fuzz-inputs.js";

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

const own: Lease = {
  key: "10.244.63.0-24",
  subnet: parseCIDR("10.244.63.0/24"),
  ipv6Subnet: undefined,
  attrs: {
    publicIP: "172.31.0.1",
    publicIPv6: undefined,
    backendType: "vxlan",
    backendData: { VNI: 1, VtepMAC: "1e:b0:d9:82:fa:43" },
    backendV6Data: undefined,
  },
  reservation: false,
};

const mac = fc.oneof(
  fc
    .uint8Array({ minLength: 6, maxLength: 6 })
    .map((b) => Array.from(b, (x) => x.toString(16).padStart(2, "0")).join(":")),
  fc.constantFrom(
    "ff:ff:ff:ff:ff:ff",
    "01:00:5e:00:00:01",
    "00:00:00:00:00:00",
    "AA:BB:CC:DD:EE:FF",
    "a:b:c:d:e:f",
  ),
  fc.uint8Array({ maxLength: 9 }).map((b) => Array.from(b, (x) => x.toString(16).padStart(2, "0")).join(":")),
);

function backendData(flat: boolean) {
  return fc.oneof(
    {
      weight: 4,
      arbitrary: recordOf(
        { VNI: fieldValue(fc.nat(), flat), VtepMAC: fieldValue(mac, flat) },
        flat ? flatWrongJson : wrongJson,
      ),
    },
    { weight: 1, arbitrary: flat ? flatWrongJson : wrongJson },
  );
}

/** Peer leases as the lease table decodes them from what hosts wrote (flat values: F1 is the table's). */
/** A valid vxlan or host-gw peer's raw lease, with one or two of its fields replaced by junk. */
const nearValidRaw = fc
  .record({
    third: fc.nat(255),
    host: fc.integer({ min: 2, max: 254 }),
    type: fc.constantFrom("vxlan", "host-gw"),
    mac: fc.uint8Array({ minLength: 6, maxLength: 6 }).map((b) => {
      b[0] = b[0]! & 0xfe; // unicast
      return Array.from(b, (x) => x.toString(16).padStart(2, "0")).join(":");
    }),
    edits: fc.array(
      fc.tuple(fc.constantFrom("PublicIP", "BackendType", "BackendData", "VtepMAC"), flatWrongJson),
      {
        maxLength: 2,
      },
    ),
  })
  .map(({ third, host, type, mac, edits }) => {
    const data: Record<string, unknown> = { VNI: 1, VtepMAC: mac };
    const value: Record<string, unknown> = {
      PublicIP: `172.31.0.${host}`,
      BackendType: type,
      BackendData: data,
    };
    for (const [field, junk] of edits) {
      if (field === "VtepMAC") data["VtepMAC"] = junk;
      else value[field] = junk;
    }
    return { subnetKey: `10.244.${third}.0-24`, value: JSON.stringify(value), reservation: false };
  });

const peerLeases = fc
  .array(
    fc.oneof(
      nearValidRaw,
      fc.record({
        subnetKey: fc.oneof(
          fc
            .tuple(fc.integer({ min: 0, max: 255 }), fc.integer({ min: 0, max: 255 }))
            .map(([a, b]) => `10.244.${a}.${b & 0}-24`),
          nearLeaseKey,
        ),
        value: jsonDocumentText(
          recordOf(
            {
              PublicIP: fieldValue(
                fc.oneof(nearIPv4, fc.constantFrom("172.31.0.2", "172.31.9.9", "10.0.0.1")),
                true,
              ),
              PublicIPv6: fieldValue(nearIPv6, true),
              BackendType: fc.constantFrom("vxlan", "host-gw", "udp"),
              BackendData: backendData(true),
              BackendV6Data: backendData(true),
            },
            flatWrongJson,
          ),
          true,
        ),
        reservation: fc.boolean(),
      }),
    ),
    { maxLength: 8 },
  )
  .map((raws) => {
    const leases: Lease[] = [];
    for (const raw of raws) {
      const decoded = decodeRawLease(raw);
      if (decoded.ok) leases.push(decoded.lease);
    }
    return leases;
  });

/** The desired entries by kind, typed. */
function entries(desired: DesiredPeers) {
  return {
    routes: (desired.state["route"] ?? []) as readonly RouteEntry[],
    neighs: (desired.state["neigh"] ?? []) as readonly NeighEntry[],
    fdbs: (desired.state["fdb"] ?? []) as readonly FdbEntry[],
  };
}

const families = fc.constantFrom<Array<4 | 6>>([4], [6], [4, 6]);

describe("fuzz: backend lease data", () => {
  it("readVtepMac never throws on flat data; a MAC it returns is six lower-case hex pairs", (t) => {
    checkProperty(t, { runs: 3000 }, backendData(true).map(parsed), (data) => {
      const read = onlyOwnErrors([], () => readVtepMac(data));
      if (read && "mac" in read) assert.match(read.mac, /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/);
    });
  });

  it("readVtepMac never throws on any data (deep, huge), and its reason is bounded", (t) => {
    checkProperty(t, { runs: 1500 }, backendData(false).map(parsed), (data) => {
      const read = onlyOwnErrors([], () => readVtepMac(data));
      if (read && "reason" in read) assertBoundedText("readVtepMac's reason", read.reason);
    });
  });

  it("a VtepMAC it accepts is a unicast address (the kernel refuses others with EOPNOTSUPP)", (t) => {
    checkProperty(t, { runs: 1500 }, backendData(true).map(parsed), (data) => {
      const read = readVtepMac(data);
      if ("mac" in read) {
        const first = Number.parseInt(read.mac.slice(0, 2), 16);
        assert.equal(first & 1, 0, `${read.mac} is multicast or broadcast`);
      }
    });
  });

  it("vxlan's desired state never throws; each peer gives a neighbour, an FDB entry and an onlink route", (t) => {
    let programmed = 0;
    checkProperty(t, { runs: 800 }, fc.tuple(peerLeases, families, fc.boolean()), ([peers, fams, direct]) => {
      const plan = fams.map((family) => ({ family, device: family === 4 ? "flannel.1" : "flannel-v6.1" }));
      const desired = onlyOwnErrors([], () => vxlanDesiredState(own, [own, ...peers], plan, direct, ext));
      if (!desired) return;
      const { routes, neighs, fdbs } = entries(desired);
      assert.equal(neighs.length, fdbs.length);
      if (fdbs.length > 0) programmed++;
      for (const route of routes) assert.ok(parseCIDR(route.dst), route.dst);
      for (const n of neighs) assert.match(n.mac, /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/);
      assert.ok(!routes.some((r) => r.dst === "10.244.63.0/24"), "no route to our own subnet");
      for (const p of desired.problems) assertBoundedText("a peer problem", p.reason);
    });
    assert.ok(programmed > 0, "some generated peers were valid enough to program");
  });

  it("host-gw's desired state never throws; each route goes via a peer on our link", (t) => {
    let programmed = 0;
    checkProperty(t, { runs: 800 }, fc.tuple(peerLeases, families), ([peers, fams]) => {
      const desired = onlyOwnErrors([], () => hostGwDesiredState(own, [own, ...peers], fams, ext));
      if (!desired) return;
      const { routes } = entries(desired);
      if (routes.length > 0) programmed++;
      for (const route of routes) {
        assert.ok(parseCIDR(route.dst), route.dst);
        assert.ok(route.gateway === undefined || /^(172\.31\.|fd31:)/.test(route.gateway), route.gateway);
      }
      for (const p of desired.problems) assertBoundedText("a peer problem", p.reason);
    });
    assert.ok(programmed > 0, "some generated peers were valid enough to program");
  });

  it("junk around a valid lease does not stop the valid peer from being programmed", (t) => {
    const good: Lease = {
      ...own,
      key: "10.244.4.0-24",
      subnet: parseCIDR("10.244.4.0/24"),
      attrs: { ...own.attrs, publicIP: "172.31.0.2", backendData: { VNI: 1, VtepMAC: "ca:02:e3:ba:24:33" } },
    };
    checkProperty(t, { runs: 500 }, fc.tuple(peerLeases, peerLeases), ([before, after]) => {
      const desired = vxlanDesiredState(
        own,
        [...before, good, ...after],
        [{ family: 4, device: "flannel.1" }],
        false,
        ext,
      );
      assert.ok(
        entries(desired).fdbs.some((f) => f.mac === "ca:02:e3:ba:24:33" && f.dst === "172.31.0.2"),
        "the valid peer's FDB entry is there",
      );
    });
  });

  it("udp's forwarding table never throws; its entries are disjoint and reasons bounded", (t) => {
    checkProperty(t, { runs: 800 }, peerLeases, (peers) => {
      const table = onlyOwnErrors([], () => udpForwardingTable(own, [own, ...peers], 8285));
      if (!table) return;
      const nets = table.entries.map((e) => parseCIDR(e.subnet)!);
      for (let i = 0; i < nets.length; i++)
        for (let j = i + 1; j < nets.length; j++) assert.ok(!networksOverlap(nets[i]!, nets[j]!));
      for (const p of table.problems) assertBoundedText("a udp peer problem", p.reason);
    });
  });

  it("udp: a lease naming another backend is reported with the name bounded and escaped", (t) => {
    checkProperty(t, { runs: 1000 }, hostileString, (type) => {
      const peer: Lease = {
        ...own,
        key: "10.244.4.0-24",
        subnet: parseCIDR("10.244.4.0/24"),
        attrs: { ...own.attrs, backendType: type },
      };
      const table = udpForwardingTable(own, [peer], 8285);
      for (const p of table.problems) assertBoundedText("a udp peer problem", p.reason);
    });
  });

  it("extension: a peer's input (variables, stdin) never throws, and a bad BackendData gets a bounded reason", (t) => {
    checkProperty(
      t,
      { runs: 1500 },
      fc.tuple(peerLeases, fc.oneof(smallHostileString, hostileString, wrongJson.map(parsed))),
      ([peers, data]) => {
        for (const peer of [
          ...peers,
          { ...own, key: "10.244.9.0-24", attrs: { ...own.attrs, backendData: data } },
        ]) {
          const input = onlyOwnErrors([], () => peerInput(peer));
          if (input && "problem" in input) assertBoundedText("an extension peer problem", input.problem);
          else if (input) for (const v of Object.values(input.variables)) assert.equal(typeof v, "string");
        }
      },
    );
  });

  it("wireguard: a peer's BackendData gives a 32-byte key and a port, or a bounded reason; never a throw", (t) => {
    const key = fc.oneof(
      fc.uint8Array({ minLength: 32, maxLength: 32 }).map((b) => Buffer.from(b).toString("base64")),
      fc.uint8Array({ maxLength: 40 }).map((b) => Buffer.from(b).toString("base64")),
      smallHostileString,
    );
    const data = fc.oneof(
      recordOf({ PublicKey: fieldValue(key), Port: fieldValue(fc.integer({ min: -1, max: 70000 })) }),
      wrongJson,
    );
    checkProperty(t, { runs: 1500 }, data.map(parsed), (d) => {
      const read = onlyOwnErrors([], () => readLeaseData(d, "BackendData", 51820));
      if (!read) return;
      if ("reason" in read) return assertBoundedText("a wireguard peer problem", read.reason);
      assert.equal(Buffer.from(read.value.key, "base64").length, 32);
      assert.ok(read.value.port >= 1 && read.value.port <= 65535);
    });
  });
});
