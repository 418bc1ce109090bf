// Kube mode with udp, flannel's default backend (net-conf.json names no Backend): three hosts reach each
// other's pods through flannel0, and the annotations are flanneld's udp values (an empty backend-type,
// backend-data "null"), so a node running flanneld takes weft's nodes as udp peers and weft takes theirs.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { type LabApi, startLabApi } from "../kube-api/lab-api.js";
import { Lab } from "./lab.js";

const NET_CONF = { Network: "10.244.0.0/16" };
const PREFIX = "flannel.alpha.coreos.com/";

describe("kube mode, udp (no Backend), three hosts", { timeout: 180_000 }, () => {
  let lab: Lab;
  let api: LabApi;

  before(async () => {
    lab = await Lab.create({ hosts: 3, tag: "kubeudp" });
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

  test("every host's pods reach every other's through flannel0", async () => {
    const routes = await lab.run(lab.host(1), ["ip", "-4", "route", "show", "dev", "flannel0"]);
    assert.equal(routes.trim(), "10.244.0.0/16");
    for (const from of lab.hosts) {
      for (const to of lab.hosts) {
        if (from === to) continue;
        const deadline = Date.now() + 8_000;
        const ping = () =>
          lab.ping(from, `10.244.${to.index}.1`, { count: 1, source: `10.244.${from.index}.1` });
        let result = await ping();
        while (!result.reachable && Date.now() < deadline) result = await ping();
        assert.ok(result.reachable, `${from.index} -> ${to.index}: ${result.output}`);
      }
    }
  });

  test("annotations are flanneld's udp values", async () => {
    for (const host of lab.hosts) {
      const node = await api.getNode(`node${host.index}`);
      assert.deepEqual(node.metadata.annotations, {
        [`${PREFIX}backend-data`]: "null",
        [`${PREFIX}backend-type`]: "",
        [`${PREFIX}kube-subnet-manager`]: "true",
        [`${PREFIX}public-ip`]: host.ip,
      });
    }
  });
});
