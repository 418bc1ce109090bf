/**
 * weftd with the ipsec backend on 2 lab hosts, each with its own real charon (strongSwan 5.9, started
 * and supervised by weftd) reading its own strongswan.conf (STRONGSWAN_CONF) and answering on its own
 * VICI socket. charon runs in a private mount namespace with its own /run, because its pid file
 * (/var/run/charon.pid) is compiled in and two charons on one filesystem would refuse each other.
 *
 * This kernel has XFRM but no ESP algorithms, so charon uses kernel-libipsec (ESP in userspace over the
 * TUN device ipsec0) for the CHILD SAs: the kernel ESP datapath (XFRM states) is what is not tested here.
 * Checked: every VICI command weft sends is accepted (load-shared, load-conn, initiate; terminate and
 * unload-conn when a peer goes), the IKE SA is ESTABLISHED and the CHILD SA INSTALLED on both hosts
 * (list-sas), pods reach each other through the SAs (ping, iperf3), a killed charon is restarted, its
 * SAs and traffic come back, and a peer's lease removed removes its connection.
 */
import assert from "node:assert/strict";
import { chmodSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { readListSaEvent } from "../../src/backend/ipsec/ipsec-vici.js";
import { ViciClient } from "../../src/vici/vici-client.js";
import { Lab, type LabHost, type LabProcess } from "./lab.js";
import { addPods, type HostLease, PREFIX, waitFor, waitForLeases } from "./weft-cluster.js";

const PSK = "weft-lab-psk-".padEnd(100, "0123456789");
const CHARON = "/usr/lib/ipsec/charon";

/** The host's strongswan.conf and a wrapper that gives charon its own /run; returns weftd's env. */
function charonSetup(lab: Lab, host: LabHost): Record<string, string> {
  const dir = lab.hostDir(host);
  const socket = join(dir, "charon.vici");
  const conf = join(dir, "strongswan.conf");
  writeFileSync(
    conf,
    `charon {
  load = random nonce openssl aes sha1 sha2 hmac gcm gmp kdf kernel-libipsec kernel-netlink socket-default vici
  plugins {
    vici { socket = unix://${socket} }
  }
  filelog {
    charon { path = ${join(dir, "charon.log")}
      flush_line = yes
      time_format = %T
      default = 1
      ike = 2 }
  }
}
`,
  );
  const wrapper = join(dir, "charon.sh");
  writeFileSync(
    wrapper,
    `#!/bin/sh\nexec unshare -m sh -c 'mount -t tmpfs weft-charon /run && exec ${CHARON}'\n`,
  );
  chmodSync(wrapper, 0o755);
  return { STRONGSWAN_CONF: conf, WEFT_CHARON: wrapper, WEFT_CHARON_VICI: socket };
}

async function withVici<T>(lab: Lab, host: LabHost, fn: (client: ViciClient) => Promise<T>): Promise<T> {
  const client = await ViciClient.open(join(lab.hostDir(host), "charon.vici"));
  try {
    return await fn(client);
  } finally {
    client.close();
  }
}

async function listSas(lab: Lab, host: LabHost) {
  return withVici(lab, host, async (client) => {
    const { events } = await client.streamed("list-sas", "list-sa", { noblock: "yes" });
    return events.flatMap(readListSaEvent);
  });
}

async function loadedConns(lab: Lab, host: LabHost): Promise<string[]> {
  return withVici(lab, host, async (client) => [...((await client.request("get-conns")).conns as string[])]);
}

function charonLog(lab: Lab, host: LabHost): string {
  try {
    const text = readFileSync(join(lab.hostDir(host), "charon.log"), "utf8");
    writeFileSync(`/tmp/ipsec-debug-${host.index}.log`, text);
    return text.split("\n").slice(-60).join("\n");
  } catch (error) {
    return (error as Error).message;
  }
}

function connName(own: LabHost, ownLease: HostLease, peer: LabHost, peerLease: HostLease): string {
  return `${own.ip}-${ownLease.subnet}-${peerLease.subnet}-${peer.ip}`;
}

for (const udpEncap of [false, true])
  describe(`weftd with ipsec (charon over VICI, UDPEncap ${udpEncap}) on 2 hosts`, {
    timeout: 150_000,
  }, () => {
    const config = JSON.stringify({
      Network: "10.244.0.0/16",
      Backend: { Type: "ipsec", PSK, UDPEncap: udpEncap },
    });
    let lab: Lab;
    let weftds: LabProcess[];
    let leases: HostLease[];
    let pods: string[];

    before(async () => {
      lab = await Lab.create({ hosts: 2, tag: udpEncap ? "ipsecudp" : "ipsec" });
      await lab.startEtcd();
      await lab.etcdctl(["put", `${PREFIX}/config`, config]);
      const envs = lab.hosts.map((h) => charonSetup(lab, h));
      const first = await Promise.all(lab.hosts.map((h, i) => lab.startWeftd(h, [], envs[i])));
      leases = await waitForLeases(lab, first, 20_000);
      // kernel-libipsec routes each remote subnet into ipsec0 from an address of the local subnet and
      // fails the CHILD SA without one: give each host its pod address, then start weftd again (it keeps
      // its lease, as flanneld does).
      for (const weftd of first) await weftd.stop();
      pods = await addPods(lab, leases);
      weftds = await Promise.all(lab.hosts.map((h, i) => lab.startWeftd(h, [], envs[i])));
      const again = await waitForLeases(lab, weftds, 20_000);
      assert.deepEqual(again, leases, "weftd kept its lease across the restart");
    });
    after(async () => lab?.destroy());

    const [h1, h2] = [() => lab.host(1), () => lab.host(2)];

    it("publishes flanneld's lease: PublicIP and BackendType ipsec, no BackendData", async () => {
      const kvs = await lab.etcdGetPrefix(`${PREFIX}/subnets/`);
      assert.deepEqual(
        kvs.map((kv) => kv.value).sort(),
        lab.hosts.map((h) => `{"PublicIP":"${h.ip}","PublicIPv6":null,"BackendType":"ipsec"}`),
      );
    });

    it("writes flannel's MTU: 1500 - 77 for ESP, - 8 more with UDPEncap", async () => {
      const env = readFileSync(lab.subnetFile(h1()), "utf8");
      assert.match(env, new RegExp(`^FLANNEL_MTU=${udpEncap ? 1415 : 1423}$`, "m"));
    });

    it("has charon bring the IKE SA up and install one CHILD SA per subnet pair on both hosts", async () => {
      for (const [own, peer, ownLease, peerLease] of [
        [h1(), h2(), leases[0]!, leases[1]!],
        [h2(), h1(), leases[1]!, leases[0]!],
      ] as const) {
        const name = connName(own, ownLease, peer, peerLease);
        const child = `${ownLease.subnet}-${peerLease.subnet}`;
        let last: unknown;
        await waitFor(
          `IKE SA ${name} ESTABLISHED with CHILD SA ${child} INSTALLED on ${own.name}`,
          async () => {
            const sas = await listSas(lab, own).catch((e: Error) => e.message);
            last = sas;
            return (
              Array.isArray(sas) &&
              sas.some(
                (sa) =>
                  sa.name === name &&
                  sa.state === "ESTABLISHED" &&
                  // kernel-libipsec carries ESP in UDP only, so the CHILD SA is encapsulated whatever
                  // UDPEncap says: here UDPEncap is checked as accepted by charon, not by its effect.
                  sa.children.some((c) => c.name === child && c.state === "INSTALLED" && c.encap),
              )
            );
          },
          30_000,
          250,
        ).catch((error: Error) => {
          throw new Error(
            `${error.message}\nlist-sas: ${JSON.stringify(last)}\nweftd:\n${weftds[own.index - 1]!.output()}\ncharon:\n${charonLog(lab, own)}`,
          );
        });
        assert.deepEqual(await loadedConns(lab, own), [name], "exactly weft's one connection is loaded");
      }
    });

    it("carries pod traffic both ways over the SAs (ESP in userspace, kernel-libipsec): ping and iperf3", async () => {
      for (const [from, to] of [
        [0, 1],
        [1, 0],
      ] as const) {
        const result = await lab.ping(lab.host(from + 1), pods[to]!, {
          count: 3,
          source: pods[from],
          intervalSeconds: 0.2,
        });
        assert.ok(result.received >= 2, result.output);
      }
      const bps = await lab.iperf3(h1(), h2(), pods[0]!, { seconds: 2 });
      assert.ok(bps > 1e6, `throughput ${bps} bit/s over libipsec is implausibly low`);
    });

    it("restarts a killed charon and gets the SAs back", async () => {
      const output = weftds[0]!.output();
      const pid = Number([...output.matchAll(/started charon \(.*, pid (\d+)\)/g)].pop()?.[1]);
      assert.ok(pid > 0, `no charon pid in weftd's log:\n${output}`);
      process.kill(pid, "SIGKILL");
      await weftds[0]!.waitForOutput(/charon exited \(SIGKILL\); starting it again/, 10_000);
      const name = connName(h1(), leases[0]!, h2(), leases[1]!);
      await waitFor(
        `IKE SA ${name} ESTABLISHED again after charon's restart`,
        async () => {
          const sas = await listSas(lab, h1()).catch(() => []);
          return sas.some((sa) => sa.name === name && sa.state === "ESTABLISHED" && sa.children.length > 0);
        },
        30_000,
        250,
      ).catch((error: Error) => {
        throw new Error(`${error.message}\nweftd:\n${weftds[0]!.output()}\ncharon:\n${charonLog(lab, h1())}`);
      });
      const result = await lab.ping(h1(), pods[1]!, { count: 3, source: pods[0], intervalSeconds: 0.2 });
      assert.ok(result.received >= 2, `pod traffic did not resume:\n${result.output}`);
    });

    it("removes a peer's connection when its lease goes", async () => {
      await weftds[1]!.stop();
      const key = `${PREFIX}/subnets/${leases[1]!.subnet.replace("/", "-")}`;
      await lab.etcdctl(["del", key]);
      await waitFor(
        "the gone peer's connection unloaded from host 1's charon",
        async () => (await loadedConns(lab, h1())).length === 0,
        15_000,
        200,
      );
      assert.deepEqual(await listSas(lab, h1()), [], "its IKE SA terminated");
      assert.doesNotMatch(weftds[0]!.output(), /refused (unload-conn|terminate)/);
    });
  });

describe("weftd with a bad ipsec config", { timeout: 60_000 }, () => {
  let lab: Lab;
  before(async () => {
    lab = await Lab.create({ hosts: 1, tag: "ipsecbad" });
    await lab.startEtcd();
  });
  after(async () => lab?.destroy());

  it("names a short PSK, then a bad ESPProposal, waits, and starts once the config is fixed", async () => {
    const put = (backend: object) =>
      lab.etcdctl([
        "put",
        `${PREFIX}/config`,
        JSON.stringify({ Network: "10.244.0.0/16", Backend: backend }),
      ]);
    await put({ Type: "ipsec", PSK: "too-short" });
    const weftd = await lab.startWeftd(lab.host(1), [], charonSetup(lab, lab.host(1)));
    await weftd.waitForOutput(
      /Backend\.PSK of the ipsec backend must be at least 96 characters.*not 9 characters/,
      10_000,
    );
    await put({ Type: "ipsec", PSK, ESPProposal: "aes128gcm16-sha257" });
    await weftd.waitForOutput(/Backend\.ESPProposal of the ipsec backend .*"sha257"/, 10_000);
    assert.ok(weftd.running, "weftd waits for a fixed config");
    await put({ Type: "ipsec", PSK });
    await waitForLeases(lab, [weftd], 20_000);
    await weftd.waitForOutput(/started charon/, 10_000);
    assert.doesNotMatch(weftd.output(), /^\s+at /m, "no stack trace");
  });
});
