/** Kernel state deleted by hand comes back, driven by netlink events, within a second. */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { Lab } from "./lab.js";
import { addPods, type Cluster, PREFIX, startCluster, VXLAN, waitFor } from "./weft-cluster.js";

describe("weftd self-healing", { timeout: 120_000 }, () => {
  let lab: Lab;
  let cluster: Cluster;
  let pods: string[];
  let peerMac: string;
  let peerVtep: string;

  before(async () => {
    lab = await Lab.create({ hosts: 2, tag: "heal" });
    cluster = await startCluster(lab, VXLAN, ["--ip-masq", "--iptables-resync=1"]);
    pods = await addPods(lab, cluster.leases);
    const h2 = (await lab.etcdGetPrefix(`${PREFIX}/subnets/`)).find((kv) =>
      kv.value.includes('"172.31.0.2"'),
    )!;
    peerMac = JSON.parse(h2.value).BackendData.VtepMAC;
    peerVtep = `${cluster.leases[1]!.base}.0`;
  });
  after(async () => lab?.destroy());

  const h1 = () => lab.host(1);
  const has = async (argv: string[], needle: string) => (await lab.run(h1(), argv)).includes(needle);

  it("restores a deleted route within 1 s", async () => {
    const subnet = cluster.leases[1]!.subnet;
    await lab.run(h1(), ["ip", "route", "del", subnet]);
    const ms = await waitFor("the route to come back", () => has(["ip", "route"], subnet), 1000, 10);
    assert.ok(ms <= 1000, `took ${ms} ms`);
  });

  it("restores a deleted neighbour entry within 1 s", async () => {
    // `ip neigh del` fails unless the entry was there; checking its absence afterwards would race the repair.
    await lab.run(h1(), ["ip", "neigh", "del", peerVtep, "dev", "flannel.1"]);
    const ms = await waitFor(
      "the neighbour to come back",
      () => has(["ip", "neigh", "show", "dev", "flannel.1"], peerMac),
      1000,
      10,
    );
    assert.ok(ms <= 1000, `took ${ms} ms`);
  });

  it("restores a deleted FDB entry within 1 s", async () => {
    await lab.run(h1(), ["bridge", "fdb", "del", peerMac, "dev", "flannel.1", "dst", "172.31.0.2"]);
    const ms = await waitFor(
      "the fdb entry to come back",
      () => has(["bridge", "fdb", "show", "dev", "flannel.1"], `${peerMac} dst 172.31.0.2`),
      1000,
      10,
    );
    assert.ok(ms <= 1000, `took ${ms} ms`);
  });

  it("re-creates a deleted vxlan device with the same MAC, and traffic flows again", async () => {
    const [before] = JSON.parse(await lab.run(h1(), ["ip", "-json", "link", "show", "flannel.1"])) as Array<{
      address: string;
    }>;
    await lab.run(h1(), ["ip", "link", "del", "flannel.1"]);
    await waitFor(
      "flannel.1 and its route to come back",
      () => has(["ip", "route"], `${cluster.leases[1]!.subnet} via`),
      2000,
      20,
    );
    const [after] = JSON.parse(await lab.run(h1(), ["ip", "-json", "link", "show", "flannel.1"])) as Array<{
      address: string;
    }>;
    assert.equal(after!.address, before!.address, "same MAC, so peers' FDB entries stay valid");
    assert.ok((await lab.ping(h1(), pods[1]!, { source: pods[0], count: 2 })).reachable);
  });

  it("removes a stale route to a subnet nobody holds, and leaves foreign routes alone", async () => {
    await lab.run(h1(), [
      "ip",
      "route",
      "add",
      "10.244.250.0/24",
      "via",
      "10.244.250.0",
      "dev",
      "flannel.1",
      "onlink",
    ]);
    await lab.run(h1(), ["ip", "route", "add", "192.168.77.0/24", "via", "172.31.0.2", "dev", "eth0"]);
    await waitFor(
      "the stale route to go",
      async () => !(await has(["ip", "route"], "10.244.250.0/24")),
      1000,
      10,
    );
    assert.ok(
      await has(["ip", "route"], "192.168.77.0/24"),
      "a route outside the flannel network is not ours",
    );
  });

  it("restores iptables rules flushed by hand within --iptables-resync", async () => {
    await lab.run(h1(), ["iptables", "-t", "nat", "-F", "FLANNEL-POSTRTG"]);
    await waitFor(
      "FLANNEL-POSTRTG rules to come back",
      () => has(["iptables-save", "-t", "nat"], "-A FLANNEL-POSTRTG"),
      3000,
      50,
    );
    const rules = (await lab.run(h1(), ["iptables-save", "-t", "nat"]))
      .split("\n")
      .filter((l) => l.startsWith("-A FLANNEL-POSTRTG"));
    assert.equal(rules.length, 5);
  });
});
