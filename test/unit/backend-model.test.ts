/** The backend side of the model: the registry and its config errors, lease rules, the peers hook's diff. */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { diffPeers } from "../../src/backend/peer-change.js";
import { PeerStateCache } from "../../src/backend/peer-state-cache.js";
import { configureBackend, findBackend } from "../../src/backend/registry.js";
import { ConfigError, parseNetworkConfig } from "../../src/config/network-config.js";
import { renderMetrics } from "../../src/daemon/daemon-metrics.js";
import { parseCIDR } from "../../src/ip/ip-network.js";
import type { Lease, LeaseAttrs } from "../../src/lease/lease.js";
import { annotationNames } from "../../src/subnet/kube/kube-annotations.js";
import type { KubeNode } from "../../src/subnet/kube/kube-node.js";
import { ownAnnotations } from "../../src/subnet/kube/node-lease.js";

const config = (backend: string) => parseNetworkConfig(`{"Network":"10.244.0.0/16","Backend":${backend}}`);

describe("backend registry", () => {
  it("finds backends by type, case-insensitively, and configures them without side effects", () => {
    assert.equal(findBackend("VXLAN")?.type, "vxlan");
    assert.equal(findBackend("host-gw")?.type, "host-gw");
    const { registration, create } = configureBackend(config('{"Type":"vxlan","VNI":4096}'));
    assert.equal(registration.type, "vxlan");
    assert.equal(typeof create, "function");
  });

  it("refuses a bad backend key or an unknown type as a config error naming it, so weftd waits", () => {
    const cases: [string, RegExp][] = [
      [
        '{"Type":"vxlan","VNI":16777216}',
        /Backend\.VNI of the vxlan backend must be a whole number from 0 to 16777215, not 16777216/,
      ],
      [
        '{"Type":"vxlan","Port":"8472"}',
        /Backend\.Port of the vxlan backend must be a whole number from 0 to 65535, not "8472"/,
      ],
      [
        '{"Type":"vxlan","DirectRouting":"yes"}',
        /Backend\.DirectRouting of the vxlan backend must be true or false, not "yes"/,
      ],
      [
        '{"Type":"carrier-pigeon"}',
        /unknown backend type "carrier-pigeon" in Backend\.Type \(use one of: vxlan, host-gw/,
      ],
    ];
    for (const [backend, message] of cases) {
      assert.throws(
        () => configureBackend(config(backend)),
        (err: unknown) => err instanceof ConfigError && message.test(err.message),
        backend,
      );
    }
  });
});

function lease(key: string, attrs: Partial<LeaseAttrs> = {}): Lease {
  return {
    key,
    subnet: parseCIDR(key.replace(/-(\d+)$/, "/$1")),
    ipv6Subnet: undefined,
    attrs: {
      publicIP: "172.31.0.9",
      publicIPv6: undefined,
      backendType: "vxlan",
      backendData: undefined,
      backendV6Data: undefined,
      ...attrs,
    },
    reservation: false,
  };
}

describe("peers hook diff", () => {
  it("reports new and changed peers as added and gone ones with their last values, never our own", () => {
    const own = lease("10.244.1.0-24");
    const a = lease("10.244.2.0-24");
    const b = lease("10.244.3.0-24");
    const first = diffPeers(own, new Map(), [own, a, b]);
    assert.deepEqual(first.added, [a, b]);
    assert.deepEqual(first.removed, []);
    assert.deepEqual([...first.peers.keys()], [a.key, b.key]);
    const a2 = lease("10.244.2.0-24", { publicIP: "172.31.0.10" });
    const second = diffPeers(own, first.peers, [own, a2]);
    assert.deepEqual(second.added, [a2], "a changed lease is added again with its new value");
    assert.deepEqual(second.removed, [b]);
    const third = diffPeers(own, second.peers, [own, a2]);
    assert.equal(third.added.length + third.removed.length, 0, "nothing when nothing changed");
  });
});

describe("per-peer desired state cache", () => {
  it("computes a peer once while its lease object is the same, and merges every kind", () => {
    const cache = new PeerStateCache();
    const own = lease("10.244.1.0-24");
    const a = lease("10.244.2.0-24");
    const b = lease("10.244.3.0-24");
    let computed = 0;
    const compute = (peer: Lease) => {
      computed++;
      return { state: { route: [peer.key], neigh: peer === a ? [`n-${peer.key}`] : [] }, problems: [] };
    };
    const state = cache.collect(own, [own, a, b], compute).state;
    assert.deepEqual(state, { route: [a.key, b.key], neigh: [`n-${a.key}`] });
    cache.collect(own, [own, a, b], compute);
    assert.equal(computed, 2, "no recomputation for unchanged leases");
    cache.collect(own, [own, a, lease("10.244.3.0-24")], compute);
    assert.equal(computed, 3);
  });
});

describe("lease rules behind the backend (kube annotations)", () => {
  const names = annotationNames("flannel.alpha.coreos.com");
  const node: KubeNode = { name: "n", resourceVersion: "1", podCIDRs: ["10.244.1.0/24"], annotations: {} };
  const attrs = (backendType: string, data: unknown, v6: unknown, publicIPv6?: string): LeaseAttrs => ({
    publicIP: "172.31.0.1",
    publicIPv6,
    backendType,
    backendData: data,
    backendV6Data: v6,
  });
  const keys = (a: Record<string, string>) =>
    Object.keys(a)
      .map((k) => k.replace("flannel.alpha.coreos.com/", ""))
      .sort();

  it("vxlan publishes each pair only with its data", () => {
    const rules = findBackend("vxlan")!.leaseRules;
    assert.deepEqual(
      keys(ownAnnotations(attrs("vxlan", undefined, { VNI: 1 }, "fd31::1"), node, names, rules)),
      ["backend-type", "backend-v6-data", "kube-subnet-manager", "public-ipv6"],
    );
    assert.deepEqual(
      keys(ownAnnotations(attrs("vxlan", { VNI: 1 }, undefined, "fd31::1"), node, names, rules)),
      ["backend-data", "backend-type", "kube-subnet-manager", "public-ip"],
    );
  });

  it("host-gw publishes the IPv6 pair whenever it has an IPv6 address; others never (flannel's default)", () => {
    const hostGw = findBackend("host-gw")!.leaseRules;
    const withV6 = ownAnnotations(attrs("host-gw", undefined, undefined, "fd31::1"), node, names, hostGw);
    assert.equal(withV6[names.backendV6Data], "null");
    assert.equal(withV6[names.publicIPv6], "fd31::1");
    const other = ownAnnotations(attrs("alloc", undefined, { x: 1 }, "fd31::1"), node, names);
    assert.equal(other[names.backendData], "null", "v4 pair always");
    assert.equal(other[names.publicIPv6], undefined);
  });
});

describe("metrics text", () => {
  it("counts failed runs and failures by kind of state", () => {
    const text = renderMetrics({
      peers: 2,
      leaseUpdates: 3,
      leaseScope: [],
      deviceRepairs: 0,
      iptablesRepairs: 1,
      reconcile: {
        runs: 4,
        fullRuns: 2,
        cleanRuns: 3,
        failedRuns: 1,
        changes: 10,
        failuresByKind: new Map([["route", 2]]),
        failures: 2,
        lastDurationMs: 1.5,
        lastRunAt: 0,
        lastRunClean: true,
      },
    });
    assert.match(text, /^weft_peers 2$/m);
    assert.match(text, /^weft_reconcile_failed_runs_total 1$/m);
    assert.match(text, /^weft_state_change_failures_total\{kind="route"\} 2$/m);
    assert.match(text, /^# TYPE weft_kernel_change_failures_total counter$/m);
    assert.match(text, /^weft_reconcile_last_duration_seconds 0\.001500$/m);
  });
});
