/**
 * The wireguard backend on 3 hosts over userspace WireGuard (wireguard-go), since this kernel has no
 * WireGuard module (the kernel path is tested on bytes only, in test/unit/genetlink-wireguard.test.ts).
 * Every pair of pods pings and runs iperf3 through the tunnels; state changed by hand (a peer removed,
 * the private key replaced) is repaired; wireguard-go killed is started again and traffic resumes; a
 * weftd restart keeps the key, the lease's public key and the running tunnels; a malformed peer lease
 * is refused alone; a lease removed removes the peer.
 *
 * Each host's weftd runs in a mount namespace of its own (test/lab/wireguard-hosts.ts explains why).
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { Lab, type LabHost, type LabProcess } from "./lab.js";
import {
  addPods,
  assertFullMeshPing,
  type HostLease,
  PREFIX,
  waitFor,
  waitForLeases,
} from "./weft-cluster.js";
import {
  wireguardGoPid as findWireguardGo,
  removeWireguardMountPoint,
  startWireguardWeftd,
  wireguardKeyFile,
} from "./wireguard-hosts.js";

const CONFIG = '{"Network":"10.244.0.0/16","Backend":{"Type":"wireguard","PersistentKeepaliveInterval":5}}';
/** A full run (the 30 s safety timer) repairs what has no notifications; allow for load. */
const REPAIR_MS = 50_000;

describe("weftd with wireguard (wireguard-go) on 3 hosts", { timeout: 420_000 }, () => {
  let lab: Lab;
  const weftds: LabProcess[] = [];
  let leases: HostLease[];
  let pods: string[];

  const keyFile = (host: LabHost) => wireguardKeyFile(lab, host);

  async function startWeftd(host: LabHost): Promise<LabProcess> {
    const weftd = await startWireguardWeftd(lab, host);
    weftds[host.index - 1] = weftd;
    return weftd;
  }

  /** `wg` in the host's weftd's mount namespace (where its UAPI socket is). */
  const wg = (host: LabHost, args: string[]) =>
    lab.run(host, ["nsenter", "-t", String(weftds[host.index - 1]!.pid), "-m", "wg", ...args]);

  const wireguardGoPid = (host: LabHost) => findWireguardGo(lab, host);

  async function waitForMesh(label: string): Promise<void> {
    for (const [i, host] of lab.hosts.entries()) {
      for (const [j, pod] of pods.entries()) {
        if (i === j) continue;
        await waitFor(
          `${label}: ${host.name} reaching ${pod}`,
          async () => (await lab.ping(host, pod, { count: 1, source: pods[i], timeoutMs: 1000 })).reachable,
          REPAIR_MS,
          200,
        ).catch(async (err: Error) => {
          // Both ends: a tunnel needs the peer on each side.
          const ends = [i, j].map(async (k) => {
            const show = await wg(lab.hosts[k]!, ["show"]).catch((e: Error) => e.message);
            // wireguard-go's own log (LOG_LEVEL=debug in the environment makes it say more).
            const goLog = (() => {
              try {
                return readFileSync(join(lab.hostDir(lab.hosts[k]!), "wireguard", "flannel-wg.log"), "utf8");
              } catch {
                return "(none)";
              }
            })().slice(-4000);
            return `${lab.hosts[k]!.name} wg show:\n${show}\nweftd log:\n${weftds[k]!.output()}\nwireguard-go log:\n${goLog}`;
          });
          throw new Error(`${err.message}\n${(await Promise.all(ends)).join("\n")}`);
        });
      }
    }
  }

  const leaseValue = async (host: LabHost) => {
    const pairs = await lab.etcdGetPrefix(`${PREFIX}/subnets/`);
    const mine = pairs.find((p) => p.value.includes(`"PublicIP":"${host.ip}"`));
    return mine
      ? (JSON.parse(mine.value) as { BackendData: { PublicKey: string; Port: number } })
      : undefined;
  };

  before(async () => {
    lab = await Lab.create({ hosts: 3, tag: "wg" });
    await lab.startEtcd();
    await lab.etcdctl(["put", `${PREFIX}/config`, CONFIG]);
    for (const host of lab.hosts) await startWeftd(host);
    leases = await waitForLeases(lab, weftds, 30_000);
    pods = await addPods(lab, leases);
    await waitForMesh("start");
  });
  after(async () => {
    await lab?.destroy();
    removeWireguardMountPoint();
  });

  it("publishes BackendData as flanneld and sets up flannel-wg as flannel does", async () => {
    const pairs = await lab.etcdGetPrefix(`${PREFIX}/subnets/`);
    assert.equal(pairs.length, 3);
    // This kernel makes no wireguard device, so weftd falls back to wireguard-go.
    assert.match(
      weftds[0]!.output(),
      /this kernel has no WireGuard \(no wireguard device type\); using wireguard-go/,
    );
    for (const host of lab.hosts) {
      const key = readFileSync(keyFile(host), "utf8");
      const publicKey = (await wg(host, ["show", "flannel-wg", "public-key"])).trim();
      assert.equal((await wg(host, ["show", "flannel-wg", "private-key"])).trim(), key);
      const pair = pairs.find((p) => p.value.includes(`"PublicIP":"${host.ip}"`));
      assert.equal(
        pair?.value,
        `{"PublicIP":"${host.ip}","PublicIPv6":null,"BackendType":"wireguard","BackendData":{"PublicKey":"${publicKey}","Port":51820}}`,
      );
      assert.equal((await wg(host, ["show", "flannel-wg", "listen-port"])).trim(), "51820");
    }
    const h1 = lab.host(1);
    const link = await lab.run(h1, ["ip", "-d", "link", "show", "flannel-wg"]);
    assert.match(link, /mtu 1420 /, "MTU = 1500 - 80");
    assert.match(link, /\btun\b/, "a TUN device made by wireguard-go");
    const addrs = await lab.run(h1, ["ip", "-4", "-o", "addr", "show", "dev", "flannel-wg"]);
    assert.match(addrs, new RegExp(`inet ${leases[0]!.base.replace(/\./g, "\\.")}\\.0/32 `));
    const routes = await lab.run(h1, ["ip", "-4", "route", "show", "dev", "flannel-wg"]);
    assert.match(routes, /^10\.244\.0\.0\/16 scope link/m);
    // Peers: the two others, each for its subnet at its PublicIP:51820, keepalive as configured.
    const dump = (await wg(h1, ["show", "flannel-wg", "dump"])).trim().split("\n").slice(1);
    const peers = dump
      .map((l) => l.split("\t"))
      .map((f) => ({ endpoint: f[2], allowed: f[3], keepalive: f[7] }));
    assert.deepEqual(
      peers.map((p) => `${p.endpoint} ${p.allowed} ${p.keepalive}`).sort(),
      [`172.31.0.2:51820 ${leases[1]!.subnet} 5`, `172.31.0.3:51820 ${leases[2]!.subnet} 5`].sort(),
    );
  });

  it("carries ping and TCP (iperf3) between every pair of pods", async () => {
    await assertFullMeshPing(lab, pods);
    for (const [i, client] of lab.hosts.entries()) {
      for (const [j, server] of lab.hosts.entries()) {
        if (i === j) continue;
        const bps = await lab.iperf3(server, client, pods[j]!, { seconds: 1, port: 5301 + j });
        assert.ok(bps > 1e6, `${client.name} -> ${server.name}: ${bps} bit/s`);
      }
    }
  });

  it("puts back a peer removed by hand and a private key replaced by hand", async () => {
    const [h1, h2] = [lab.host(1), lab.host(2)];
    const h2Key = (await leaseValue(h2))!.BackendData.PublicKey;
    await wg(h1, ["set", "flannel-wg", "peer", h2Key, "remove"]);
    assert.doesNotMatch(
      await wg(h1, ["show", "flannel-wg", "peers"]),
      new RegExp(h2Key.replace(/[+/]/g, "\\$&")),
    );
    const original = (await wg(h2, ["show", "flannel-wg", "private-key"])).trim();
    const other = (await lab.run(h2, ["wg", "genkey"])).trim();
    await lab.run(h2, ["sh", "-c", `echo ${other} > /tmp/weft-wg-${process.pid}.key`]);
    await wg(h2, ["set", "flannel-wg", "private-key", `/tmp/weft-wg-${process.pid}.key`]);
    await lab.run(h2, ["rm", "-f", `/tmp/weft-wg-${process.pid}.key`]);
    await waitFor(
      "the peer and the key put back",
      async () =>
        (await wg(h1, ["show", "flannel-wg", "peers"])).includes(h2Key) &&
        (await wg(h2, ["show", "flannel-wg", "private-key"])).trim() === original,
      REPAIR_MS,
      500,
    );
    await waitForMesh("after repair");
  });

  it("starts wireguard-go again when it is killed, and traffic resumes", async () => {
    const h3 = lab.host(3);
    const pid = await wireguardGoPid(h3);
    assert.ok(pid, "wireguard-go runs in host 3");
    process.kill(pid, "SIGKILL");
    await waitFor("a new wireguard-go", async () => ((await wireguardGoPid(h3)) ?? pid) !== pid, 20_000, 100);
    await waitForMesh("after wireguard-go was killed");
    assert.match(weftds[2]!.output(), /wireguard-go for flannel-wg \(pid \d+\) ended \(killed by SIGKILL\)/);
  });

  it("keeps the key, the lease's public key and the tunnels across a weftd restart", async () => {
    const h2 = lab.host(2);
    const key = readFileSync(keyFile(h2), "utf8");
    const published = (await leaseValue(h2))!.BackendData.PublicKey;
    const pid = await wireguardGoPid(h2);
    await weftds[1]!.stop("SIGTERM", 10_000);
    // weftd is gone; wireguard-go carries on.
    assert.equal(await wireguardGoPid(h2), pid);
    const during = await lab.ping(lab.host(1), pods[1]!, { count: 2, source: pods[0], intervalSeconds: 0.2 });
    assert.equal(during.received, 2, "pods reach host 2 while its weftd is down");
    const restarted = await startWeftd(h2);
    await waitFor(
      "weftd ready again",
      async () => /datapath programmed/.test(restarted.output()),
      30_000,
      200,
    );
    assert.equal(readFileSync(keyFile(h2), "utf8"), key);
    assert.equal((await leaseValue(h2))!.BackendData.PublicKey, published);
    assert.equal(await wireguardGoPid(h2), pid, "the running wireguard-go is adopted, not replaced");
    assert.match(restarted.output(), /loaded the WireGuard key/);
    await waitForMesh("after the weftd restart");
  });

  it("refuses a peer lease with a malformed public key, and the others keep working", async () => {
    const bad = `{"PublicIP":"172.31.0.9","BackendType":"wireguard","BackendData":{"PublicKey":"not-a-key","Port":51820}}`;
    await lab.etcdctl(["put", `${PREFIX}/subnets/10.244.251.0-24`, bad]);
    await waitFor(
      "the refusal logged",
      async () =>
        /10\.244\.251\.0-24.*BackendData\.PublicKey "not-a-key" is not a WireGuard public key/.test(
          weftds[0]!.output(),
        ),
      15_000,
      200,
    );
    await assertFullMeshPing(lab, pods);
    await lab.etcdctl(["del", `${PREFIX}/subnets/10.244.251.0-24`]);
  });

  it("removes the peer when its lease is removed", async () => {
    const h3 = lab.host(3);
    const h3Key = (await leaseValue(h3))!.BackendData.PublicKey;
    await weftds[2]!.stop("SIGTERM", 10_000);
    const pairs = await lab.etcdGetPrefix(`${PREFIX}/subnets/`);
    const mine = pairs.find((p) => p.value.includes(`"PublicIP":"${h3.ip}"`))!;
    await lab.etcdctl(["del", mine.key]);
    for (const host of [lab.host(1), lab.host(2)])
      await waitFor(
        `${host.name} dropping host 3's peer`,
        async () => !(await wg(host, ["show", "flannel-wg", "peers"])).includes(h3Key),
        15_000,
        200,
      );
  });
});
