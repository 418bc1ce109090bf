// Kube mode on the lab against an API that fails: the first requests of every kind weftd makes (get of
// its pod, list and watch of nodes, patch of nodes/status) are answered 503, 429 (Retry-After), 500
// (etcd leader lost), 504 or have their connection reset, as a real cluster's API does during an
// upgrade or an etcd election. weftd must come up once the API answers, program its peers, and never
// exit; the same after start-up; and a watch that goes silent without closing must be cut and resumed.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import type { FaultRule, InjectedFault } from "../kube-api/faults.js";
import { ADMIN_USER, WEFT_USER } from "../kube-api/identities.js";
import { type LabApi, startLabApi } from "../kube-api/lab-api.js";
import { Lab, type LabHost, type LabProcess } from "./lab.js";

const NET_CONF = { Network: "10.244.0.0/16", Backend: { Type: "vxlan" } };
const PREFIX = "flannel.alpha.coreos.com/";
/** weftd's default idle limit on a watch (src/kube/kube-client.ts WATCH_IDLE_MS). */
const WATCH_IDLE_S = 90;

async function until(what: string, timeoutMs: number, probe: () => Promise<boolean>): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      if (await probe()) return;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline)
      throw new Error(`${what}: not within ${timeoutMs} ms${last ? ` (${(last as Error).message})` : ""}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Every fault kind for each of weftd's request kinds, for both users weftd runs as here. */
function startupFaults(): FaultRule[] {
  return [
    { verb: "get", resource: "pods", user: ADMIN_USER, faults: ["500", "reset", "503"] },
    { verb: "list", resource: "nodes", user: WEFT_USER, faults: ["503", "reset", "429"] },
    { verb: "list", resource: "nodes", user: ADMIN_USER, faults: ["504"] },
    { verb: "watch", resource: "nodes", user: WEFT_USER, faults: ["reset", "500", "503"] },
    { verb: "watch", resource: "nodes", user: ADMIN_USER, faults: ["429"] },
    { verb: "patch", resource: "nodes/status", user: WEFT_USER, faults: ["503", "reset", "429", "500"] },
    { verb: "patch", resource: "nodes/status", user: ADMIN_USER, faults: ["504", "reset"] },
  ];
}

function peerAnnotations(index: number): Record<string, string> {
  return {
    [`${PREFIX}backend-data`]: `{"VNI":1,"VtepMAC":"02:42:ac:1f:00:0${index}"}`,
    [`${PREFIX}backend-type`]: "vxlan",
    [`${PREFIX}kube-subnet-manager`]: "true",
    [`${PREFIX}public-ip`]: `172.31.0.${index}`,
  };
}

describe("kube mode against a failing API", { timeout: 300_000 }, () => {
  let lab: Lab;
  let api: LabApi;
  const weftd = new Map<number, LabProcess>();

  const routed = async (host: LabHost, subnet: string) =>
    (await lab.run(host, ["ip", "route", "show", subnet])).includes("dev flannel.1");
  const injected = async () =>
    JSON.parse(await api.kubectl(["get", "--raw", "/weft-test/faults"])) as InjectedFault[];
  const setFaults = (rules: FaultRule[]) =>
    api.kubectl(["create", "--raw", "/weft-test/faults", "-f", "-"], JSON.stringify(rules));
  const assertAlive = () => {
    for (const [index, proc] of weftd) {
      assert.ok(proc.running, `weftd on host ${index} exited:\n${proc.output()}`);
      assert.doesNotMatch(proc.output(), /\n\s+at .*:\d+:\d+\)?\n/, "no stack trace");
    }
  };

  before(async () => {
    lab = await Lab.create({ hosts: 2, tag: "kubeflt" });
    api = await startLabApi(lab, { faults: startupFaults() });
    await api.createNode("node1", ["10.244.1.0/24"], "172.31.0.1");
    await api.createNode("node2", ["10.244.2.0/24"], "172.31.0.2");
    // host 2 finds its node as flanneld does without NODE_NAME: from its pod's spec.nodeName (a GET).
    await api.kubectl(
      ["create", "--validate=false", "-f", "-"],
      JSON.stringify({
        apiVersion: "v1",
        kind: "Pod",
        metadata: { name: "weft-x2", namespace: "kube-system" },
        spec: { nodeName: "node2", containers: [{ name: "weft", image: "weft" }] },
      }),
    );
    for (const host of lab.hosts) await lab.addPodAddress(host, `10.244.${host.index}.1/24`);
  });

  after(async () => {
    await lab?.destroy();
  });

  test("the first requests of every kind fail: weftd comes up once the API answers and programs its peers", async () => {
    const host1 = lab.host(1);
    const host2 = lab.host(2);
    weftd.set(1, await lab.startWeftd(host1, api.weftdArgs(host1, NET_CONF), { NODE_NAME: "node1" }));
    // The pod GET needs pods "get", which weft's ClusterRole does not grant: host 2 runs as the admin.
    const args2 = api
      .weftdArgs(host2, NET_CONF)
      .map((a) => (a.startsWith("--kubeconfig-file=") ? `--kubeconfig-file=${api.adminKubeconfig}` : a));
    weftd.set(2, await lab.startWeftd(host2, args2, { POD_NAME: "weft-x2", POD_NAMESPACE: "kube-system" }));
    for (const proc of weftd.values()) await proc.waitForOutput(/datapath programmed/, 90_000);
    await until("node2 routed on host 1", 20_000, () => routed(host1, "10.244.2.0/24"));
    await until("node1 routed on host 2", 20_000, () => routed(host2, "10.244.1.0/24"));
    await until(
      "ping between the pod subnets",
      10_000,
      async () => (await lab.ping(host1, "10.244.2.1", { count: 1, source: "10.244.1.1" })).reachable,
    );
    for (const name of ["node1", "node2"]) {
      const node = await api.getNode(name);
      assert.equal(node.metadata.annotations[`${PREFIX}backend-type`], "vxlan");
      assert.equal(
        node.status.conditions.find((c: { type: string }) => c.type === "NetworkUnavailable")?.status,
        "False",
        name,
      );
    }
    // Every planned fault was really served, so each kind of request was failed and retried.
    const served = (await injected()).map(
      (f) => `${f.user === WEFT_USER ? "weft" : "admin"} ${f.verb} ${f.fault}`,
    );
    const planned = startupFaults().flatMap((r) =>
      r.faults.map((f) => `${r.user === WEFT_USER ? "weft" : "admin"} ${r.verb} ${f}`),
    );
    assert.deepEqual(served.sort(), planned.sort());
    assert.match(weftd.get(2)!.output(), /cannot read pod kube-system\/weft-x2 to find our node/);
    assert.match(weftd.get(1)!.output(), /cannot write the node's flannel annotations: .*; retrying/);
    assert.match(
      weftd.get(1)!.output(),
      /cannot list nodes \(cannot reach the Kubernetes API at \S+: ECONNRESET/,
    );
    assert.match(weftd.get(1)!.output(), /429 HTTP 429: Too many requests, please try again later/);
    assertAlive();
  });

  test("an API outage after start-up: peers added meanwhile arrive and our annotations are restored", async () => {
    const outage: FaultRule[] = [WEFT_USER, ADMIN_USER].flatMap((user) => [
      { verb: "list", resource: "nodes", user, faults: ["503", "reset", "500"] },
      { verb: "watch", resource: "nodes", user, faults: ["503", "reset", "429", "500", "503"] },
      { verb: "patch", resource: "nodes/status", user, faults: ["503", "reset", "504"] },
    ]);
    await setFaults(outage);
    await api.kubectl(["create", "--raw", "/weft-test/close-watches", "-f", "-"], "{}");
    // While both weftds retry their watch (about 15 s of backoff), the cluster changes and its history
    // is compacted: the watch that finally works gets 410 and each weftd re-lists (through the faults).
    await until("both weftds retrying their watch", 10_000, async () => {
      const served = await injected();
      return [WEFT_USER, ADMIN_USER].every((user) =>
        served.some((f) => f.user === user && f.verb === "watch" && f.fault === "reset"),
      );
    });
    await api.createNode("node3", ["10.244.3.0/24"], "172.31.0.3", peerAnnotations(3));
    // Someone strips node1's flannel annotations: weftd writes them back through the failing patches.
    await api.kubectl(["annotate", "node", "node1", `${PREFIX}backend-type-`, `${PREFIX}public-ip-`]);
    await api.kubectl(["create", "--raw", "/weft-test/compact", "-f", "-"], "{}");
    for (const host of lab.hosts)
      await until(`node3 routed on host ${host.index}`, 60_000, () => routed(host, "10.244.3.0/24"));
    await until("node1's annotations written back", 60_000, async () => {
      const annotations = (await api.getNode("node1")).metadata.annotations;
      return (
        annotations[`${PREFIX}backend-type`] === "vxlan" && annotations[`${PREFIX}public-ip`] === "172.31.0.1"
      );
    });
    const got = (await injected()).map((f) => `${f.user} ${f.verb} ${f.resource} ${f.fault}`);
    // host 2's annotations were left alone, so only host 1 patched (its annotations) during the outage.
    for (const rule of outage)
      for (const fault of rule.faults)
        if (rule.verb !== "patch" || rule.user === WEFT_USER)
          assert.ok(
            got.includes(`${rule.user} ${rule.verb} ${rule.resource} ${fault}`),
            `${rule.user} ${rule.verb} ${fault} not served:\n${got.join("\n")}\n${weftd.get(1)!.output()}`,
          );
    assertAlive();
    await setFaults([]);
  });

  test("a watch that goes silent without closing (half-open) is cut and resumed", {
    timeout: 200_000,
  }, async () => {
    await setFaults(
      [WEFT_USER, ADMIN_USER].map((user) => ({ verb: "watch", resource: "nodes", user, faults: ["stall"] })),
    );
    await api.kubectl(["create", "--raw", "/weft-test/close-watches", "-f", "-"], "{}");
    await until(
      "both watches stalled",
      10_000,
      async () => (await injected()).filter((f) => f.fault === "stall").length === 2,
    );
    const stalledAt = Date.now();
    await api.createNode("node4", ["10.244.4.0/24"], "172.31.0.4", peerAnnotations(4));
    for (const host of lab.hosts)
      await until(`node4 routed on host ${host.index}`, (WATCH_IDLE_S + 40) * 1000, () =>
        routed(host, "10.244.4.0/24"),
      );
    // Only the cut of the silent watch can have brought it: nothing else was sent on that connection.
    assert.ok(Date.now() - stalledAt >= (WATCH_IDLE_S - 5) * 1000, "not before the idle limit");
    for (const proc of weftd.values())
      assert.match(proc.output(), new RegExp(`the watch carried no data for ${WATCH_IDLE_S} s`));
    assertAlive();
  });
});
