// Fuzz: Node objects from the Kubernetes API to leases (flannel fuzzes subnet/kube): any node's labels,
// annotations and pod CIDRs are written by whoever can edit nodes, and every weftd reads them all.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import { parseNetworkConfig } from "../../src/config/network-config.js";
import { networkContainsNetwork } from "../../src/ip/ip-network.js";
import { subnetKey } from "../../src/lease/lease-key.js";
import { annotationNames } from "../../src/subnet/kube/kube-annotations.js";
import { toKubeNode } from "../../src/subnet/kube/kube-node.js";
import {
  checkOwnSubnets,
  nodeSubnets,
  nodeToLease,
  ownAnnotations,
  storedBackendData,
} from "../../src/subnet/kube/node-lease.js";
import { UserError } from "../../src/user-error.js";
import { assertBoundedText, checkProperty, onlyOwnErrors } from "./fuzz-harness.js";
import {
  deepJsonText,
  fieldValue,
  hostileString,
  nearCIDR,
  nearIPv4,
  nearIPv6,
  parsed,
  recordOf,
  wrongJson,
} from "./fuzz-inputs.js";

const names = annotationNames("flannel.alpha.coreos.com");
const configs = [
  parseNetworkConfig('{"Network":"10.244.0.0/16","Backend":{"Type":"vxlan"}}'),
  parseNetworkConfig('{"Network":"10.244.0.0/16","Backend":{"Type":"host-gw"}}'),
  parseNetworkConfig(
    '{"EnableIPv6":true,"Network":"10.244.0.0/16","IPv6Network":"fd44::/56","Backend":{"Type":"vxlan"}}',
  ),
  parseNetworkConfig(
    '{"EnableIPv4":false,"EnableIPv6":true,"IPv6Network":"fd44::/56","Backend":{"Type":"vxlan"}}',
  ),
];

const podCIDR = fc.oneof(
  { weight: 3, arbitrary: fc.tuple(fc.nat(255), fc.nat(255)).map(([a, b]) => `10.244.${a}.${b & 0xf0}/24`) },
  { weight: 2, arbitrary: fc.nat(0xff).map((n) => `fd44:0:0:${n.toString(16)}::/64`) },
  { weight: 2, arbitrary: nearCIDR },
);

const annotationText = fc.oneof(
  hostileString,
  deepJsonText,
  fc.constant('{"VNI":1,"VtepMAC":"ca:02:e3:ba:24:33"}'),
  fc.jsonValue({ maxDepth: 3 }).map((v) => JSON.stringify(v)),
);

/** Node objects as an API (or a hostile kubectl edit) may return them. */
const randomNode = recordOf({
  metadata: recordOf({
    name: fieldValue(fc.oneof(fc.constantFrom("node-a", "node-b"), hostileString)),
    resourceVersion: fieldValue(fc.nat().map(String)),
    annotations: fc.oneof(
      recordOf({
        [names.kubeSubnetManager]: fieldValue(fc.constant("true")),
        [names.backendType]: fieldValue(fc.constantFrom("vxlan", "host-gw", "udp")),
        [names.backendData]: fieldValue(annotationText),
        [names.backendV6Data]: fieldValue(annotationText),
        [names.publicIP]: fieldValue(fc.oneof(nearIPv4, fc.constant("172.31.0.2"))),
        [names.publicIPv6]: fieldValue(nearIPv6),
        [names.publicIPOverwrite]: fieldValue(nearIPv4),
        [names.nodePublicIP]: fieldValue(nearIPv4),
      }),
      wrongJson,
    ),
  }),
  spec: fc.oneof(
    recordOf({
      podCIDR: fieldValue(podCIDR),
      podCIDRs: fc.oneof(fc.array(fieldValue(podCIDR), { maxLength: 4 }), wrongJson),
    }),
    wrongJson,
  ),
});

/** A valid peer node with one or two of its fields replaced by something hostile. */
const nearValidNode = fc
  .record({
    v4: fc.tuple(fc.nat(255), fc.ipV4()),
    v6: fc.tuple(fc.nat(255), fc.ipV6()),
    type: fc.constantFrom("vxlan", "host-gw"),
    edits: fc.array(
      fc.tuple(fc.constantFrom("name", "podCIDRs", ...Object.values(names).slice(1)), wrongJson),
      {
        maxLength: 2,
      },
    ),
  })
  .map(({ v4, v6, type, edits }) => {
    const annotations: Record<string, unknown> = {
      [names.kubeSubnetManager]: "true",
      [names.backendType]: type,
      [names.backendData]: '{"VNI":1,"VtepMAC":"ca:02:e3:ba:24:33"}',
      [names.backendV6Data]: '{"VNI":1,"VtepMAC":"ca:02:e3:ba:24:34"}',
      [names.publicIP]: v4[1],
      [names.publicIPv6]: v6[1],
    };
    const metadata: Record<string, unknown> = { name: `node-${v4[0]}`, annotations };
    const spec: Record<string, unknown> = {
      podCIDRs: [`10.244.${v4[0]}.0/24`, `fd44:0:0:${v6[0].toString(16)}::/64`],
    };
    for (const [field, value] of edits) {
      if (field === "name") metadata["name"] = value;
      else if (field === "podCIDRs") spec["podCIDRs"] = value;
      else annotations[field] = value;
    }
    return { metadata, spec };
  });

const nodeObject = fc.oneof(randomNode, nearValidNode).map(parsed);

describe("fuzz: Kubernetes nodes to leases", () => {
  it("toKubeNode reads any object without throwing; what it keeps is strings only", (t) => {
    checkProperty(t, { runs: 2000 }, nodeObject, (object) => {
      const node = onlyOwnErrors([], () => toKubeNode(object, names.prefix));
      if (!node) return;
      assert.equal(typeof node.name, "string");
      for (const c of node.podCIDRs) assert.equal(typeof c, "string");
      for (const [k, v] of Object.entries(node.annotations)) {
        assert.ok(k.startsWith(names.prefix));
        assert.equal(typeof v, "string");
      }
    });
  });

  it("nodeToLease never throws; a lease it makes is inside the Network; skip reasons are bounded", (t) => {
    let leases = 0;
    checkProperty(
      t,
      { runs: 2500 },
      fc.tuple(nodeObject, fc.constantFrom(...configs)),
      ([object, config]) => {
        const node = toKubeNode(object, names.prefix);
        if (!node) return;
        const result = onlyOwnErrors([], () => nodeToLease(node, names, config));
        if (!result) return;
        if ("skip" in result) return assertBoundedText("the skip reason", result.skip);
        if (!("lease" in result)) return;
        leases++;
        const { lease } = result;
        assert.equal(lease.key, subnetKey(lease.subnet, lease.ipv6Subnet));
        if (config.ipv4) assert.ok(lease.subnet && networkContainsNetwork(config.ipv4.network, lease.subnet));
        if (config.ipv6)
          assert.ok(lease.ipv6Subnet && networkContainsNetwork(config.ipv6.network, lease.ipv6Subnet));
      },
    );
    assert.ok(leases > 0, "some generated nodes were valid peers");
  });

  it("our own node's pod CIDRs: checked with one bounded reason, never a throw", (t) => {
    checkProperty(
      t,
      { runs: 2000 },
      fc.tuple(nodeObject, fc.constantFrom(...configs)),
      ([object, config]) => {
        const node = toKubeNode(object, names.prefix);
        if (!node) return;
        const subnets = onlyOwnErrors([], () => nodeSubnets(node));
        if (!subnets) return;
        if ("error" in subnets) return assertBoundedText("the pod CIDR error", subnets.error);
        assertBoundedText(
          "the own-subnet check",
          onlyOwnErrors([], () => checkOwnSubnets(node, subnets, config)),
        );
      },
    );
  });

  it("reading back our stored annotations and writing ours never throws", (t) => {
    checkProperty(t, { runs: 1500 }, nodeObject, (object) => {
      const node = toKubeNode(object, names.prefix);
      if (!node) return;
      const stored = onlyOwnErrors([], () => storedBackendData(node, names));
      // What a backend publishes is its own (fresh MACs); only the type comes from what is stored.
      const attrs = {
        publicIP: "172.31.0.1",
        publicIPv6: "fd31::1",
        backendType: stored?.backendType ?? "vxlan",
        backendData: { VNI: 1, VtepMAC: "1e:b0:d9:82:fa:43" },
        backendV6Data: undefined,
      };
      const wanted = onlyOwnErrors([], () => ownAnnotations(attrs, node, names));
      for (const value of Object.values(wanted ?? {})) assert.equal(typeof value, "string");
    });
  });

  it("--kube-annotation-prefix: any value gives names or one bounded UserError", (t) => {
    const prefix = fc.oneof(
      fc.constantFrom("flannel.alpha.coreos.com", "example.com/weft", "a.b/c-", "a/b/c", "nodots", "A.B"),
      hostileString,
      fc.array(fc.constantFrom("a", ".", "-", "_", "/", "ab"), { maxLength: 60 }).map((p) => p.join("")),
      fc.integer({ min: 1, max: 5000 }).map((n) => `${"a.".repeat(n)}a`),
    );
    checkProperty(t, { runs: 2000 }, prefix, (value) => {
      const made = onlyOwnErrors([UserError], () => annotationNames(value));
      if (made) assert.ok(made.backendData.startsWith(made.prefix));
    });
  });
});
