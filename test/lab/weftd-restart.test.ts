/** Killing weftd and starting it again: same subnet, same VTEP MAC, and not one ping lost meanwhile. */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { Lab } from "./lab.js";
import {
  addPods,
  type Cluster,
  PREFIX,
  readLease,
  sleep,
  startCluster,
  VXLAN,
  waitForFullMesh,
} from "./weft-cluster.js";

async function vtepMac(lab: Lab, hostIndex: number): Promise<string> {
  const [link] = JSON.parse(
    await lab.run(lab.host(hostIndex), ["ip", "-json", "link", "show", "flannel.1"]),
  ) as Array<{ address: string }>;
  return link!.address;
}

describe("weftd restart", { timeout: 120_000 }, () => {
  let lab: Lab;
  let cluster: Cluster;
  let pods: string[];

  before(async () => {
    lab = await Lab.create({ hosts: 3, tag: "restart" });
    cluster = await startCluster(lab, VXLAN, ["--ip-masq"]);
    pods = await addPods(lab, cluster.leases);
  });
  after(async () => lab?.destroy());

  it("keeps the subnet and the MAC and loses no ping across kill -9 and start", async () => {
    const macBefore = await vtepMac(lab, 1);
    const keysBefore = (await lab.etcdGetPrefix(`${PREFIX}/subnets/`)).map((kv) => kv.key).sort();
    // 160 pings 50 ms apart (8 s) from host 1's pod to host 2's pod while host 1's agent restarts.
    const ping = await lab.spawn(lab.host(1), [
      "ping",
      "-n",
      "-i",
      "0.05",
      "-c",
      "160",
      "-W",
      "1",
      "-I",
      pods[0]!,
      pods[1]!,
    ]);
    await sleep(1000);
    await cluster.weftds[0]!.stop("SIGKILL");
    await sleep(500);
    const again = await lab.startWeftd(lab.host(1), ["--ip-masq"]);
    await again.waitForOutput(/datapath programmed/, 10_000);
    // Host 2's agent restarts too, cleanly this time.
    await cluster.weftds[1]!.stop("SIGTERM");
    const again2 = await lab.startWeftd(lab.host(2), ["--ip-masq"]);
    await again2.waitForOutput(/datapath programmed/, 10_000);
    await ping.exited;
    const summary = /(\d+) packets transmitted, (\d+) received/.exec(ping.output());
    assert.ok(summary, `no ping summary in:\n${ping.output()}`);
    assert.equal(
      summary[2],
      summary[1],
      `pings lost during the restart:\n${ping.output().split("\n").slice(-4).join("\n")}`,
    );

    assert.deepEqual(await readLease(lab, lab.host(1)), cluster.leases[0], "host 1 kept its subnet");
    assert.deepEqual(await readLease(lab, lab.host(2)), cluster.leases[1], "host 2 kept its subnet");
    assert.equal(await vtepMac(lab, 1), macBefore, "the vxlan device and its MAC were kept");
    assert.deepEqual((await lab.etcdGetPrefix(`${PREFIX}/subnets/`)).map((kv) => kv.key).sort(), keysBefore);
    assert.match(again.output(), /kept vxlan device flannel\.1/);
    await waitForFullMesh(lab, cluster.leases, 5000);
  });

  it("leaves the datapath in place after SIGTERM", async () => {
    const host = lab.host(3);
    const before = await lab.run(host, ["ip", "route", "show", "dev", "flannel.1"]);
    const status = await cluster.weftds[2]!.stop("SIGTERM");
    assert.equal(status.code, 0, "weftd exits 0 on SIGTERM");
    const afterStop = await lab.run(host, ["ip", "route", "show", "dev", "flannel.1"]);
    assert.equal(afterStop, before);
    assert.ok(
      (await lab.ping(host, pods[0]!, { source: pods[2], count: 2 })).reachable,
      "traffic flows with no agent",
    );
  });
});
