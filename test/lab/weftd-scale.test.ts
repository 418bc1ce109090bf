/** Ten agents started at the same moment all find all nine peers (flanneld v0.20.2 loses some here). */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { withLab } from "./lab.js";
import { PREFIX, routeDestinations, VXLAN, waitFor, waitForLeases } from "./weft-cluster.js";

describe("10 agents at once", { timeout: 120_000 }, () => {
  it("each sees all 9 peers within 10 s", async () => {
    await withLab({ hosts: 10, tag: "scale" }, async (lab) => {
      await lab.startEtcd();
      await lab.etcdctl(["put", `${PREFIX}/config`, VXLAN]);
      const started = Date.now();
      const weftds = await Promise.all(lab.hosts.map((h) => lab.startWeftd(h)));
      const leases = await waitForLeases(lab, weftds, 10_000);
      assert.equal(new Set(leases.map((l) => l.subnet)).size, 10, "ten distinct subnets");
      const remaining = () => 10_000 - (Date.now() - started);
      for (const [i, host] of lab.hosts.entries()) {
        const others = leases.filter((_, j) => j !== i).map((l) => l.subnet);
        await waitFor(
          `all 9 peers on ${host.name}`,
          async () => {
            const have = new Set(await routeDestinations(lab, host));
            return others.every((s) => have.has(s));
          },
          Math.max(0, remaining()),
        );
      }
      assert.ok(Date.now() - started <= 10_000);
    });
  });
});
