// The test API server against the real kubectl: if kubectl works with it, it speaks the real API's wire
// format (discovery, lists, patches in three forms, the status subresource, watches, 403 refusals).
import assert from "node:assert/strict";
import { execFile, spawn } from "node:child_process";
import { after, before, describe, test } from "node:test";
import { DEFAULT_WEFT_TOKEN } from "../kube-api/identities.js";
import { nodeObject, type RunningApi, startApiInProcess } from "../kube-api/in-process.js";

/** kubectl, asynchronously: the server runs in this process, so a blocking call would starve it. */
function kubectl(config: string, args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(
      "kubectl",
      [`--kubeconfig=${config}`, "--request-timeout=5s", ...args],
      { timeout: 20_000 },
      (err, stdout, stderr) =>
        resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
    );
  });
}

describe("test API server with the real kubectl", { timeout: 120_000 }, () => {
  let api: RunningApi;
  const ok = async (args: string[], config = api.adminKubeconfig) => {
    const result = await kubectl(config, args);
    assert.equal(result.code, 0, `kubectl ${args.join(" ")}: ${result.stderr}`);
    return result.stdout;
  };
  const node = async (name: string) => JSON.parse(await ok(["get", "node", name, "-o", "json"]));

  before(async () => {
    api = await startApiInProcess();
    for (const n of [1, 2])
      assert.equal(
        (
          await api.call(
            "POST",
            "/api/v1/nodes",
            nodeObject(`node${n}`, [`10.244.${n}.0/24`], `172.31.0.${n}`),
          )
        ).status,
        201,
      );
  });
  after(async () => {
    await api?.close();
  });

  test("get nodes -o json lists both with their pod CIDRs", async () => {
    const list = JSON.parse(await ok(["get", "nodes", "-o", "json"]));
    assert.equal(list.kind, "List");
    assert.deepEqual(
      list.items.map((n: any) => [n.metadata.name, n.spec.podCIDR]),
      [
        ["node1", "10.244.1.0/24"],
        ["node2", "10.244.2.0/24"],
      ],
    );
    assert.match(await ok(["get", "nodes"]), /node1[\s\S]*node2/);
  });

  test("annotate sets an annotation with a merge patch and bumps the resourceVersion", async () => {
    const before = await node("node1");
    await ok(["annotate", "node", "node1", "example.com/a=b"]);
    const after = await node("node1");
    assert.equal(after.metadata.annotations["example.com/a"], "b");
    assert.ok(Number(after.metadata.resourceVersion) > Number(before.metadata.resourceVersion));
    await ok(["annotate", "node", "node1", "example.com/a-"]);
    assert.equal((await node("node1")).metadata.annotations, undefined);
  });

  test("patch --subresource=status --type=strategic merges conditions by type", async () => {
    const patch = {
      status: { conditions: [{ type: "NetworkUnavailable", status: "False", reason: "FlannelIsUp" }] },
    };
    await ok([
      "patch",
      "node",
      "node1",
      "--subresource=status",
      "--type=strategic",
      "-p",
      JSON.stringify(patch),
    ]);
    await ok([
      "patch",
      "node",
      "node1",
      "--subresource=status",
      "--type=strategic",
      "-p",
      JSON.stringify({ status: { conditions: [{ type: "NetworkUnavailable", message: "up" }] } }),
    ]);
    const conditions = (await node("node1")).status.conditions;
    assert.deepEqual(
      conditions.map((c: any) => c.type),
      ["Ready", "NetworkUnavailable"],
    );
    assert.equal(conditions[1].reason, "FlannelIsUp");
    assert.equal(conditions[1].message, "up");
  });

  test("status written on the main resource is ignored, spec on the status subresource too", async () => {
    await ok([
      "patch",
      "node",
      "node2",
      "--type=merge",
      "-p",
      JSON.stringify({ status: { conditions: [] }, metadata: { labels: { x: "y" } } }),
    ]);
    let n = await node("node2");
    assert.equal(n.status.conditions.length, 1);
    assert.equal(n.metadata.labels.x, "y");
    await ok([
      "patch",
      "node",
      "node2",
      "--subresource=status",
      "--type=merge",
      "-p",
      JSON.stringify({ spec: { unschedulable: true } }),
    ]);
    n = await node("node2");
    assert.equal(n.spec.unschedulable, undefined);
  });

  test("patch --type=merge and --type=json", async () => {
    await ok([
      "patch",
      "node",
      "node2",
      "--type=merge",
      "-p",
      JSON.stringify({ metadata: { annotations: { "a.io/x": "1" } } }),
    ]);
    await ok([
      "patch",
      "node",
      "node2",
      "--type=json",
      "-p",
      JSON.stringify([
        { op: "add", path: "/metadata/annotations/a.io~1y", value: "2" },
        { op: "remove", path: "/metadata/annotations/a.io~1x" },
      ]),
    ]);
    assert.deepEqual((await node("node2")).metadata.annotations, { "a.io/y": "2" });
    const failed = await kubectl(api.adminKubeconfig, [
      "patch",
      "node",
      "node2",
      "--type=json",
      "-p",
      JSON.stringify([{ op: "test", path: "/spec/podCIDR", value: "10.0.0.0/24" }]),
    ]);
    assert.notEqual(failed.code, 0);
  });

  test("changing a pod CIDR is refused as the real API refuses it", async () => {
    const result = await kubectl(api.adminKubeconfig, [
      "patch",
      "node",
      "node2",
      "--type=merge",
      "-p",
      JSON.stringify({ spec: { podCIDR: "10.244.9.0/24", podCIDRs: ["10.244.9.0/24"] } }),
    ]);
    assert.notEqual(result.code, 0);
    assert.match(result.stderr, /is invalid: .*may not change podCIDR/);
  });

  test("get nodes --watch -o json streams the nodes, then changes", async () => {
    const child = spawn(
      "kubectl",
      [`--kubeconfig=${api.adminKubeconfig}`, "get", "nodes", "--watch", "-o", "json"],
      { stdio: ["ignore", "pipe", "pipe"] },
    );
    let out = "";
    child.stdout.on("data", (c: Buffer) => {
      out += c.toString();
    });
    const count = () => (out.match(/"kind": "Node"/g) ?? []).length;
    const waitFor = async (n: number) => {
      const deadline = Date.now() + 10_000;
      while (count() < n) {
        if (Date.now() > deadline) throw new Error(`only ${count()} watch objects: ${out.slice(-500)}`);
        await new Promise((r) => setTimeout(r, 50));
      }
    };
    try {
      await waitFor(2);
      await api.call(
        "PATCH",
        "/api/v1/nodes/node1",
        { metadata: { labels: { watched: "yes" } } },
        "application/merge-patch+json",
      );
      await waitFor(3);
      assert.match(out, /"watched": "yes"/);
    } finally {
      child.kill("SIGTERM");
    }
  });

  test("weft's service account may read nodes and patch nodes/status, and nothing else (403)", async () => {
    await ok(["get", "nodes", "-o", "name"], api.weftKubeconfig);
    // What weft does (kubectl patch --subresource would first GET nodes/status, which the role does not grant).
    const patched = await api.call(
      "PATCH",
      "/api/v1/nodes/node1/status",
      { metadata: { annotations: { "w/x": "1" } } },
      "application/strategic-merge-patch+json",
      DEFAULT_WEFT_TOKEN,
    );
    assert.equal(patched.status, 200);
    const viaKubectl = await kubectl(api.weftKubeconfig, [
      "patch",
      "node",
      "node1",
      "--subresource=status",
      "--type=strategic",
      "-p",
      "{}",
    ]);
    assert.match(viaKubectl.stderr, /cannot get resource "nodes\/status"/);
    const refused = await kubectl(api.weftKubeconfig, ["delete", "node", "node1"]);
    assert.notEqual(refused.code, 0);
    assert.match(
      refused.stderr,
      /Forbidden.*cannot delete resource "nodes" in API group "" at the cluster scope/,
    );
    const patchMain = await kubectl(api.weftKubeconfig, ["annotate", "node", "node1", "w/y=2"]);
    assert.match(patchMain.stderr, /cannot patch resource "nodes"/);
    const pods = await kubectl(api.weftKubeconfig, ["get", "pods", "-n", "default"]);
    assert.match(pods.stderr, /cannot list resource "pods"/);
  });

  test("client-certificate users authenticate", async () => {
    assert.match(await ok(["get", "nodes", "-o", "name"], api.certKubeconfig), /node\/node1/);
  });

  test("a watch from a compacted resourceVersion gets 410 Gone", async () => {
    const rv = (await node("node1")).metadata.resourceVersion;
    await api.call(
      "PATCH",
      "/api/v1/nodes/node1",
      { metadata: { labels: { after: "compaction" } } },
      "application/merge-patch+json",
    );
    api.server.store.compact();
    const result = await api.call("GET", `/api/v1/nodes?watch=true&resourceVersion=${rv}&timeoutSeconds=1`);
    assert.equal(result.status, 200);
    const event = typeof result.body === "string" ? JSON.parse(result.body.trim()) : result.body;
    assert.equal(event.type, "ERROR");
    assert.equal(event.object.code, 410);
    assert.equal(event.object.reason, "Expired");
  });
});
