/**
 * The wireguard backend dual-stack over an IPv6 underlay, Mode separate (flannel's default): IPv4 pods
 * through flannel-wg on 51820, IPv6 pods through flannel-wg-v6 on 51821, each device run by its own
 * wireguard-go (this kernel has no WireGuard module), peers reached at [PublicIPv6]:51821.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { Lab, type LabProcess } from "./lab.js";
import { type HostLease, PREFIX, waitFor, waitForLeases } from "./weft-cluster.js";
import { removeWireguardMountPoint, startWireguardWeftd } from "./wireguard-hosts.js";

const CONFIG =
  '{"Network":"10.244.0.0/16","EnableIPv6":true,"IPv6Network":"fd44::/56","Backend":{"Type":"wireguard"}}';

describe("weftd with wireguard, dual-stack, on 2 hosts", { timeout: 180_000 }, () => {
  let lab: Lab;
  let weftds: LabProcess[];
  let leases: HostLease[];
  const pods4: string[] = [];
  const pods6: string[] = [];

  before(async () => {
    lab = await Lab.create({ hosts: 2, ipv6: true, tag: "wg6" });
    await lab.startEtcd();
    await lab.etcdctl(["put", `${PREFIX}/config`, CONFIG]);
    weftds = await Promise.all(lab.hosts.map((h) => startWireguardWeftd(lab, h)));
    leases = await waitForLeases(lab, weftds, 30_000);
    for (const [i, host] of lab.hosts.entries()) {
      const lease = leases[i]!;
      assert.ok(lease.ipv6Subnet, `host ${host.name} has an IPv6 subnet`);
      pods4.push(`${lease.base}.1`);
      pods6.push(`${lease.ipv6Subnet!.split("/")[0]}1`);
      await lab.addPodAddress(host, `${pods4[i]}/24`);
      await lab.addPodAddress(host, `${pods6[i]}/64`);
    }
    for (const weftd of weftds) await weftd.waitForOutput(/datapath programmed/, 30_000);
  });
  after(async () => {
    await lab?.destroy();
    removeWireguardMountPoint();
  });

  it("publishes BackendData and BackendV6Data as flanneld, with ListenPort and ListenPortV6", async () => {
    for (const host of lab.hosts) {
      const pairs = await lab.etcdGetPrefix(`${PREFIX}/subnets/`);
      const value = pairs.find((p) => p.value.includes(`"PublicIP":"${host.ip}"`))?.value ?? "";
      assert.match(
        value,
        new RegExp(
          `^\\{"PublicIP":"${host.ip}","PublicIPv6":"${host.ip6}","BackendType":"wireguard",` +
            `"BackendData":\\{"PublicKey":"([A-Za-z0-9+/]{43}=)","Port":51820\\},` +
            `"BackendV6Data":\\{"PublicKey":"\\1","Port":51821\\}\\}$`,
        ),
      );
    }
  });

  it("runs flannel-wg and flannel-wg-v6 with the Networks routed through them", async () => {
    const h1 = lab.host(1);
    for (const [device, mtu] of [
      ["flannel-wg", 1420],
      ["flannel-wg-v6", 1420],
    ] as const)
      assert.match(await lab.run(h1, ["ip", "link", "show", device]), new RegExp(`mtu ${mtu} `));
    assert.match(
      await lab.run(h1, ["ip", "-4", "route", "show", "dev", "flannel-wg"]),
      /^10\.244\.0\.0\/16 /m,
    );
    assert.match(await lab.run(h1, ["ip", "-6", "route", "show", "dev", "flannel-wg-v6"]), /^fd44::\/56 /m);
    const v6addr = await lab.run(h1, [
      "ip",
      "-6",
      "-o",
      "addr",
      "show",
      "dev",
      "flannel-wg-v6",
      "scope",
      "global",
    ]);
    assert.match(v6addr, new RegExp(`inet6 ${leases[0]!.ipv6Subnet!.split("/")[0]!}/128 `));
  });

  it("carries IPv4 and IPv6 between the pods, IPv6 over the IPv6 underlay", async () => {
    const [h1, h2] = [lab.host(1), lab.host(2)];
    for (const [from, i] of [
      [h1, 0],
      [h2, 1],
    ] as const) {
      const j = 1 - i;
      for (const [target, source] of [
        [pods4[j]!, pods4[i]!],
        [pods6[j]!, pods6[i]!],
      ]) {
        await waitFor(
          `${from.name} ${source} reaching ${target}`,
          async () => (await lab.ping(from, target, { count: 1, source, timeoutMs: 1000 })).reachable,
          20_000,
          200,
        ).catch((err: Error) => {
          throw new Error(`${err.message}\nweftd log:\n${weftds[i]!.output()}`);
        });
      }
    }
    // The v6 device's peer is at the other host's IPv6 address and port 51821, for its IPv6 subnet only.
    const dump = await lab.run(h1, [
      "nsenter",
      "-t",
      String(weftds[0]!.pid),
      "-m",
      "wg",
      "show",
      "flannel-wg-v6",
      "dump",
    ]);
    const peer = dump.trim().split("\n")[1]!.split("\t");
    assert.equal(peer[2], `[${h2.ip6}]:51821`);
    assert.equal(peer[3], leases[1]!.ipv6Subnet);
    const bps = await lab.iperf3(h2, h1, pods6[1]!, { seconds: 1 });
    assert.ok(bps > 1e6, `IPv6 iperf3 ${bps} bit/s`);
  });
});
