/** etcd gone for 30 s: the datapath keeps working, and weftd catches up once etcd is back. */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { withLab } from "./lab.js";
import {
  addPods,
  PREFIX,
  readLease,
  routeDestinations,
  sleep,
  VXLAN,
  waitFor,
  waitForFullMesh,
  waitForLeases,
} from "./weft-cluster.js";

describe("etcd outage", { timeout: 150_000 }, () => {
  it("keeps pings flowing for 30 s without etcd and programs a lease added after it returns", async () => {
    await withLab({ hosts: 4, tag: "outage" }, async (lab) => {
      await lab.startEtcd();
      await lab.etcdctl(["put", `${PREFIX}/config`, VXLAN]);
      const three = lab.hosts.slice(0, 3);
      const weftds = await Promise.all(three.map((h) => lab.startWeftd(h)));
      const leases = await waitForLeases(lab, weftds, 10_000, three);
      await waitForFullMesh(lab, leases, 10_000, weftds, three);
      const pods = await addPods(lab, leases, three);

      // 150 pings over 30 s from host 1's pod to host 2's pod, while etcd is down.
      const ping = await lab.spawn(lab.host(1), [
        "ping",
        "-n",
        "-i",
        "0.2",
        "-c",
        "150",
        "-W",
        "1",
        "-I",
        pods[0]!,
        pods[1]!,
      ]);
      await lab.stopEtcd();
      await sleep(30_000);
      await ping.exited;
      const summary = /(\d+) packets transmitted, (\d+) received/.exec(ping.output());
      assert.ok(summary, ping.output());
      assert.equal(summary[2], summary[1], "no ping lost while etcd was down");
      for (const w of weftds) assert.ok(w.running, `weftd survived the outage:\n${w.output()}`);

      await lab.startEtcd();
      const late = lab.host(4);
      const w4 = await lab.startWeftd(late);
      await waitFor(
        `subnet.env of ${late.name}`,
        async () => (await readLease(lab, late)) !== undefined,
        15_000,
      );
      const lease4 = (await readLease(lab, late))!;
      for (const [i, host] of three.entries()) {
        await waitFor(
          `${host.name} to route to the new lease ${lease4.subnet}`,
          async () => (await routeDestinations(lab, host)).includes(lease4.subnet),
          15_000,
        ).catch((err: Error) => {
          throw new Error(`${err.message}\n${weftds[i]!.output()}`);
        });
      }
      assert.match(weftds[0]!.output(), /etcd watch interrupted|cannot list leases/);
      assert.ok(w4.running);
    });
  });
});
