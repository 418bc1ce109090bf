/** Three hosts per backend: every pod subnet reaches every other, and traffic flows (iperf3). */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { Lab } from "./lab.js";
import { addPods, assertFullMeshPing, type Cluster, HOST_GW, startCluster, VXLAN } from "./weft-cluster.js";

for (const [backend, config] of [
  ["vxlan", VXLAN],
  ["host-gw", HOST_GW],
] as const) {
  describe(`weftd with ${backend} on 3 hosts`, { timeout: 120_000 }, () => {
    let lab: Lab;
    let cluster: Cluster;
    let pods: string[];

    before(async () => {
      lab = await Lab.create({ hosts: 3, tag: backend.replace("-", "") });
      cluster = await startCluster(lab, config, ["--ip-masq"]);
      pods = await addPods(lab, cluster.leases);
    });
    after(async () => lab?.destroy());

    it("gives every host its own /24 of the network", () => {
      const subnets = cluster.leases.map((l) => l.subnet);
      assert.equal(new Set(subnets).size, 3, `subnets should differ: ${subnets}`);
      for (const s of subnets) assert.match(s, /^10\.244\.\d+\.0\/24$/);
    });

    it("lets every host's pods reach every other host's pods", async () => {
      await assertFullMeshPing(lab, pods);
    });

    it("carries an iperf3 run between pods on different hosts", async () => {
      const bps = await lab.iperf3(lab.host(2), lab.host(1), pods[1]!, { seconds: 2 });
      assert.ok(bps > 10e6, `throughput ${bps} bit/s is implausibly low`);
    });
  });
}
