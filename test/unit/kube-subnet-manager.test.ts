// The kube subnet manager against the in-process test API server: waiting for a pod CIDR, refusing a pod
// CIDR outside Network without writing anything, RBAC and connection errors as one clear line.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { openKubeSubnetManager } from "../../src/subnet/kube/open-kube-subnet-manager.js";
import { describeError } from "../../src/user-error.js";
import { nodeObject, type RunningApi, startApiInProcess } from "../kube-api/in-process.js";

const attrs = {
  publicIP: "172.31.0.1",
  publicIPv6: undefined,
  backendType: "vxlan",
  backendData: { VNI: 1, VtepMAC: "02:00:00:00:00:01" },
  backendV6Data: undefined,
};
const request = { attrs, previousSubnet: undefined, previousIPv6Subnet: undefined };

describe("kube subnet manager", { timeout: 60_000 }, () => {
  let api: RunningApi;
  let netConf: string;
  const open = (env: Record<string, string>, kubeconfig = api.weftKubeconfig, logs: string[] = []) =>
    openKubeSubnetManager({
      apiUrl: "",
      kubeconfigFile: kubeconfig,
      annotationPrefix: "flannel.alpha.coreos.com",
      netConfigPath: netConf,
      setNodeNetworkUnavailable: true,
      env,
      log: (m) => logs.push(m),
    });

  before(async () => {
    api = await startApiInProcess();
    netConf = join(api.dir, "net-conf.json");
    writeFileSync(netConf, '{"Network":"10.244.0.0/16","Backend":{"Type":"vxlan"}}');
  });
  after(async () => {
    await api?.close();
  });

  test("waits for the pod CIDR with a clear line, then takes it and annotates the node", async () => {
    await api.call("POST", "/api/v1/nodes", nodeObject("wait", [], "172.31.0.1"));
    const logs: string[] = [];
    const manager = await open({ NODE_NAME: "wait" }, api.certKubeconfig, logs);
    try {
      const leasing = manager.acquireLease(request);
      const deadline = Date.now() + 5000;
      while (
        !logs.some((l) => l.includes("waiting for node wait to get a pod CIDR")) &&
        Date.now() < deadline
      )
        await new Promise((r) => setTimeout(r, 20));
      assert.ok(
        logs.some((l) => l.includes("waiting for node wait to get a pod CIDR")),
        logs.join("\n"),
      );
      await api.call(
        "PATCH",
        "/api/v1/nodes/wait",
        { spec: { podCIDR: "10.244.7.0/24" } },
        "application/merge-patch+json",
      );
      const lease = await leasing;
      assert.equal(lease.key, "10.244.7.0-24");
      const node = (await api.call("GET", "/api/v1/nodes/wait")).body;
      assert.equal(
        node.metadata.annotations["flannel.alpha.coreos.com/backend-data"],
        '{"VNI":1,"VtepMAC":"02:00:00:00:00:01"}',
      );
      assert.deepEqual(await manager.storedBackendData(), {
        backendType: "vxlan",
        v4: { VNI: 1, VtepMAC: "02:00:00:00:00:01" },
      });
    } finally {
      await manager.close();
    }
  });

  test("a pod CIDR outside Network is refused and nothing is written", async () => {
    await api.call("POST", "/api/v1/nodes", nodeObject("outside", ["10.9.0.0/24"], "172.31.0.2"));
    const manager = await open({ NODE_NAME: "outside" });
    try {
      await assert.rejects(manager.acquireLease(request), (err) =>
        /pod CIDR 10\.9\.0\.0\/24 is not inside Network 10\.244\.0\.0\/16/.test(describeError(err)),
      );
      const node = (await api.call("GET", "/api/v1/nodes/outside")).body;
      assert.equal(node.metadata.annotations, undefined);
    } finally {
      await manager.close();
    }
  });

  test("POD_NAME lookup without RBAC for pods says what to do", async () => {
    await assert.rejects(open({ POD_NAME: "weft-abc", POD_NAMESPACE: "kube-flannel" }), (err) => {
      const text = describeError(err);
      return /cannot get resource "pods"/.test(text) && /NODE_NAME/.test(text);
    });
  });

  test("an unreachable API is one clear line", async () => {
    const manager = await openKubeSubnetManager({
      apiUrl: "https://127.0.0.1:1",
      kubeconfigFile: api.weftKubeconfig,
      annotationPrefix: "flannel.alpha.coreos.com",
      netConfigPath: netConf,
      setNodeNetworkUnavailable: true,
      env: { NODE_NAME: "x" },
      log: () => {},
    });
    const warnings: string[] = [];
    manager.watchLeases({
      onLeases: () => {},
      onOwnLease: () => {},
      onWarning: (m) => warnings.push(m),
      onFatal: () => {},
    });
    await manager.getNetworkConfig();
    const deadline = Date.now() + 3000;
    // The watch loop reports its list failure through the watcher (or the log before watchLeases).
    while (warnings.length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    await manager.close();
    assert.match(
      warnings[0] ?? "",
      /cannot list nodes \(cannot reach the Kubernetes API at https:\/\/127\.0\.0\.1:1: ECONNREFUSED/,
    );
  });

  test("a --net-config-path that is a FIFO fails at once instead of hanging start-up", async () => {
    const fifo = join(api.dir, "net-conf.fifo");
    execFileSync("mkfifo", [fifo]);
    const manager = await openKubeSubnetManager({
      apiUrl: "",
      kubeconfigFile: api.weftKubeconfig,
      annotationPrefix: "flannel.alpha.coreos.com",
      netConfigPath: fifo,
      setNodeNetworkUnavailable: true,
      env: { NODE_NAME: "x" },
      log: () => {},
    });
    try {
      await assert.rejects(manager.getNetworkConfig(), (err) => {
        const text = describeError(err);
        return text.includes(`cannot read the network config ${fifo}`) && /--net-config-path/.test(text);
      });
    } finally {
      await manager.close();
    }
  });

  test("no NODE_NAME and no POD_NAME: a clear error", async () => {
    await assert.rejects(open({}), /NODE_NAME is not set/);
  });
});
