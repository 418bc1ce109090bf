// The pure core of kube mode against flanneld v0.20.2's observed values: annotation names, the annotation
// patch and the NetworkUnavailable patch byte for byte, node -> lease, and kubeconfig parsing.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { makeVxlanBackendData } from "../../src/backend/vxlan/vxlan-backend-data.js";
import { parseNetworkConfig } from "../../src/config/network-config.js";
import { annotationNames } from "../../src/subnet/kube/kube-annotations.js";
import { type KubeNode, toKubeNode } from "../../src/subnet/kube/kube-node.js";
import {
  annotationPatch,
  announcedAttrs,
  checkOwnSubnets,
  networkUnavailablePatch,
  nodeSubnets,
  nodeToLease,
  ownAnnotations,
  storedBackendData,
} from "../../src/subnet/kube/node-lease.js";
import { readReference, section } from "../helpers/reference.js";

const names = annotationNames("flannel.alpha.coreos.com");
const config = parseNetworkConfig('{"Network":"10.244.0.0/16","Backend":{"Type":"vxlan"}}');
const reference = readReference("flanneld-v0.20.2", "kube-vxlan.txt");
const requests = section(reference, "requests flanneld made").split("\n");
const resulting = new Map(
  section(reference, "resulting Node annotations")
    .split("\n")
    .filter((l) => l.slice(l.indexOf(" ") + 1).startsWith("{"))
    .map((l) => [l.split(" ")[0]!, JSON.parse(l.slice(l.indexOf(" ") + 1)) as Record<string, string>]),
);

function node(name: string, podCIDRs: string[], annotations: Record<string, string> = {}): KubeNode {
  return { name, resourceVersion: "1", podCIDRs, annotations };
}

describe("annotation names", () => {
  test("flannel's names under the default prefix", () => {
    assert.equal(names.backendData, "flannel.alpha.coreos.com/backend-data");
    assert.equal(names.publicIPv6Overwrite, "flannel.alpha.coreos.com/public-ipv6-overwrite");
    assert.equal(names.nodePublicIP, "flannel.alpha.coreos.com/node-public-ip");
  });
  test("a prefix with a slash gets a dash; bad prefixes are refused clearly", () => {
    assert.equal(annotationNames("example.com/weft").backendType, "example.com/weft-backend-type");
    assert.equal(annotationNames("example.com/").backendType, "example.com/backend-type");
    assert.throws(() => annotationNames("a/b/c"), /more than one "\/"/);
    assert.throws(() => annotationNames("NotAnFqdn"), /not in the form fqdn/);
  });
});

describe("own annotations and patches, byte-exact against flanneld", () => {
  for (const name of ["node1", "node2"]) {
    test(`${name}: the annotation patch equals flanneld's`, () => {
      const refBody =
        requests[
          requests.indexOf(`PATCH /api/v1/nodes/${name}/status ct=application/strategic-merge-patch+json`) + 1
        ]!;
      const refAnnotations = resulting.get(name)!;
      const mac = JSON.parse(refAnnotations["flannel.alpha.coreos.com/backend-data"]!).VtepMAC;
      const attrs = {
        publicIP: refAnnotations["flannel.alpha.coreos.com/public-ip"],
        publicIPv6: undefined,
        backendType: "vxlan",
        backendData: makeVxlanBackendData(1, mac),
        backendV6Data: undefined,
      };
      const fresh = node(name, [`10.244.${name.slice(-1)}.0/24`]);
      assert.deepEqual(ownAnnotations(attrs, fresh, names), refAnnotations);
      assert.equal(annotationPatch(fresh, ownAnnotations(attrs, fresh, names)), refBody);
      // Nothing differs any more: no patch at all.
      const annotated = node(name, [...fresh.podCIDRs], refAnnotations);
      assert.equal(annotationPatch(annotated, ownAnnotations(attrs, annotated, names)), undefined);
    });
  }

  test("the NetworkUnavailable patch equals flanneld's but for the time", () => {
    const refBody = requests.find((l) => l.includes("NetworkUnavailable"))!;
    assert.equal(networkUnavailablePatch(new Date("2026-11-23T09:43:14.512Z")), refBody);
  });

  test("only changed keys are patched; overwrite annotations replace the announced address", () => {
    const attrs = {
      publicIP: "172.31.0.1",
      publicIPv6: undefined,
      backendType: "vxlan",
      backendData: makeVxlanBackendData(1, "aa:bb:cc:dd:ee:ff"),
      backendV6Data: undefined,
    };
    const existing = node("n", ["10.244.1.0/24"], {
      ...resulting.get("node1")!,
      [names.publicIPOverwrite]: "192.0.2.7",
    });
    assert.equal(
      annotationPatch(existing, ownAnnotations(attrs, existing, names)),
      '{"metadata":{"annotations":{"flannel.alpha.coreos.com/backend-data":"{\\"VNI\\":1,\\"VtepMAC\\":\\"aa:bb:cc:dd:ee:ff\\"}","flannel.alpha.coreos.com/public-ip":"192.0.2.7"}}}',
    );
    const withNodeIP = node("n", ["10.244.1.0/24"], { [names.nodePublicIP]: "192.0.2.9" });
    assert.equal(announcedAttrs(attrs, withNodeIP, names).publicIP, "192.0.2.9");
  });

  test("host-gw writes backend-data null, as flanneld's nil RawMessage", () => {
    const attrs = {
      publicIP: "172.31.0.1",
      publicIPv6: undefined,
      backendType: "host-gw",
      backendData: undefined,
      backendV6Data: undefined,
    };
    assert.equal(ownAnnotations(attrs, node("n", []), names)[names.backendData], "null");
  });
});

describe("node -> lease", () => {
  test("a node annotated by flanneld is a vxlan lease with its MAC", () => {
    const result = nodeToLease(node("node2", ["10.244.2.0/24"], resulting.get("node2")!), names, config);
    assert.ok("lease" in result);
    assert.equal(result.lease.key, "10.244.2.0-24");
    assert.equal(result.lease.attrs.publicIP, "172.31.0.2");
    assert.deepEqual(result.lease.attrs.backendData, { VNI: 1, VtepMAC: "da:26:f0:b6:92:61" });
  });
  test("nodes of other backends, unmanaged or without pod CIDR are ignored; bad values are skipped with why", () => {
    const ann = resulting.get("node2")!;
    assert.ok(
      "ignore" in
        nodeToLease(node("a", ["10.244.2.0/24"], { ...ann, [names.backendType]: "host-gw" }), names, config),
    );
    assert.ok("ignore" in nodeToLease(node("a", ["10.244.2.0/24"], {}), names, config));
    assert.ok("ignore" in nodeToLease(node("a", [], ann), names, config));
    const badIP = nodeToLease(
      node("a", ["10.244.2.0/24"], { ...ann, [names.publicIP]: "nope" }),
      names,
      config,
    );
    assert.ok("skip" in badIP && /not an IPv4 address/.test(badIP.skip));
    const badJson = nodeToLease(
      node("a", ["10.244.2.0/24"], { ...ann, [names.backendData]: "{" }),
      names,
      config,
    );
    assert.ok("skip" in badJson && /not valid JSON/.test(badJson.skip));
    const outside = nodeToLease(node("a", ["10.9.0.0/24"], ann), names, config);
    assert.ok("skip" in outside && /outside Network 10\.244\.0\.0\/16/.test(outside.skip));
  });
  test("own subnets outside Network give one clear message", () => {
    const n = node("n", ["10.9.1.0/24"]);
    const subnets = nodeSubnets(n);
    assert.ok(!("error" in subnets));
    assert.equal(
      checkOwnSubnets(n, subnets, config),
      "node n's pod CIDR 10.9.1.0/24 is not inside Network 10.244.0.0/16 of the network config",
    );
  });
  test("toKubeNode keeps only our annotations and reads podCIDR when podCIDRs is missing", () => {
    const kn = toKubeNode(
      {
        metadata: {
          name: "x",
          resourceVersion: "7",
          annotations: { "other/a": "1", [names.backendType]: "vxlan" },
        },
        spec: { podCIDR: "10.244.3.0/24" },
      },
      names.prefix,
    );
    assert.deepEqual(kn, {
      name: "x",
      resourceVersion: "7",
      podCIDRs: ["10.244.3.0/24"],
      annotations: { [names.backendType]: "vxlan" },
    });
  });
  test("stored backend data reads our MAC back", () => {
    assert.deepEqual(storedBackendData(node("n", [], resulting.get("node1")!), names), {
      backendType: "vxlan",
      v4: { VNI: 1, VtepMAC: "c6:64:a8:c8:95:b1" },
    });
  });
});
