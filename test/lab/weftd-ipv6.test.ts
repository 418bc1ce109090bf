// IPv6 with real packets, etcd mode: per backend one lab of three hosts with an IPv6 underlay, run first
// dual-stack, then IPv6-only (weftd restarted with the other config on the same lab). Each run checks the
// lease keys and values, subnet.env, the kernel state, ping -6 and iperf3 between pod addresses, and
// masquerade of a pod's IPv6 traffic to the fabric (--ip-masq).
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { type CniPod, CniPods, missingCniPrerequisite } from "./cni-pods.js";
import {
  assertMeshReachable,
  type PodAddresses,
  readPodAddresses,
  sourceSeenByFabric,
  waitForPods,
} from "./ipv6-traffic.js";
import { Lab, type LabProcess } from "./lab.js";
import { PREFIX, waitFor } from "./weft-cluster.js";

const IPV6_NETWORK = "fd44::/56";
const V6_SUBNET_KEY = /^fd44:0:0:[0-9a-f]{1,2}::-64$/;

/** A lease's value as flanneld writes it (only the fields checked here). */
interface LeaseValue {
  PublicIP: string;
  PublicIPv6: string | null;
  BackendType: string;
  BackendData?: { VNI: number; VtepMAC: string };
  BackendV6Data?: { VNI: number; VtepMAC: string };
}

function netConfig(backend: string, stack: "dual" | "v6only", extra: Record<string, unknown> = {}): string {
  const backendConf = { Type: backend, ...extra };
  return JSON.stringify(
    stack === "dual"
      ? { EnableIPv6: true, Network: "10.244.0.0/16", IPv6Network: IPV6_NETWORK, Backend: backendConf }
      : { EnableIPv4: false, EnableIPv6: true, IPv6Network: IPV6_NETWORK, Backend: backendConf },
  );
}

const cniSkip = missingCniPrerequisite();

for (const backend of ["vxlan", "host-gw"] as const) {
  describe(`weftd ${backend}, IPv6 underlay, 3 hosts: dual-stack then IPv6-only`, {
    timeout: 300_000,
  }, () => {
    let lab: Lab;
    let cni: CniPods | undefined;
    let weftds: LabProcess[] = [];
    /** The hosts' subnet addresses of the last run, for the pod test after it. */
    let subnets: PodAddresses[] = [];

    /** Stops the running weftds, forgets their leases and pods, and starts all three with `config`. */
    async function restartWith(
      config: string,
      families: { v4: boolean; v6: boolean },
      args: string[] = [],
    ): Promise<PodAddresses[]> {
      await cni?.removeAll();
      await Promise.all(weftds.map((w) => w.stop("SIGTERM", 5_000)));
      await lab.etcdctl(["del", "--prefix", `${PREFIX}/subnets/`]);
      await lab.etcdctl(["put", `${PREFIX}/config`, config]);
      for (const host of lab.hosts) {
        await lab.exec(host, ["ip", "link", "del", "cni0"]);
        await lab.exec(host, ["rm", "-f", lab.subnetFile(host)]);
      }
      weftds = await Promise.all(lab.hosts.map((h) => lab.startWeftd(h, ["--ip-masq", ...args])));
      return waitForPods(lab, weftds, families);
    }

    async function leases(): Promise<Map<string, LeaseValue>> {
      const kvs = await lab.etcdGetPrefix(`${PREFIX}/subnets/`);
      return new Map(kvs.map((kv) => [kv.key.slice(`${PREFIX}/subnets/`.length), JSON.parse(kv.value)]));
    }

    /** The kernel state weftd programs for IPv6 peers: per peer one route (and for vxlan neighbour + FDB). */
    async function assertV6Datapath(pods: readonly PodAddresses[]): Promise<void> {
      for (const [i, host] of lab.hosts.entries()) {
        for (const [j, peer] of lab.hosts.entries()) {
          if (i === j) continue;
          const subnet = pods[j]!.v6Cidr!.replace(/::1\//, "::/");
          const vtep = subnet.split("/")[0]!;
          const expected =
            backend === "vxlan"
              ? `${subnet} via ${vtep} dev flannel-v6.1 metric 1024 onlink`
              : `${subnet} via ${peer.ip6} dev eth0 metric 1024`;
          let routes = "";
          await waitFor(
            `${host.name}: route "${expected}"`,
            async () => {
              routes = await lab.run(host, ["ip", "-6", "route", "show"]);
              return routes.includes(expected);
            },
            10_000,
          ).catch((error: Error) => {
            throw new Error(`${error.message}\n${routes}\nweftd log:\n${weftds[i]!.output().slice(-3000)}`);
          });
          if (backend === "vxlan") {
            const table = await leases();
            const key = [...table.keys()].find((k) => k.endsWith(`&${vtep}-64`));
            const mac = key === undefined ? undefined : table.get(key)?.BackendV6Data?.VtepMAC;
            assert.ok(mac, `no lease with BackendV6Data for ${subnet}`);
            assert.match(
              await lab.run(host, ["ip", "-6", "neigh", "show", "dev", "flannel-v6.1"]),
              new RegExp(`^${vtep} lladdr ${mac} PERMANENT`, "m"),
            );
            assert.match(
              await lab.run(host, ["bridge", "fdb", "show", "dev", "flannel-v6.1"]),
              new RegExp(`^${mac} dst ${peer.ip6} self permanent`, "m"),
            );
          }
        }
        if (backend === "vxlan") {
          const [link] = JSON.parse(await lab.run(host, ["ip", "-d", "-j", "link", "show", "flannel-v6.1"]));
          assert.equal(link.mtu, 1430, "vxlan over IPv6: the underlay's 1500 - 70");
          const acceptRa = await lab.run(host, ["cat", "/proc/sys/net/ipv6/conf/flannel-v6.1/accept_ra"]);
          assert.equal(
            acceptRa.trim(),
            "0",
            "router advertisements through the overlay are ignored, as flanneld",
          );
          assert.equal(link.linkinfo.info_data.local6 ?? link.linkinfo.info_data.local, host.ip6);
          const addrs = await lab.run(host, [
            "ip",
            "-6",
            "addr",
            "show",
            "dev",
            "flannel-v6.1",
            "scope",
            "global",
          ]);
          assert.ok(addrs.includes(`inet6 ${pods[i]!.v6Cidr!.replace(/::1\/64$/, "::/128")}`), addrs);
        }
      }
    }

    async function assertTraffic(pods: readonly PodAddresses[], v4: boolean): Promise<void> {
      await assertMeshReachable(lab, pods, 6, weftds);
      if (v4) await assertMeshReachable(lab, pods, 4, weftds);
      const bps = await lab.iperf3(lab.host(2), lab.host(1), pods[1]!.v6!, { seconds: 2 });
      assert.ok(bps > 10e6, `iperf3 over IPv6: ${bps} bit/s is implausibly low`);
      // The fabric has no route to the pod network: the connection works only masqueraded, and shows the host.
      assert.equal(await sourceSeenByFabric(lab, lab.host(1), pods[0]!.v6!, lab.fabricIp6!), lab.host(1).ip6);
    }

    /**
     * One real pod per host from the CNI plugin: its addresses come from subnet.env, its MTU is
     * FLANNEL_MTU, and pods reach each other (ping, iperf3 over IPv6) and the fabric, masqueraded.
     */
    async function assertRealPods(
      subnets: readonly PodAddresses[],
      v4: boolean,
      label: string,
    ): Promise<void> {
      assert.equal(subnets.length, 3, "the run before this test set up no network");
      cni ??= new CniPods(lab);
      const pods: CniPod[] = [];
      for (const host of lab.hosts) pods.push(await cni.add(host, label));
      for (const [i, pod] of pods.entries()) {
        const v6Prefix = subnets[i]!.v6Cidr!.replace(/::1\/64$/, "::");
        assert.ok(pod.v6?.startsWith(v6Prefix), `${pod.ns} has ${pod.ips} from ${subnets[i]!.v6Cidr}`);
        if (v4) assert.ok(pod.v4?.startsWith(subnets[i]!.v4!.replace(/\.1$/, ".")), `${pod.ns}: ${pod.ips}`);
        else assert.equal(pod.v4, undefined, `${pod.ns}: ${pod.ips}`);
        const mtu = Number(/^FLANNEL_MTU=(\d+)$/m.exec(subnets[i]!.text)?.[1]);
        const [link] = JSON.parse((await cni.exec(pod, ["ip", "-j", "link", "show", "eth0"])).stdout) as {
          mtu: number;
        }[];
        assert.equal(link?.mtu, mtu, `${pod.ns}'s eth0 has FLANNEL_MTU`);
      }
      const failures: string[] = [];
      for (const from of pods) {
        for (const to of pods) {
          if (from === to) continue;
          for (const ip of v4 ? [to.v6!, to.v4!] : [to.v6!]) {
            const run = await cni.exec(from, [
              "ping",
              "-q",
              "-c",
              "2",
              "-i",
              "0.1",
              "-W",
              "1",
              "-w",
              "4",
              ip,
            ]);
            if (!/ [12] (?:packets )?received/.test(run.stdout))
              failures.push(`${from.ns} -> ${ip}: ${run.stdout}`);
          }
        }
      }
      assert.deepEqual(failures, [], "pods that could not reach each other");
      // iperf3 between pods over IPv6: full-size TCP segments from a pod at FLANNEL_MTU.
      const [client, server] = [pods[0]!, pods[1]!];
      const iperf = await cni.spawn(server, [
        "iperf3",
        "-s",
        "-1",
        "--forceflush",
        "-B",
        server.v6!,
        "-p",
        "5202",
      ]);
      try {
        await iperf.waitForOutput(/Server listening/, 10_000);
        const run = await cni.exec(
          client,
          ["iperf3", "-c", server.v6!, "-p", "5202", "-t", "2", "-J", "--connect-timeout", "3000"],
          20_000,
        );
        const report = JSON.parse(run.stdout) as {
          error?: string;
          end?: { sum_received?: { bits_per_second?: number } };
        };
        assert.equal(report.error, undefined, `iperf3 ${client.v6} -> ${server.v6}`);
        const bps = report.end?.sum_received?.bits_per_second ?? 0;
        assert.ok(bps > 10e6, `iperf3 between pods over IPv6: ${bps} bit/s is implausibly low`);
      } finally {
        await iperf.stop("SIGTERM", 2_000);
      }
      const seen = await sourceSeenByFabric(lab, client.host, client.v6!, lab.fabricIp6!, {
        podNs: client.ns,
      });
      assert.equal(seen, client.host.ip6, `${client.ns} (${client.v6}) seen by the fabric`);
    }

    before(async () => {
      lab = await Lab.create({ hosts: 3, ipv6: true, tag: `v6${backend.replace("-", "")}` });
      await lab.startEtcd();
    });
    after(async () => {
      await cni?.removeAll();
      await lab?.destroy();
    });

    it("dual-stack: leases, subnet.env, kernel state, and traffic of both families", async () => {
      const pods = await restartWith(netConfig(backend, "dual"), { v4: true, v6: true });
      const table = await leases();
      assert.equal(table.size, 3);
      for (const [key, value] of table) {
        const [v4, v6] = key.split("&");
        assert.match(v4!, /^10\.244\.\d+\.0-24$/, key);
        assert.match(v6 ?? "", V6_SUBNET_KEY, key);
        const host = lab.hosts.find((h) => h.ip === value.PublicIP);
        assert.ok(host, `lease ${key} names a host's PublicIP: ${JSON.stringify(value)}`);
        assert.equal(value.PublicIPv6, host.ip6);
        assert.equal(value.BackendType, backend);
        if (backend === "vxlan") {
          assert.equal(value.BackendData?.VNI, 1);
          assert.equal(value.BackendV6Data?.VNI, 1);
        } else {
          assert.equal(value.BackendData, undefined);
          assert.equal(value.BackendV6Data, undefined);
        }
      }
      for (const pod of pods) {
        // flanneld's lines, in its order (reference vxlan-dualstack.txt).
        assert.match(
          pod.text,
          new RegExp(
            `^FLANNEL_NETWORK=10\\.244\\.0\\.0/16\nFLANNEL_SUBNET=10\\.244\\.\\d+\\.1/24\n` +
              `FLANNEL_IPV6_NETWORK=fd44::/56\nFLANNEL_IPV6_SUBNET=fd44:0:0:[0-9a-f]+::1/64\n` +
              `FLANNEL_MTU=${backend === "vxlan" ? 1450 : 1500}\nFLANNEL_IPMASQ=true\n$`,
          ),
        );
      }
      await assertV6Datapath(pods);
      await assertTraffic(pods, true);
      subnets = pods;
    });

    it("dual-stack: real pods (CNI plugin) get both families and reach each other and the fabric", {
      skip: cniSkip,
    }, async () => {
      await assertRealPods(subnets, true, "ds");
    });

    it("dual-stack: a restarted weftd keeps both subnets, and no IPv6 ping is lost", async () => {
      const host2 = lab.host(2);
      const before = (await readPodAddresses(lab, host2))!;
      const pinging = lab.ping(lab.host(1), before.v6!, {
        count: 30,
        intervalSeconds: 0.1,
        source: subnets[0]!.v6!,
        timeoutMs: 15_000,
      });
      await new Promise((r) => setTimeout(r, 300));
      await weftds[1]!.stop("SIGTERM", 5_000);
      weftds[1] = await lab.startWeftd(host2, ["--ip-masq"]);
      await weftds[1].waitForOutput(/datapath programmed/, 20_000);
      const result = await pinging;
      assert.equal(result.received, result.transmitted, result.output);
      assert.equal((await readPodAddresses(lab, host2))!.text, before.text, "subnet.env unchanged");
      assert.equal((await leases()).size, 3, "no second lease");
    });

    it("dual-stack: deleted IPv6 state comes back (route, vxlan neighbour and FDB entry, ip6tables rule)", async () => {
      const host1 = lab.host(1);
      const peer = lab.host(2);
      const peerSubnet = subnets[1]!.v6Cidr!.replace(/::1\//, "::/");
      const vtep = peerSubnet.split("/")[0]!;
      const show = {
        route: () => lab.run(host1, ["ip", "-6", "route", "show", peerSubnet]),
        neigh: () => lab.run(host1, ["ip", "-6", "neigh", "show", vtep, "dev", "flannel-v6.1"]),
        fdb: () => lab.run(host1, ["bridge", "fdb", "show", "dev", "flannel-v6.1"]),
        rules: () => lab.run(host1, ["ip6tables-save", "-t", "nat"]),
      };
      const masquerade = `-A FLANNEL-POSTRTG -s ${IPV6_NETWORK} ! -d ff00::/8 -m comment --comment "flanneld masq" -j MASQUERADE --random-fully`;
      assert.ok((await show.rules()).includes(masquerade), await show.rules());
      const route = (await show.route()).trim();
      assert.ok(route, `no route to ${peerSubnet}`);
      await lab.run(host1, ["ip", "-6", "route", "del", peerSubnet]);
      const masqueradeArgs = [
        "-s",
        IPV6_NETWORK,
        "!",
        "-d",
        "ff00::/8",
        "-m",
        "comment",
        "--comment",
        "flanneld masq",
      ];
      await lab.run(host1, [
        "ip6tables",
        ...["-t", "nat", "-D", "FLANNEL-POSTRTG", ...masqueradeArgs, "-j", "MASQUERADE", "--random-fully"],
      ]);
      const fdbLine =
        backend === "vxlan"
          ? (await show.fdb()).split("\n").find((l) => l.includes(`dst ${peer.ip6}`))
          : undefined;
      if (backend === "vxlan") {
        assert.ok(fdbLine, await show.fdb());
        await lab.run(host1, ["ip", "-6", "neigh", "del", vtep, "dev", "flannel-v6.1"]);
        await lab.run(host1, [
          "bridge",
          "fdb",
          "del",
          fdbLine.split(" ")[0]!,
          "dev",
          "flannel-v6.1",
          "dst",
          peer.ip6!,
        ]);
      }
      assert.ok(!(await show.rules()).includes(masquerade), "the rule was deleted");
      await waitFor("the IPv6 route back", async () => (await show.route()).trim() === route, 5_000);
      if (backend === "vxlan") {
        await waitFor("the IPv6 neighbour back", async () => /PERMANENT/.test(await show.neigh()), 5_000);
        await waitFor("the IPv6 FDB entry back", async () => (await show.fdb()).includes(fdbLine!), 5_000);
      }
      // --iptables-resync is 5 s by default.
      await waitFor(
        "the ip6tables masquerade rule back",
        async () => (await show.rules()).includes(masquerade),
        15_000,
        250,
      );
      assert.ok((await lab.ping(host1, subnets[1]!.v6!, { source: subnets[0]!.v6!, count: 2 })).reachable);
    });

    it("IPv6-only: the key's empty IPv4 part, PublicIP 0.0.0.0, IPv6 lines only, IPv6 traffic", async () => {
      const pods = await restartWith(netConfig(backend, "v6only"), { v4: false, v6: true });
      const table = await leases();
      assert.equal(table.size, 3);
      for (const [key, value] of table) {
        // flannel's IPv6-only lease: the zero IPv4 network in the key and the zero PublicIP in the value.
        const [v4, v6] = key.split("&");
        assert.equal(v4, "0.0.0.0-0", key);
        assert.match(v6 ?? "", V6_SUBNET_KEY, key);
        assert.equal(value.PublicIP, "0.0.0.0");
        assert.ok(
          lab.hosts.some((h) => h.ip6 === value.PublicIPv6),
          JSON.stringify(value),
        );
        assert.equal(value.BackendData, undefined, "no IPv4 device, no IPv4 data");
        if (backend === "vxlan") assert.equal(value.BackendV6Data?.VNI, 1);
      }
      for (const [i, pod] of pods.entries()) {
        assert.match(
          pod.text,
          new RegExp(
            `^FLANNEL_IPV6_NETWORK=fd44::/56\nFLANNEL_IPV6_SUBNET=fd44:0:0:[0-9a-f]+::1/64\n` +
              `FLANNEL_MTU=${backend === "vxlan" ? 1430 : 1500}\nFLANNEL_IPMASQ=true\n$`,
          ),
        );
        assert.equal((await readPodAddresses(lab, lab.host(i + 1)))!.v4, undefined);
      }
      await assertV6Datapath(pods);
      await assertTraffic(pods, false);
      subnets = pods;
    });

    it("IPv6-only: real pods (CNI plugin) get an IPv6 address only and reach each other and the fabric", {
      skip: cniSkip,
    }, async () => {
      await assertRealPods(subnets, false, "v6");
    });

    // DirectRouting is a vxlan key.
    if (backend === "vxlan")
      it("dual-stack with DirectRouting: peers on the same L2 routed via their hosts, both families", async () => {
        const pods = await restartWith(netConfig(backend, "dual", { DirectRouting: true }), {
          v4: true,
          v6: true,
        });
        for (const [i, host] of lab.hosts.entries()) {
          for (const [j, peer] of lab.hosts.entries()) {
            if (i === j) continue;
            const v4 = `${pods[j]!.v4Cidr!.replace(/\.1\//, ".0/")} via ${peer.ip} dev eth0`;
            const v6 = `${pods[j]!.v6Cidr!.replace(/::1\//, "::/")} via ${peer.ip6} dev eth0`;
            await waitFor(
              `${host.name}: direct routes to ${peer.name}`,
              async () =>
                (await lab.run(host, ["ip", "-4", "route"])).includes(v4) &&
                (await lab.run(host, ["ip", "-6", "route"])).includes(v6),
              10_000,
            );
          }
          assert.equal(
            (await lab.run(host, ["ip", "-6", "neigh", "show", "dev", "flannel-v6.1"])).trim(),
            "",
          );
        }
        await assertMeshReachable(lab, pods, 6, weftds);
        await assertMeshReachable(lab, pods, 4, weftds);
        subnets = pods;
      });

    if (backend === "vxlan")
      it("switching DirectRouting off (same leases) turns the direct IPv6 routes into vxlan routes", async () => {
        await Promise.all(weftds.map((w) => w.stop("SIGTERM", 5_000)));
        await lab.etcdctl(["put", `${PREFIX}/config`, netConfig(backend, "dual")]);
        weftds = await Promise.all(lab.hosts.map((h) => lab.startWeftd(h, ["--ip-masq"])));
        const pods = await waitForPods(lab, weftds, { v4: true, v6: true });
        assert.deepEqual(
          pods.map((p) => p.text),
          subnets.map((p) => p.text),
          "the same leases",
        );
        // Each vxlan route replaces a direct one to the same subnet, whose gateway IPv6 checks it against.
        await assertV6Datapath(pods);
        await assertMeshReachable(lab, pods, 6, weftds);
      });

    // Last: it takes the hosts' IPv4 addresses away for good.
    it("IPv6-only hosts (no IPv4 address at all, etcd over IPv6): leases and IPv6 traffic", async () => {
      // etcd listens on the fabric's IPv4 address only; a TCP relay gives it an IPv6 one.
      const relay = await lab.spawn(lab.fabric, [
        process.execPath,
        "-e",
        `const net=require("net");net.createServer((c)=>{const u=net.connect(2379,${JSON.stringify(lab.fabricIp)});` +
          `c.pipe(u).pipe(c);c.on("error",()=>u.destroy());u.on("error",()=>c.destroy())})` +
          `.listen(2379,${JSON.stringify(lab.fabricIp6)},()=>console.log("relaying"))`,
      ]);
      await relay.waitForOutput(/relaying/, 10_000);
      await cni?.removeAll();
      await Promise.all(weftds.map((w) => w.stop("SIGTERM", 5_000)));
      weftds = [];
      for (const host of lab.hosts) {
        await lab.run(host, ["ip", "-4", "addr", "flush", "dev", "eth0"]);
        await lab.exec(host, ["ip", "link", "del", "flannel.1"]);
        await lab.exec(host, ["ip", "link", "del", "cni0"]);
        assert.equal((await lab.run(host, ["ip", "-4", "addr", "show", "scope", "global"])).trim(), "");
      }
      const pods = await restartWith(netConfig(backend, "v6only"), { v4: false, v6: true }, [
        `--etcd-endpoints=http://[${lab.fabricIp6}]:2379`,
      ]);
      for (const value of (await leases()).values()) {
        assert.equal(value.PublicIP, "0.0.0.0");
        assert.ok(
          lab.hosts.some((h) => h.ip6 === value.PublicIPv6),
          JSON.stringify(value),
        );
      }
      await assertV6Datapath(pods);
      await assertTraffic(pods, false);
      await relay.stop("SIGTERM", 2_000);
    });
  });
}

describe("weftd asked for IPv6 on a host without an IPv6 address", { timeout: 60_000 }, () => {
  let lab: Lab;
  before(async () => {
    lab = await Lab.create({ hosts: 1, tag: "nov6" });
    await lab.startEtcd();
  });
  after(async () => lab?.destroy());

  it("stops with one line naming the interface and what to fix, and takes no lease", async () => {
    await lab.etcdctl(["put", `${PREFIX}/config`, netConfig("vxlan", "dual")]);
    const weftd = await lab.startWeftd(lab.host(1));
    const status = await weftd.exited;
    const output = weftd.output();
    assert.notEqual(status.code, 0, output);
    const lines = output.split("\n").filter((l) => /IPv6/.test(l));
    assert.equal(lines.length, 1, output);
    assert.match(
      lines[0]!,
      /the network config enables IPv6 \(EnableIPv6\), but interface eth0 \(chosen by --iface eth0\) has no global IPv6 address \(give eth0 an IPv6 address, pick an interface that has one with --iface, or set "EnableIPv6": false\)/,
    );
    assert.doesNotMatch(output, /^\s+at /m, "no stack trace");
    assert.deepEqual(await lab.etcdGetPrefix(`${PREFIX}/subnets/`), []);
  });
});
