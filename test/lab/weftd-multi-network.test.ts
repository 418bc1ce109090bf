/**
 * flanneld v0.7's multi-network mode (--networks, --subnet-dir, --watch-networks) on real hosts and etcd,
 * against what flanneld v0.7.0 did (test/fixtures/reference/flanneld-v0.7.0/multi-network.txt): one lease,
 * backend, device set and <network>.env per network; a broken network leaves the others working.
 */
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { describe, it } from "node:test";
import { readReference, section } from "../helpers/reference.js";
import { type Lab, type LabHost, type LabProcess, withLab } from "./lab.js";
import { PREFIX, waitFor } from "./weft-cluster.js";

const REF = readReference("flanneld-v0.7.0", "multi-network.txt");
/** The configs flanneld v0.7.0 ran with, by network, as the reference set them. */
const CONFIGS = new Map<string, string>();
{
  const lines = section(REF, "network configs").split("\n");
  // "/coreos.com/network/blue/config" then its value
  for (let i = 0; i + 1 < lines.length; i += 2) CONFIGS.set(lines[i]!.split("/")[3]!, lines[i + 1]!);
}
const config = (network: string) => CONFIGS.get(network)!;

const networksDir = (lab: Lab, host: LabHost) => join(lab.hostDir(host), "networks");
const envPath = (lab: Lab, host: LabHost, network: string) => join(networksDir(lab, host), `${network}.env`);

async function readEnv(lab: Lab, host: LabHost, network: string): Promise<string | undefined> {
  try {
    return await readFile(envPath(lab, host, network), "utf8");
  } catch {
    return undefined;
  }
}

/** "10.10.23" from FLANNEL_SUBNET=10.10.23.1/24 */
function subnetBase(env: string): string {
  const m = /^FLANNEL_SUBNET=(\d+\.\d+\.\d+)\.1\/24$/m.exec(env);
  assert.ok(m, `no FLANNEL_SUBNET in:\n${env}`);
  return m[1]!;
}

/** The reference's h1 <network>.env with our subnet in it: byte for byte what weftd must write. */
function expectedEnv(network: string, base: string): string {
  const ref = `${section(REF, `phase 1: h1 cat <dir>/b/h1/networks/${network}.env`)}\n`;
  return ref.replace(/^FLANNEL_SUBNET=.*$/m, `FLANNEL_SUBNET=${base}.1/24`);
}

async function waitForEnv(lab: Lab, host: LabHost, network: string, timeoutMs = 20_000): Promise<string> {
  let text: string | undefined;
  await waitFor(
    `${host.name}'s ${network}.env`,
    async () => {
      text = await readEnv(lab, host, network);
      return text !== undefined;
    },
    timeoutMs,
  );
  return text!;
}

function startMulti(lab: Lab, host: LabHost, args: readonly string[]): Promise<LabProcess> {
  return lab.startWeftd(host, [`--subnet-dir=${networksDir(lab, host)}`, ...args]);
}

async function vxlanId(lab: Lab, host: LabHost, device: string): Promise<number | undefined> {
  const result = await lab.exec(host, ["ip", "-d", "-json", "link", "show", device]);
  if (result.code !== 0) return undefined;
  const [link] = JSON.parse(result.stdout) as Array<{ linkinfo?: { info_data?: { id?: number } } }>;
  return link?.linkinfo?.info_data?.id;
}

async function routes(
  lab: Lab,
  host: LabHost,
): Promise<Array<{ dst: string; gateway?: string; dev: string }>> {
  return JSON.parse(await lab.run(host, ["ip", "-4", "-json", "route", "show"]));
}

/** The rule specs of one of our chains, as iptables-save prints them. */
async function chainRules(
  lab: Lab,
  host: LabHost,
  table: "nat" | "filter",
  chain: string,
): Promise<string[]> {
  const saved = await lab.run(host, ["iptables-save", "-t", table]);
  return saved
    .split("\n")
    .filter((l) => l.startsWith(`-A ${chain} `))
    .map((l) => l.slice(`-A ${chain} `.length));
}

async function assertPing(lab: Lab, from: LabHost, to: string, source?: string): Promise<void> {
  const result = await lab.ping(from, to, { count: 3, ...(source ? { source } : {}) });
  assert.ok(result.reachable, `${from.name} -> ${to}: ${result.output}`);
}

describe("weftd multi-network mode (flanneld v0.7)", { timeout: 240_000 }, () => {
  it("runs vxlan and host-gw networks side by side on 3 hosts; a broken network waits alone", async () => {
    await withLab({ hosts: 3, tag: "multinet" }, async (lab) => {
      await lab.startEtcd();
      await lab.etcdctl(["put", `${PREFIX}/blue/config`, config("blue")]);
      await lab.etcdctl(["put", `${PREFIX}/red/config`, config("red")]);
      // green is broken: VNI is not a number. weftd must say so by name and keep blue and red running.
      await lab.etcdctl([
        "put",
        `${PREFIX}/green/config`,
        '{"Network":"10.20.0.0/16","Backend":{"Type":"vxlan","VNI":"two"}}',
      ]);
      // purple has room for two hosts only: the third reports it and retries, its other networks unharmed.
      await lab.etcdctl([
        "put",
        `${PREFIX}/purple/config`,
        '{"Network":"10.50.0.0/16","SubnetMin":"10.50.1.0","SubnetMax":"10.50.2.0","Backend":{"Type":"vxlan","VNI":5}}',
      ]);
      // A flanneld v0.7 host's lease in its own form (no PublicIPv6, no VNI in BackendData), from the reference.
      const v07Value =
        '{"PublicIP":"172.31.0.99","BackendType":"vxlan","BackendData":{"VtepMAC":"7e:ff:0a:0f:79:0f"}}';
      await lab.etcdctl(["put", `${PREFIX}/blue/subnets/10.10.200.0-24`, v07Value]);
      // Also FLANNELD_NETWORKS, as flanneld's flagutil reads it.
      const weftds = await Promise.all(
        lab.hosts.map((h) =>
          h.index === 3
            ? lab.startWeftd(h, [`--subnet-dir=${networksDir(lab, h)}`], {
                FLANNELD_NETWORKS: "blue,red,green,purple",
              })
            : startMulti(lab, h, ["--networks=blue,red,green,purple"]),
        ),
      );

      const blue: string[] = [];
      const red: string[] = [];
      for (const host of lab.hosts) {
        const blueEnv = await waitForEnv(lab, host, "blue");
        const redEnv = await waitForEnv(lab, host, "red");
        blue.push(subnetBase(blueEnv));
        red.push(subnetBase(redEnv));
        assert.equal(
          blueEnv,
          expectedEnv("blue", subnetBase(blueEnv)),
          "blue.env as flanneld v0.7 writes it",
        );
        assert.equal(redEnv, expectedEnv("red", subnetBase(redEnv)), "red.env as flanneld v0.7 writes it");
        // ls -la showed 96 bytes for 10.10.23.1/24; the size moves only with the subnet's digits.
        assert.equal(
          Buffer.byteLength(blueEnv),
          96 - "10.10.23".length + subnetBase(blueEnv).length,
          "blue.env has the reference's size",
        );
        assert.ok(!existsSync(lab.subnetFile(host)), "--subnet-file is not written in multi-network mode");
      }

      // Leases under each network's own prefix, in HEAD's form.
      const blueLeases = await lab.etcdGetPrefix(`${PREFIX}/blue/subnets/`);
      const h1Blue = blueLeases.find((kv) => kv.key.endsWith(`/${blue[0]}.0-24`));
      assert.match(
        h1Blue?.value ?? "",
        /^\{"PublicIP":"172\.31\.0\.1","PublicIPv6":null,"BackendType":"vxlan","BackendData":\{"VNI":1,"VtepMAC":"[0-9a-f:]{17}"\}\}$/,
      );
      const h1Red = (await lab.etcdGetPrefix(`${PREFIX}/red/subnets/`)).find((kv) =>
        kv.key.endsWith(`/${red[0]}.0-24`),
      );
      assert.equal(h1Red?.value, '{"PublicIP":"172.31.0.1","PublicIPv6":null,"BackendType":"host-gw"}');
      assert.equal(
        (await lab.etcdGetPrefix(`${PREFIX}/green/subnets/`)).length,
        0,
        "no lease for broken green",
      );

      // Devices: blue's flannel.1 (VNI 1), nothing for green.
      const [h1, h2, h3] = lab.hosts as [LabHost, LabHost, LabHost];
      assert.equal(await vxlanId(lab, h1, "flannel.1"), 1);
      assert.equal(
        await vxlanId(lab, h1, "flannel.2"),
        undefined,
        "green sets nothing up while its config is bad",
      );
      await weftds[0]!.waitForOutput(/green: waiting for a valid network config: .*VNI/, 10_000);

      // Routes: blue's peers over flannel.1, red's via the peers' addresses on eth0, each network apart.
      await waitFor(
        "h1's routes of both networks",
        async () => {
          const r = await routes(lab, h1);
          const has = (dst: string, dev: string, gateway?: string) =>
            r.some((x) => x.dst === dst && x.dev === dev && (gateway === undefined || x.gateway === gateway));
          return (
            has(`${blue[1]}.0/24`, "flannel.1") &&
            has(`${blue[2]}.0/24`, "flannel.1") &&
            has(`${red[1]}.0/24`, "eth0", h2.ip) &&
            has(`${red[2]}.0/24`, "eth0", h3.ip)
          );
        },
        15_000,
      );
      // The v0.7 host's lease is read: its VTEP gets an FDB entry on flannel.1.
      await waitFor(
        "the v0.7 lease's FDB entry",
        async () =>
          (await lab.run(h1, ["bridge", "fdb", "show", "dev", "flannel.1"])).includes(
            "7e:ff:0a:0f:79:0f dst 172.31.0.99",
          ),
        10_000,
      );

      // purple: two leases, and the host left without one says so and keeps trying.
      await waitFor(
        "a host reporting purple's full range",
        async () =>
          weftds.some((w) =>
            /purple: no free subnet left in 10\.50\.0\.0\/16 .*trying the network again in 10 s/.test(
              w.output(),
            ),
          ),
        20_000,
      );
      assert.equal((await lab.etcdGetPrefix(`${PREFIX}/purple/subnets/`)).length, 2);
      const purpleLess = lab.hosts.filter((_, i) => /purple: no free subnet/.test(weftds[i]!.output()));
      assert.equal(purpleLess.length, 1, "exactly one host has no purple subnet");
      assert.equal(await readEnv(lab, purpleLess[0]!, "purple"), undefined);
      const h1Purple = purpleLess[0] !== h1 ? ["-s 10.50.0.0/16", "-d 10.50.0.0/16"] : [];
      await waitFor(
        "h1's purple.env",
        async () => h1Purple.length === 0 || (await readEnv(lab, h1, "purple")) !== undefined,
        10_000,
      );

      // One forward chain for all networks: each network's pair of rules, in --networks order.
      assert.deepEqual(
        (await chainRules(lab, h1, "filter", "FLANNEL-FWD")).map((r) => r.split(" -m ")[0]),
        ["-s 10.10.0.0/16", "-d 10.10.0.0/16", "-s 10.30.0.0/16", "-d 10.30.0.0/16", ...h1Purple],
      );

      // Traffic inside each network: blue between the flannel.1 addresses, red between pod addresses.
      for (const host of lab.hosts) await lab.addPodAddress(host, `${red[host.index - 1]}.1/24`);
      await assertPing(lab, h1, `${blue[1]}.0`);
      await assertPing(lab, h1, `${blue[2]}.0`);
      await assertPing(lab, h3, `${blue[1]}.0`);
      await assertPing(lab, h1, `${red[1]}.1`, `${red[0]}.1`);
      await assertPing(lab, h2, `${red[2]}.1`, `${red[1]}.1`);

      // Green fixed (the reference's config): it joins without a restart, next to the others.
      await lab.etcdctl(["put", `${PREFIX}/green/config`, config("green")]);
      const green: string[] = [];
      for (const host of lab.hosts) {
        const env = await waitForEnv(lab, host, "green", 30_000);
        assert.equal(env, expectedEnv("green", subnetBase(env)));
        green.push(subnetBase(env));
      }
      assert.equal(await vxlanId(lab, h1, "flannel.2"), 2);
      await waitFor(
        "green's routes",
        async () =>
          (await routes(lab, h1)).some((x) => x.dst === `${green[1]}.0/24` && x.dev === "flannel.2"),
        15_000,
      );
      await assertPing(lab, h1, `${green[1]}.0`);
      await waitFor(
        "green's forward rules after blue's and red's",
        async () =>
          (await chainRules(lab, h1, "filter", "FLANNEL-FWD")).map((r) => r.split(" -m ")[0]).join(",") ===
          [
            "-s 10.10.0.0/16,-d 10.10.0.0/16,-s 10.30.0.0/16,-d 10.30.0.0/16,-s 10.20.0.0/16,-d 10.20.0.0/16",
            ...h1Purple,
          ].join(","),
        10_000,
      );
      // Blue's routes survived green's reconciler (ownership scopes per network).
      const after = await routes(lab, h1);
      assert.ok(
        after.some((x) => x.dst === `${blue[1]}.0/24` && x.dev === "flannel.1"),
        "blue's route kept",
      );
      assert.ok(
        after.some((x) => x.dst === `${red[1]}.0/24` && x.gateway === h2.ip),
        "red's route kept",
      );
      for (const weftd of weftds) assert.ok(weftd.running, "weftd keeps running");
    });
  });

  it("--watch-networks joins a listed network whose config appears later and refuses unlisted ones", async () => {
    await withLab({ hosts: 2, tag: "watchnet" }, async (lab) => {
      await lab.startEtcd();
      await lab.etcdctl(["put", `${PREFIX}/blue/config`, config("blue")]);
      const weftds = await Promise.all(
        lab.hosts.map((h) => startMulti(lab, h, ["--watch-networks", "--networks=blue,cyan", "--ip-masq"])),
      );
      const [h1, h2] = lab.hosts as [LabHost, LabHost];
      for (const host of lab.hosts) await waitForEnv(lab, host, "blue");
      assert.equal(await readEnv(lab, h1, "cyan"), undefined, "no cyan.env before cyan has a config");
      assert.equal(await vxlanId(lab, h1, "flannel.6"), undefined);

      await lab.etcdctl(["put", `${PREFIX}/cyan/config`, config("cyan")]);
      await lab.etcdctl(["put", `${PREFIX}/orange/config`, config("orange")]);
      const cyan: string[] = [];
      for (const host of lab.hosts) {
        const env = await waitForEnv(lab, host, "cyan");
        assert.equal(env, expectedEnvOf("cyan", subnetBase(env)).replace("IPMASQ=false", "IPMASQ=true"));
        cyan.push(subnetBase(env));
      }
      await weftds[0]!.waitForOutput(/network added: cyan/, 5_000);
      await weftds[0]!.waitForOutput(/network "orange" is not allowed/, 10_000);
      assert.equal(await vxlanId(lab, h1, "flannel.6"), 6);
      assert.equal(await vxlanId(lab, h1, "flannel.7"), undefined, "orange is not joined");
      assert.equal((await lab.etcdGetPrefix(`${PREFIX}/orange/subnets/`)).length, 0);
      await waitFor(
        "h1's route to h2's cyan subnet",
        async () => (await routes(lab, h1)).some((x) => x.dst === `${cyan[1]}.0/24` && x.dev === "flannel.6"),
        15_000,
      );
      await assertPing(lab, h1, `${cyan[1]}.0`);
      await assertPing(lab, h2, `${cyan[0]}.0`);
      // --ip-masq: one masquerade chain with each network's rules (v0.7 masqueraded per network too).
      const blueH1 = subnetBase((await readEnv(lab, h1, "blue"))!);
      const masq = async () => (await chainRules(lab, h1, "nat", "FLANNEL-POSTRTG")).join("\n");
      await waitFor(
        "cyan's masquerade rules",
        async () => (await masq()).includes(`-s 10.60.0.0/16 -d 10.60.0.0/16`),
        10_000,
      );
      const rules = await masq();
      assert.match(rules, /^-m mark --mark 0x4000\/0x4000 .*-j RETURN$/m);
      assert.equal(rules.match(/--mark 0x4000/g)?.length, 1, "the kube-proxy mark rule comes once");
      for (const [net, subnet] of [
        ["10.10.0.0/16", `${blueH1}.0/24`],
        ["10.60.0.0/16", `${cyan[0]}.0/24`],
      ]) {
        assert.match(rules, new RegExp(`^-s ${net} -d ${net} .*-j RETURN$`, "m"));
        assert.match(rules, new RegExp(`^! -s ${net} -d ${subnet} .*-j RETURN$`, "m"));
        assert.match(rules, new RegExp(`^-s ${net} ! -d 224\\.0\\.0\\.0/4 .*-j MASQUERADE`, "m"));
      }
      assert.ok(rules.indexOf("10.10.0.0/16") < rules.indexOf("10.60.0.0/16"), "--networks order");

      // Removed from the store: weftd stops tending it and, as flanneld v0.7, leaves its datapath.
      await lab.etcdctl(["del", "--prefix", `${PREFIX}/cyan`]);
      await weftds[0]!.waitForOutput(/network removed: cyan/, 10_000);
      assert.equal(await vxlanId(lab, h1, "flannel.6"), 6, "the device stays, as with flanneld v0.7");
      // Its rules go with it, as flanneld v0.7 removed a stopped network's masquerade rules; blue's stay.
      await waitFor("cyan's rules removed", async () => !(await masq()).includes("10.60.0.0/16"), 10_000);
      assert.match(await masq(), /^-s 10\.10\.0\.0\/16 -d 10\.10\.0\.0\/16 /m);
      const blueBase = subnetBase((await readEnv(lab, h2, "blue"))!);
      await assertPing(lab, h1, `${blueBase}.0`);
      for (const weftd of weftds) assert.ok(weftd.running);
    });
  });
});

/** cyan is only in phase 2 of the reference (h3), so its file is taken from there. */
function expectedEnvOf(network: string, base: string): string {
  const ref = `${section(REF, `phase 2: h3 cat <dir>/b/h3/networks/${network}.env`)}\n`;
  return ref.replace(/^FLANNEL_SUBNET=.*$/m, `FLANNEL_SUBNET=${base}.1/24`);
}
