// deploy/kube-weft.yml: kubectl parses it, every object passes `kubectl apply --dry-run=server` against the
// test API server, the RBAC is exactly what weft uses, and the embedded configs are ones weft accepts.
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { parseNetworkConfig } from "../../src/config/network-config.js";
import { parseFlags } from "../../src/daemon/flags.js";
import { repoRoot } from "../helpers/reference.js";
import { type RunningApi, startApiInProcess } from "../kube-api/in-process.js";

const MANIFEST = join(repoRoot, "deploy", "kube-weft.yml");

function kubectl(config: string, args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(
      "kubectl",
      [`--kubeconfig=${config}`, "--request-timeout=5s", ...args],
      { timeout: 30_000 },
      (err, stdout, stderr) => resolve({ code: err ? 1 : 0, stdout, stderr }),
    );
  });
}

describe("deploy/kube-weft.yml", { timeout: 60_000 }, () => {
  let api: RunningApi;
  let objects: any[];

  before(async () => {
    api = await startApiInProcess();
    // --validate=false: client-side schema validation needs the OpenAPI document, which this server does not serve.
    const parsed = await kubectl(api.adminKubeconfig, [
      "create",
      "--dry-run=client",
      "--validate=false",
      "-o",
      "json",
      "-f",
      MANIFEST,
    ]);
    assert.equal(parsed.code, 0, parsed.stderr);
    // One JSON document per object, one after the other.
    objects = parsed.stdout.split(/\n(?=\{)/).map((doc) => JSON.parse(doc));
  });
  after(async () => {
    await api?.close();
  });

  test("holds flannel's objects", () => {
    assert.deepEqual(
      objects.map((o) => `${o.kind}/${o.metadata.name}`),
      [
        "Namespace/kube-flannel",
        "ServiceAccount/flannel",
        "ClusterRole/flannel",
        "ClusterRoleBinding/flannel",
        "ConfigMap/kube-flannel-cfg",
        "DaemonSet/kube-flannel-ds",
      ],
    );
  });

  test("every object passes kubectl apply --dry-run=server, and nothing is stored", async () => {
    // Namespaced objects need their namespace to exist (NamespaceLifecycle), so it is created for real first.
    await api.call("POST", "/api/v1/namespaces", {
      apiVersion: "v1",
      kind: "Namespace",
      metadata: { name: "kube-flannel" },
    });
    const result = await kubectl(api.adminKubeconfig, [
      "apply",
      "--dry-run=server",
      "--validate=false",
      "-f",
      MANIFEST,
    ]);
    assert.equal(result.code, 0, result.stderr);
    for (const what of [
      "serviceaccount/flannel created",
      "clusterrole.rbac.authorization.k8s.io/flannel created",
      "clusterrolebinding.rbac.authorization.k8s.io/flannel created",
      "configmap/kube-flannel-cfg created",
      "daemonset.apps/kube-flannel-ds created",
    ]) {
      assert.match(result.stdout, new RegExp(`${what.replace(/\./g, "\\.")} \\(server dry run\\)`));
    }
    assert.equal(
      (await api.call("GET", "/apis/apps/v1/namespaces/kube-flannel/daemonsets/kube-flannel-ds")).status,
      404,
    );
  });

  test("the ClusterRole grants exactly nodes get/list/watch and nodes/status patch", () => {
    const role = objects.find((o) => o.kind === "ClusterRole");
    assert.deepEqual(role.rules, [
      { apiGroups: [""], resources: ["nodes"], verbs: ["get", "list", "watch"] },
      { apiGroups: [""], resources: ["nodes/status"], verbs: ["patch"] },
    ]);
  });

  test("the ConfigMap's net-conf.json is a valid config and cni-conf.json is cbr0 with flannel + portmap", () => {
    const cm = objects.find((o) => o.kind === "ConfigMap");
    assert.equal(parseNetworkConfig(cm.data["net-conf.json"]).backendType, "vxlan");
    const cni = JSON.parse(cm.data["cni-conf.json"]);
    assert.equal(cni.name, "cbr0");
    assert.deepEqual(
      cni.plugins.map((p: any) => p.type),
      ["flannel", "portmap"],
    );
  });

  test("the DaemonSet runs weftd in kube mode on the host network with NET_ADMIN/NET_RAW and a readiness probe", () => {
    const ds = objects.find((o) => o.kind === "DaemonSet");
    const pod = ds.spec.template.spec;
    assert.equal(pod.hostNetwork, true);
    const [main] = pod.containers;
    const flags = parseFlags(main.args, {});
    assert.equal(flags.bool("kube-subnet-mgr"), true);
    assert.equal(main.readinessProbe.httpGet.path, "/readyz");
    assert.equal(main.readinessProbe.httpGet.port, flags.int("healthz-port"));
    assert.deepEqual(main.securityContext.capabilities.add, ["NET_ADMIN", "NET_RAW"]);
    assert.match(main.resources.requests.memory, /^\d+Mi$/);
    assert.ok(
      main.env.some((e: any) => e.name === "NODE_NAME" && e.valueFrom.fieldRef.fieldPath === "spec.nodeName"),
    );
    assert.deepEqual(
      pod.initContainers.map((c: any) => c.name),
      ["install-cni-plugin", "install-cni"],
    );
    const mounts = main.volumeMounts.map((m: any) => m.mountPath);
    assert.ok(mounts.includes("/run/flannel") && mounts.includes("/run/xtables.lock"));
  });
});
