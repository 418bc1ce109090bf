// Kube mode on the lab: three hosts running weftd --kube-subnet-mgr against the test API server in the
// fabric, vxlan backend. Checks flannel's wire details (annotations, patches, request pattern), peers
// added and removed, a node annotated by flanneld, a node waiting for its pod CIDR, and a restart.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { readReference, section } from "../helpers/reference.js";
import { type LabApi, startLabApi } from "../kube-api/lab-api.js";
import { Lab, type LabHost, type LabProcess } from "./lab.js";

const NET_CONF = { Network: "10.244.0.0/16", Backend: { Type: "vxlan" } };
const PREFIX = "flannel.alpha.coreos.com/";

/** Reference annotations and conditions flanneld v0.20.2 left on its nodes, by node name. */
function referenceNodes(): Map<string, { annotations: Record<string, string>; conditions: any[] }> {
  const body = section(readReference("flanneld-v0.20.2", "kube-vxlan.txt"), "resulting Node annotations");
  const nodes = new Map<string, { annotations: Record<string, string>; conditions: any[] }>();
  for (const line of body.split("\n")) {
    const [name, ...rest] = line.split(" ");
    const value = JSON.parse(rest.join(" "));
    const entry = nodes.get(name!) ?? { annotations: {}, conditions: [] };
    if (Array.isArray(value)) entry.conditions = value;
    else entry.annotations = value;
    nodes.set(name!, entry);
  }
  return nodes;
}

async function until<T>(
  what: string,
  timeoutMs: number,
  probe: () => Promise<T | undefined | false>,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const value = await probe();
      if (value) return value;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline)
      throw new Error(`${what}: not within ${timeoutMs} ms${last ? ` (${(last as Error).message})` : ""}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function vtepMac(lab: Lab, host: LabHost): Promise<string> {
  return JSON.parse(await lab.run(host, ["ip", "-j", "link", "show", "flannel.1"]))[0].address;
}

describe("kube mode, vxlan, three hosts", { timeout: 240_000 }, () => {
  let lab: Lab;
  let api: LabApi;
  const weftd = new Map<number, LabProcess>();
  const reference = referenceNodes();

  const start = async (host: LabHost) => {
    const proc = await lab.startWeftd(host, api.weftdArgs(host, NET_CONF, ["--ip-masq"]), {
      NODE_NAME: `node${host.index}`,
    });
    weftd.set(host.index, proc);
    return proc;
  };

  before(async () => {
    lab = await Lab.create({ hosts: 3, tag: "kubevx" });
    api = await startLabApi(lab);
    await api.createNode("node1", ["10.244.1.0/24"], "172.31.0.1");
    // node2 carries exactly what flanneld v0.20.2 wrote on its node2 (as if flanneld ran there before).
    await api.createNode("node2", ["10.244.2.0/24"], "172.31.0.2", reference.get("node2")!.annotations);
    // node3 has no pod CIDR yet: its weftd must wait, saying so.
    await api.createNode("node3", [], "172.31.0.3");
    for (const host of lab.hosts) await lab.addPodAddress(host, `10.244.${host.index}.1/24`);
  });

  after(async () => {
    await lab?.destroy();
  });

  test("a flanneld-annotated node is a peer before weft runs on it", async () => {
    const host1 = lab.host(1);
    const proc = await start(host1);
    await proc.waitForOutput(/datapath programmed/, 20_000);
    const refMac = JSON.parse(reference.get("node2")!.annotations[`${PREFIX}backend-data`]!).VtepMAC;
    await until("route to node2 via flannel.1", 5_000, async () =>
      (await lab.run(host1, ["ip", "route", "show", "10.244.2.0/24"])).includes(
        "via 10.244.2.0 dev flannel.1 onlink",
      ),
    );
    assert.match(
      await lab.run(host1, ["ip", "neigh", "show", "dev", "flannel.1"]),
      new RegExp(`10\\.244\\.2\\.0 lladdr ${refMac}`),
    );
    assert.match(
      await lab.run(host1, ["bridge", "fdb", "show", "dev", "flannel.1"]),
      new RegExp(`${refMac} dst 172\\.31\\.0\\.2`),
    );
  });

  test("a node without a pod CIDR waits with a clear message, then goes on once it has one", async () => {
    const proc = await start(lab.host(3));
    await proc.waitForOutput(/waiting for node node3 to get a pod CIDR/, 15_000);
    assert.ok(proc.running);
    await api.kubectl([
      "patch",
      "node",
      "node3",
      "--type=merge",
      "-p",
      JSON.stringify({ spec: { podCIDR: "10.244.3.0/24", podCIDRs: ["10.244.3.0/24"] } }),
    ]);
    await proc.waitForOutput(/datapath programmed/, 15_000);
  });

  test("every host reaches every other host's pod subnet", async () => {
    await start(lab.host(2));
    await weftd.get(2)!.waitForOutput(/datapath programmed/, 20_000);
    for (const from of lab.hosts) {
      for (const to of lab.hosts) {
        if (from === to) continue;
        await until(
          `ping ${from.index} -> ${to.index}`,
          8_000,
          async () =>
            (await lab.ping(from, `10.244.${to.index}.1`, { count: 1, source: `10.244.${from.index}.1` }))
              .reachable,
        );
      }
    }
  });

  test("annotations hold flannel's exact values and NetworkUnavailable is False", async () => {
    const refKeys = Object.keys(reference.get("node1")!.annotations).sort();
    for (const host of lab.hosts) {
      const node = await until(`node${host.index} annotated and marked`, 5_000, async () => {
        const n = await api.getNode(`node${host.index}`);
        return n.status.conditions.some((c: any) => c.type === "NetworkUnavailable") ? n : undefined;
      });
      const annotations = node.metadata.annotations;
      assert.deepEqual(Object.keys(annotations).sort(), refKeys);
      assert.equal(annotations[`${PREFIX}backend-data`], `{"VNI":1,"VtepMAC":"${await vtepMac(lab, host)}"}`);
      assert.equal(annotations[`${PREFIX}backend-type`], "vxlan");
      assert.equal(annotations[`${PREFIX}kube-subnet-manager`], "true");
      assert.equal(annotations[`${PREFIX}public-ip`], host.ip);
      const condition = node.status.conditions.find((c: any) => c.type === "NetworkUnavailable");
      const refCondition = reference.get("node1")!.conditions[0];
      assert.deepEqual(Object.keys(condition).sort(), Object.keys(refCondition).sort());
      assert.equal(condition.status, "False");
      assert.equal(condition.reason, refCondition.reason);
      assert.equal(condition.message, refCondition.message);
      assert.match(condition.lastTransitionTime, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
    }
  });

  test("requests follow flanneld's pattern: list at rv 0, watch with bookmarks, strategic patches of nodes/status", async () => {
    type Entry = { method: string; url: string; contentType: string; body: string; user: string };
    // Each agent patches its annotations (unless they already hold its values, as node2's flanneld-written
    // ones do: it re-creates flannel.1 with the MAC they name), then NetworkUnavailable.
    const weft = await until("a NetworkUnavailable patch per node in the request log", 5_000, async () => {
      const log = JSON.parse(await api.kubectl(["get", "--raw", "/weft-test/requests"])) as Entry[];
      const entries = log.filter((e) => e.user.startsWith("system:serviceaccount"));
      const marked = ["node1", "node2", "node3"].every((n) =>
        entries.some(
          (e) => e.method === "PATCH" && e.url.includes(`/${n}/`) && e.body.includes("NetworkUnavailable"),
        ),
      );
      return marked ? entries : undefined;
    });
    assert.ok(weft.some((e) => e.method === "GET" && e.url === "/api/v1/nodes?limit=500&resourceVersion=0"));
    assert.ok(
      weft.some((e) =>
        /^\/api\/v1\/nodes\?allowWatchBookmarks=true&resourceVersion=\d+&timeout=\d+m\d+s&timeoutSeconds=\d+&watch=true$/.test(
          e.url,
        ),
      ),
    );
    const patches = weft.filter((e) => e.method === "PATCH");
    assert.ok(patches.length >= 5);
    for (const p of patches) {
      assert.match(p.url, /^\/api\/v1\/nodes\/node\d\/status$/);
      assert.equal(p.contentType, "application/strategic-merge-patch+json");
    }
    // node1's annotation patch equals flanneld's byte for byte, but for the MAC and the address.
    const refRequests = section(
      readReference("flanneld-v0.20.2", "kube-vxlan.txt"),
      "requests flanneld made",
    );
    const refLines = refRequests.split("\n");
    const refNode1Patch =
      refLines[
        refLines.indexOf("PATCH /api/v1/nodes/node1/status ct=application/strategic-merge-patch+json") + 1
      ]!;
    const ours = patches.find((p) => p.url.includes("node1") && p.body.includes("annotations"))!.body;
    const mac = JSON.parse(JSON.parse(ours).metadata.annotations[`${PREFIX}backend-data`]).VtepMAC;
    assert.equal(ours, refNode1Patch.replace("c6:64:a8:c8:95:b1", mac));
    const refCondition = refLines.find((l) => l.includes("NetworkUnavailable"))!;
    const ourCondition = patches.find(
      (p) => p.url.includes("node1") && p.body.includes("NetworkUnavailable"),
    )!.body;
    const stamp = /\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ/g;
    assert.equal(ourCondition.replace(stamp, "T"), refCondition.replace(stamp, "T"));
    // The verbs weft uses are exactly the ClusterRole's: no refusals.
    assert.equal(
      weft.filter((e) => e.method === "DELETE" || e.method === "POST" || e.method === "PUT").length,
      0,
    );
  });

  test("a node added later is programmed on the others within a second; a deleted one is removed", async () => {
    const annotations = {
      [`${PREFIX}backend-data`]: '{"VNI":1,"VtepMAC":"02:42:ac:1f:00:04"}',
      [`${PREFIX}backend-type`]: "vxlan",
      [`${PREFIX}kube-subnet-manager`]: "true",
      [`${PREFIX}public-ip`]: "172.31.0.4",
    };
    const started = Date.now();
    await api.createNode("node4", ["10.244.4.0/24"], "172.31.0.4", annotations);
    const created = Date.now();
    for (const host of lab.hosts) {
      await until(`node4 route on host ${host.index}`, 1_000 + (created - started), async () =>
        (await lab.run(host, ["ip", "route", "show", "10.244.4.0/24"])).includes(
          "via 10.244.4.0 dev flannel.1 onlink",
        ),
      );
    }
    await api.kubectl(["delete", "node", "node4"]);
    for (const host of lab.hosts) {
      await until(
        `node4 route gone on host ${host.index}`,
        2_000,
        async () => (await lab.run(host, ["ip", "route", "show", "10.244.4.0/24"])).trim() === "",
      );
    }
  });

  test("after the API compacts its history and drops watches, peers still converge (410 -> re-list)", async () => {
    await api.kubectl(["create", "--raw", "/weft-test/compact", "-f", "-"], "{}");
    await api.kubectl(["create", "--raw", "/weft-test/close-watches", "-f", "-"], "{}");
    await api.createNode("node5", ["10.244.5.0/24"], "172.31.0.5", {
      [`${PREFIX}backend-data`]: '{"VNI":1,"VtepMAC":"02:42:ac:1f:00:05"}',
      [`${PREFIX}backend-type`]: "vxlan",
      [`${PREFIX}kube-subnet-manager`]: "true",
      [`${PREFIX}public-ip`]: "172.31.0.5",
    });
    for (const host of lab.hosts) {
      await until(`node5 route on host ${host.index}`, 5_000, async () =>
        (await lab.run(host, ["ip", "route", "show", "10.244.5.0/24"])).includes("dev flannel.1"),
      );
    }
    await api.kubectl(["delete", "node", "node5"]);
  });

  test("restarting weftd keeps the VTEP MAC and the subnet, and no ping is lost", async () => {
    const host2 = lab.host(2);
    const macBefore = await vtepMac(lab, host2);
    const annotationBefore = (await api.getNode("node2")).metadata.annotations[`${PREFIX}backend-data`];
    const pinging = lab.ping(lab.host(1), "10.244.2.1", {
      count: 40,
      intervalSeconds: 0.1,
      source: "10.244.1.1",
      timeoutMs: 15_000,
    });
    await new Promise((r) => setTimeout(r, 500));
    await weftd.get(2)!.stop("SIGTERM", 5_000);
    const proc = await start(host2);
    await proc.waitForOutput(/datapath programmed/, 20_000);
    const result = await pinging;
    assert.equal(result.received, result.transmitted, result.output);
    assert.equal(await vtepMac(lab, host2), macBefore);
    assert.equal(
      (await api.getNode("node2")).metadata.annotations[`${PREFIX}backend-data`],
      annotationBefore,
    );
    assert.match(proc.output(), /lease 10\.244\.2\.0-24/);
  });

  test("after a reboot (device gone) weftd re-creates flannel.1 with the MAC from its annotation", async () => {
    const host2 = lab.host(2);
    const macBefore = await vtepMac(lab, host2);
    await weftd.get(2)!.stop("SIGTERM", 5_000);
    await lab.run(host2, ["ip", "link", "del", "flannel.1"]);
    const proc = await start(host2);
    await proc.waitForOutput(/datapath programmed/, 20_000);
    assert.match(proc.output(), /created vxlan device flannel\.1/);
    assert.equal(await vtepMac(lab, host2), macBefore, "the MAC peers know is kept");
    const ping = await lab.ping(lab.host(1), "10.244.2.1", { source: "10.244.1.1", count: 2 });
    assert.ok(ping.reachable, ping.output);
  });
});
