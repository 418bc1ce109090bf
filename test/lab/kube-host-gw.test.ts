// Kube mode with the host-gw backend on the lab: three hosts, routes via each other, flannel's annotations
// (host-gw's backend-data is "null", as flanneld writes it) and NetworkUnavailable=False.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { type LabApi, startLabApi } from "../kube-api/lab-api.js";
import { Lab } from "./lab.js";

const NET_CONF = { Network: "10.244.0.0/16", Backend: { Type: "host-gw" } };
const PREFIX = "flannel.alpha.coreos.com/";

describe("kube mode, host-gw, three hosts", { timeout: 180_000 }, () => {
  let lab: Lab;
  let api: LabApi;

  before(async () => {
    lab = await Lab.create({ hosts: 3, tag: "kubehg" });
    api = await startLabApi(lab);
    for (const host of lab.hosts) {
      await api.createNode(`node${host.index}`, [`10.244.${host.index}.0/24`], host.ip);
      await lab.addPodAddress(host, `10.244.${host.index}.1/24`);
    }
    for (const host of lab.hosts) {
      const proc = await lab.startWeftd(host, api.weftdArgs(host, NET_CONF), {
        NODE_NAME: `node${host.index}`,
      });
      await proc.waitForOutput(/datapath programmed/, 20_000);
    }
  });

  after(async () => {
    await lab?.destroy();
  });

  test("peers' subnets are routed via their hosts and reachable", async () => {
    const routes = await lab.run(lab.host(1), ["ip", "route", "show", "10.244.2.0/24"]);
    assert.match(routes, /10\.244\.2\.0\/24 via 172\.31\.0\.2 dev eth0/);
    for (const from of lab.hosts) {
      for (const to of lab.hosts) {
        if (from === to) continue;
        const deadline = Date.now() + 8_000;
        let result = await lab.ping(from, `10.244.${to.index}.1`, {
          count: 1,
          source: `10.244.${from.index}.1`,
        });
        while (!result.reachable && Date.now() < deadline)
          result = await lab.ping(from, `10.244.${to.index}.1`, {
            count: 1,
            source: `10.244.${from.index}.1`,
          });
        assert.ok(result.reachable, `${from.index} -> ${to.index}: ${result.output}`);
      }
    }
  });

  test("annotations are flanneld's host-gw values and NetworkUnavailable is False", async () => {
    for (const host of lab.hosts) {
      let node = await api.getNode(`node${host.index}`);
      const deadline = Date.now() + 5_000;
      while (
        !node.status.conditions.some((c: any) => c.type === "NetworkUnavailable") &&
        Date.now() < deadline
      ) {
        await new Promise((r) => setTimeout(r, 100));
        node = await api.getNode(`node${host.index}`);
      }
      assert.deepEqual(node.metadata.annotations, {
        [`${PREFIX}backend-data`]: "null",
        [`${PREFIX}backend-type`]: "host-gw",
        [`${PREFIX}kube-subnet-manager`]: "true",
        [`${PREFIX}public-ip`]: host.ip,
      });
      const condition = node.status.conditions.find((c: any) => c.type === "NetworkUnavailable");
      assert.equal(condition.status, "False");
      assert.equal(condition.reason, "FlannelIsUp");
    }
  });
});
