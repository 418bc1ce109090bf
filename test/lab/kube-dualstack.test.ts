// Kube mode with IPv6 on an IPv6 underlay: three Nodes with podCIDRs of both families on the test API
// server; weftd --kube-subnet-mgr restarted on the same lab with dual-stack vxlan, dual-stack host-gw,
// IPv6-only vxlan and IPv6-only host-gw, then a public-ipv6-overwrite. Checks the annotations flanneld
// writes for each (the v6 ones included), subnet.env from podCIDRs, and traffic of both families (ping -4/-6
// between subnet addresses, iperf3 over IPv6, IPv6 masquerade to the fabric).
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { type LabApi, startLabApi } from "../kube-api/lab-api.js";
import { assertMeshReachable, type PodAddresses, sourceSeenByFabric, waitForPods } from "./ipv6-traffic.js";
import { Lab, type LabProcess } from "./lab.js";
import { waitFor } from "./weft-cluster.js";

const PREFIX = "flannel.alpha.coreos.com/";

function netConf(backend: string, v4: boolean): object {
  const v6 = { EnableIPv6: true, IPv6Network: "fd44::/56", Backend: { Type: backend } };
  return v4 ? { Network: "10.244.0.0/16", ...v6 } : { EnableIPv4: false, ...v6 };
}

describe("kube mode with IPv6, three hosts: dual-stack and IPv6-only, vxlan and host-gw", {
  timeout: 240_000,
}, () => {
  let lab: Lab;
  let api: LabApi;
  let weftds: LabProcess[] = [];

  async function restartWith(backend: string, v4 = true): Promise<PodAddresses[]> {
    await Promise.all(weftds.map((w) => w.stop("SIGTERM", 5_000)));
    for (const host of lab.hosts) {
      // Another backend's devices (and the routes on them) would shadow the new backend's routes.
      for (const dev of ["cni0", "flannel.1", "flannel-v6.1"])
        await lab.exec(host, ["ip", "link", "del", dev]);
      await lab.exec(host, ["rm", "-f", lab.subnetFile(host)]);
    }
    weftds = await Promise.all(
      lab.hosts.map((host) =>
        lab.startWeftd(host, api.weftdArgs(host, netConf(backend, v4), ["--ip-masq"]), {
          NODE_NAME: `node${host.index}`,
        }),
      ),
    );
    const pods = await waitForPods(lab, weftds, { v4, v6: true });
    for (const [i, host] of lab.hosts.entries()) {
      // The lease is the Node's podCIDRs, both families (only the IPv6 one for an IPv6-only network).
      assert.equal(pods[i]!.v4Cidr, v4 ? `10.244.${host.index}.1/24` : undefined);
      assert.equal(pods[i]!.v6Cidr, `fd44:0:0:${host.index}::1/64`);
    }
    return pods;
  }

  /** The node's annotations once weftd marked it NetworkUnavailable=False (its last step). */
  async function annotationsOf(index: number, backendType: string): Promise<Record<string, string>> {
    let annotations: Record<string, string> = {};
    await waitFor(
      `node${index} annotated for ${backendType}`,
      async () => {
        const node = await api.getNode(`node${index}`);
        annotations = node.metadata.annotations ?? {};
        const marked = (node.status.conditions as { type: string; status: string }[]).some(
          (c) => c.type === "NetworkUnavailable" && c.status === "False",
        );
        return marked && annotations[`${PREFIX}backend-type`] === backendType;
      },
      10_000,
      100,
    );
    return annotations;
  }

  async function assertTraffic(pods: PodAddresses[], v4 = true): Promise<void> {
    if (v4) await assertMeshReachable(lab, pods, 4, weftds);
    await assertMeshReachable(lab, pods, 6, weftds);
    const bps = await lab.iperf3(lab.host(3), lab.host(1), pods[2]!.v6!, { seconds: 2 });
    assert.ok(bps > 10e6, `iperf3 over IPv6: ${bps} bit/s is implausibly low`);
    assert.equal(await sourceSeenByFabric(lab, lab.host(2), pods[1]!.v6!, lab.fabricIp6!), lab.host(2).ip6);
  }

  before(async () => {
    lab = await Lab.create({ hosts: 3, ipv6: true, tag: "kubeds" });
    api = await startLabApi(lab);
    for (const host of lab.hosts)
      await api.createNode(
        `node${host.index}`,
        [`10.244.${host.index}.0/24`, `fd44:0:0:${host.index}::/64`],
        host.ip,
      );
  });
  after(async () => lab?.destroy());

  it("vxlan: both families' annotations (backend-v6-data, public-ipv6), devices, traffic", async () => {
    const pods = await restartWith("vxlan");
    for (const host of lab.hosts) {
      const annotations = await annotationsOf(host.index, "vxlan");
      const mac = async (dev: string) =>
        (JSON.parse(await lab.run(host, ["ip", "-j", "link", "show", dev])) as { address: string }[])[0]!
          .address;
      assert.deepEqual(annotations, {
        [`${PREFIX}backend-data`]: `{"VNI":1,"VtepMAC":"${await mac("flannel.1")}"}`,
        [`${PREFIX}backend-type`]: "vxlan",
        [`${PREFIX}backend-v6-data`]: `{"VNI":1,"VtepMAC":"${await mac("flannel-v6.1")}"}`,
        [`${PREFIX}kube-subnet-manager`]: "true",
        [`${PREFIX}public-ip`]: host.ip,
        [`${PREFIX}public-ipv6`]: host.ip6,
      });
    }
    const routes = await lab.run(lab.host(1), ["ip", "-6", "route", "show", "fd44:0:0:2::/64"]);
    assert.match(routes, /fd44:0:0:2::\/64 via fd44:0:0:2:: dev flannel-v6\.1 metric 1024 onlink/);
    await assertTraffic(pods);
  });

  it("host-gw: v6 annotations with null data, routes via the peers' IPv6 addresses, traffic", async () => {
    const pods = await restartWith("host-gw");
    for (const host of lab.hosts) {
      const annotations = await annotationsOf(host.index, "host-gw");
      assert.deepEqual(annotations, {
        [`${PREFIX}backend-data`]: "null",
        [`${PREFIX}backend-type`]: "host-gw",
        [`${PREFIX}backend-v6-data`]: "null",
        [`${PREFIX}kube-subnet-manager`]: "true",
        [`${PREFIX}public-ip`]: host.ip,
        [`${PREFIX}public-ipv6`]: host.ip6,
      });
    }
    await waitFor(
      "host-gw IPv6 route on host 1",
      async () =>
        (await lab.run(lab.host(1), ["ip", "-6", "route", "show", "fd44:0:0:2::/64"])).includes(
          "via fd31::2 dev eth0",
        ),
      10_000,
    );
    await assertTraffic(pods);
  });

  it("IPv6-only vxlan: only the v6 annotations (flanneld skips vxlan's null IPv4 data), IPv6 traffic", async () => {
    const pods = await restartWith("vxlan", false);
    for (const host of lab.hosts) {
      const annotations = await annotationsOf(host.index, "vxlan");
      const [link] = JSON.parse(await lab.run(host, ["ip", "-j", "link", "show", "flannel-v6.1"])) as {
        address: string;
        mtu: number;
      }[];
      assert.equal(link!.mtu, 1430);
      // The IPv4 pair stays what the host-gw run wrote: flanneld leaves it alone when vxlan has no IPv4 data.
      assert.deepEqual(annotations, {
        [`${PREFIX}backend-data`]: "null",
        [`${PREFIX}backend-type`]: "vxlan",
        [`${PREFIX}backend-v6-data`]: `{"VNI":1,"VtepMAC":"${link!.address}"}`,
        [`${PREFIX}kube-subnet-manager`]: "true",
        [`${PREFIX}public-ip`]: host.ip,
        [`${PREFIX}public-ipv6`]: host.ip6,
      });
      assert.equal(
        await lab.exec(host, ["ip", "link", "show", "flannel.1"]).then((r) => r.code),
        1,
        "no IPv4 device",
      );
    }
    await assertTraffic(pods, false);
  });

  it("IPv6-only host-gw: flanneld's public-ip 0.0.0.0 and null data for both families, IPv6 traffic", async () => {
    const pods = await restartWith("host-gw", false);
    for (const host of lab.hosts) {
      assert.deepEqual(await annotationsOf(host.index, "host-gw"), {
        [`${PREFIX}backend-data`]: "null",
        [`${PREFIX}backend-type`]: "host-gw",
        [`${PREFIX}backend-v6-data`]: "null",
        [`${PREFIX}kube-subnet-manager`]: "true",
        [`${PREFIX}public-ip`]: "0.0.0.0",
        [`${PREFIX}public-ipv6`]: host.ip6,
      });
    }
    await assertTraffic(pods, false);
  });

  it("a public-ipv6-overwrite annotation is the address peers send to (vxlan FDB)", async () => {
    const pods = await restartWith("vxlan");
    const host3 = lab.host(3);
    await lab.run(host3, ["ip", "addr", "add", "fd31::33/64", "dev", "eth0", "nodad"]);
    await api.kubectl(["annotate", "node", "node3", `${PREFIX}public-ipv6-overwrite=fd31::33`]);
    await weftds[2]!.stop("SIGTERM", 5_000);
    weftds[2] = await lab.startWeftd(host3, api.weftdArgs(host3, netConf("vxlan", true), ["--ip-masq"]), {
      NODE_NAME: "node3",
    });
    // The annotation alone proves nothing about the new weftd: the old one re-applied its annotations,
    // with the overwrite, when the node changed. Wait until the new one replaced flannel-v6.1 (its local
    // address changed) and programmed the datapath, or the device may be read between delete and create.
    await weftds[2]!.waitForOutput(/datapath programmed/, 20_000);
    await waitFor(
      "node3 announcing fd31::33",
      async () => (await api.getNode("node3")).metadata.annotations[`${PREFIX}public-ipv6`] === "fd31::33",
      10_000,
      100,
    );
    const mac = (
      JSON.parse(await lab.run(host3, ["ip", "-j", "link", "show", "flannel-v6.1"])) as { address: string }[]
    )[0]!.address;
    await waitFor(
      "host 1's FDB entry for node3 via fd31::33",
      async () =>
        (await lab.run(lab.host(1), ["bridge", "fdb", "show", "dev", "flannel-v6.1"])).includes(
          `${mac} dst fd31::33 `,
        ),
      10_000,
    );
    await assertMeshReachable(lab, pods, 6, weftds);
  });
});
