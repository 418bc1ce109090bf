/**
 * weftd with the ipip backend on 3 hosts: flannel.ipip as flanneld makes it, routes onlink via each
 * peer's PublicIP through it, pods reach each other. The kernel must have ipip: this is checked at run
 * time with a throwaway `ip link add ... type ipip` in a lab namespace, and the test is skipped, saying
 * so, on a kernel without it (this machine's has none; the request bytes are checked by
 * test/unit/ipip-backend.test.ts against iproute2's instead).
 */
import assert from "node:assert/strict";
import { after, before, describe, it, type TestContext } from "node:test";
import { Lab } from "./lab.js";
import { addPods, assertFullMeshPing, type Cluster, PREFIX, startCluster } from "./weft-cluster.js";

const IPIP = '{"Network":"10.244.0.0/16","Backend":{"Type":"ipip"}}';

/** t.skip(reason), and the reason printed under bun test, whose reporter shows a skip without its reason. */
function skip(t: TestContext, reason: string): void {
  t.skip(reason);
  if (process.versions.bun) console.log(`# SKIP ${t.name}: ${reason}`);
}

describe("weftd with ipip on 3 hosts", { timeout: 120_000 }, () => {
  let lab: Lab;
  let noIpip: string | undefined;
  let cluster: Cluster;
  let pods: string[];

  before(async () => {
    lab = await Lab.create({ hosts: 3, tag: "ipip" });
    const probe = await lab.exec(lab.host(1), [
      "ip",
      "link",
      "add",
      "weftprobe0",
      "type",
      "ipip",
      "local",
      lab.host(1).ip,
    ]);
    if (probe.code !== 0) {
      noIpip = `this kernel cannot make ipip devices (\`ip link add type ipip\`: ${probe.stderr.trim()}): no ipip module`;
      return;
    }
    await lab.run(lab.host(1), ["ip", "link", "del", "weftprobe0"]);
    cluster = await startCluster(lab, IPIP);
    pods = await addPods(lab, cluster.leases);
  });
  after(async () => lab?.destroy());

  it("stops with one clear error on a kernel without ipip", async (t) => {
    if (!noIpip) return skip(t, "this kernel has ipip");
    await lab.startEtcd();
    await lab.etcdctl(["put", `${PREFIX}/config`, IPIP]);
    const weftd = await lab.startWeftd(lab.host(1));
    const status = await weftd.exited;
    assert.equal(status.code, 1, weftd.output());
    const errors = weftd
      .output()
      .split("\n")
      .filter((line) => line.startsWith("E"));
    assert.equal(errors.length, 1, weftd.output());
    assert.match(errors[0]!, /the kernel cannot make ipip devices \(no ipip module/);
    assert.doesNotMatch(weftd.output(), /^\s+at /m, "no stack trace");
  });

  it("makes flannel.ipip: local = the host's address, MTU 1480, the subnet's .0/32", async (t) => {
    if (noIpip) return skip(t, noIpip);
    const [link] = JSON.parse(
      await lab.run(lab.host(1), ["ip", "-d", "-json", "addr", "show", "flannel.ipip"]),
    );
    assert.equal(link.mtu, 1480);
    assert.equal(link.linkinfo.info_kind, "ipip");
    assert.equal(link.linkinfo.info_data.local, lab.host(1).ip);
    assert.deepEqual(
      link.addr_info
        .filter((a: { family: string }) => a.family === "inet")
        .map((a: { local: string; prefixlen: number }) => `${a.local}/${a.prefixlen}`),
      [`${cluster.leases[0]!.base}.0/32`],
    );
  });

  it("routes every peer's subnet onlink via its PublicIP through flannel.ipip", async (t) => {
    if (noIpip) return skip(t, noIpip);
    const routes = JSON.parse(
      await lab.run(lab.host(1), ["ip", "-json", "route", "show", "dev", "flannel.ipip"]),
    );
    for (const [j, lease] of cluster.leases.entries()) {
      if (j === 0) continue;
      const route = routes.find((r: { dst: string }) => r.dst === lease.subnet);
      assert.ok(route, `no route to ${lease.subnet}: ${JSON.stringify(routes)}`);
      assert.equal(route.gateway, lab.host(j + 1).ip);
      assert.ok(route.flags.includes("onlink"));
    }
  });

  it("lets every host's pods reach every other host's pods", async (t) => {
    if (noIpip) return skip(t, noIpip);
    await assertFullMeshPing(lab, pods);
  });
});
