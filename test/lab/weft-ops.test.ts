/**
 * `weft leases` and `weft doctor` on a lab cluster: two hosts running weftd (vxlan, --ip-masq) and two
 * reservations an operator wrote, one in an old flanneld's form. leases must equal the store; doctor must
 * say ok on the healthy host and, with weftd stopped, name each fault; weftd's repair makes it ok again.
 */
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { promisify } from "node:util";
import { Lab, type LabHost, type LabProcess } from "./lab.js";
import { type Cluster, PREFIX, startCluster, VXLAN, waitFor } from "./weft-cluster.js";

const run = promisify(execFile);
/** weft as it ships: the Bun executable. */
const WEFT = join(import.meta.dirname, "..", "..", "bin", "weft");
const WEFTD_ARGS = ["--ip-masq", "--iptables-resync=1"];
/** Reservations: no TTL. The second is written as flanneld v0.7.0 wrote leases (no PublicIPv6). */
const RESERVED = new Map([
  [
    "10.244.200.0-24",
    '{"PublicIP":"172.31.0.99","PublicIPv6":null,"BackendType":"vxlan","BackendData":{"VNI":1,"VtepMAC":"aa:bb:cc:00:00:99"}}',
  ],
  [
    "10.244.201.0-24",
    '{"PublicIP":"172.31.0.98","BackendType":"vxlan","BackendData":{"VtepMAC":"aa:bb:cc:00:00:98"}}',
  ],
]);

interface DoctorCheck {
  name: string;
  status: string;
  detail: string;
  fix?: string;
}

describe("weft leases and weft doctor", { timeout: 240_000 }, () => {
  let lab: Lab;
  let cluster: Cluster;
  let weftd1: LabProcess;
  const h1 = (): LabHost => lab.host(1);

  const weft = (host: LabHost, args: string[]) =>
    lab.exec(host, [WEFT, ...args, `--etcd-endpoints=${lab.etcdEndpoint}`, "--iface=eth0"]);
  const doctor = async () => {
    const result = await weft(h1(), [
      "doctor",
      "-o",
      "json",
      `--subnet-file=${lab.subnetFile(h1())}`,
      ...WEFTD_ARGS,
    ]);
    assert.equal(result.stderr, "", "doctor writes nothing to stderr");
    const report = JSON.parse(result.stdout) as { ok: boolean; checks: DoctorCheck[] };
    assert.equal(report.ok, result.code === 0, "the exit code follows the verdict");
    return { code: result.code, report, failed: report.checks.filter((c) => c.status === "fail") };
  };
  const failedNames = (checks: DoctorCheck[]) => checks.map((c) => c.name).sort();

  before(async () => {
    lab = await Lab.create({ hosts: 2, tag: "ops" });
    await lab.startEtcd();
    for (const [key, value] of RESERVED) await lab.etcdctl(["put", `${PREFIX}/subnets/${key}`, value]);
    cluster = await startCluster(lab, VXLAN, WEFTD_ARGS);
    weftd1 = cluster.weftds[0]!;
  });
  after(async () => lab?.destroy());

  it("lists the store's leases as JSON, with reservations and expiry", async () => {
    const result = await weft(h1(), ["leases", "--output", "json"]);
    assert.equal(result.code, 0, result.stderr);
    const listing = JSON.parse(result.stdout) as {
      store: string;
      network: string;
      leases: Array<Record<string, unknown>>;
    };
    assert.equal(listing.store, "etcd");
    assert.equal(listing.network, "10.244.0.0/16");
    const stored = await lab.etcdGetPrefix(`${PREFIX}/subnets/`);
    assert.equal(stored.length, 4);
    assert.deepEqual(
      listing.leases.map((l) => l.key).sort(),
      stored.map((kv) => kv.key.slice(`${PREFIX}/subnets/`.length)).sort(),
    );
    for (const kv of stored) {
      const key = kv.key.slice(`${PREFIX}/subnets/`.length);
      const lease = listing.leases.find((l) => l.key === key)!;
      const value = JSON.parse(kv.value);
      assert.equal(lease.subnet, key.replace("-", "/"));
      assert.equal(lease.publicIP, value.PublicIP);
      assert.equal(lease.backendType, value.BackendType);
      assert.equal(lease.vtep, value.BackendData.VtepMAC);
      assert.deepEqual(lease.backendData, value.BackendData);
      assert.equal(lease.reservation, RESERVED.has(key), key);
      if (RESERVED.has(key)) assert.equal(lease.expiresInSeconds, null);
      else {
        const ttl = lease.expiresInSeconds as number;
        assert.ok(ttl > 23 * 3600 && ttl <= 24 * 3600, `weftd's 24 h TTL, got ${ttl}`);
      }
      const oldForm = !kv.value.includes("PublicIPv6");
      assert.equal(
        lease.writer,
        oldForm ? "flanneld before IPv6 support (e.g. v0.7)" : "weft or flanneld",
        key,
      );
    }
  });

  it("prints the same leases as a table", async () => {
    const result = await weft(h1(), ["leases"]);
    assert.equal(result.code, 0, result.stderr);
    const lines = result.stdout.trimEnd().split("\n");
    assert.match(lines[0]!, /^etcd · network 10\.244\.0\.0\/16 · backend vxlan · 4 lease\(s\)$/);
    assert.match(lines[1]!, /^SUBNET\s+PUBLIC IP\s+BACKEND\s+VTEP MAC \/ KEY\s+EXPIRES\s+WRITTEN BY$/);
    const stored = await lab.etcdGetPrefix(`${PREFIX}/subnets/`);
    assert.equal(lines.length, 2 + stored.length);
    for (const kv of stored) {
      const key = kv.key.slice(`${PREFIX}/subnets/`.length);
      const value = JSON.parse(kv.value);
      const row = lines.find((l) => l.startsWith(`${key.replace("-", "/")} `));
      assert.ok(row, `a row for ${key}`);
      const cells = row.split(/\s{2,}/);
      assert.equal(cells[1], value.PublicIP);
      assert.equal(cells[2], "vxlan");
      assert.equal(cells[3], value.BackendData.VtepMAC);
      assert.match(cells[4]!, RESERVED.has(key) ? /^reservation$/ : /^in 2[34]h\d\dm$/);
    }
  });

  it("draws the address space as SVG that parses and names every lease", async () => {
    const file = join(lab.tempDir, "leases.svg");
    const result = await weft(h1(), ["leases", "-o", "json", `--svg=${file}`]);
    assert.equal(result.code, 0, result.stderr);
    await run("xmllint", ["--noout", file]);
    const svg = await readFile(file, "utf8");
    for (const kv of await lab.etcdGetPrefix(`${PREFIX}/subnets/`)) {
      const subnet = kv.key.slice(`${PREFIX}/subnets/`.length).replace("-", "/");
      assert.ok(svg.includes(`<title>${subnet} · host ${JSON.parse(kv.value).PublicIP}`), `names ${subnet}`);
    }
    assert.match(svg, /10\.244\.0\.0\/16: 2 taken, 2 reserved, 252 free \/24 subnets/);
    assert.equal((svg.match(/<rect x=/g) ?? []).length >= 256, true, "one cell per /24");
  });

  it("says ok for the healthy host", async () => {
    // weftd programs the reservations in the run that programmed the peers startCluster waited for.
    await waitFor("the datapath to settle", async () => (await doctor()).code === 0, 10_000, 200).catch(
      () => undefined,
    );
    const { code, report, failed } = await doctor();
    assert.deepEqual(failedNames(failed), []);
    assert.equal(code, 0);
    const names = report.checks.map((c) => c.name);
    for (const name of [
      "interface",
      "lease",
      "subnet-env",
      "device flannel.1",
      "vtep-mac flannel.1",
      "mtu",
      "route",
      "neigh",
      "fdb",
      "iptables FLANNEL-POSTRTG",
      "iptables FLANNEL-FWD",
      "ip-forward",
      "rp-filter",
    ]) {
      assert.ok(names.includes(name), `checks ${name}`);
    }
    // setup.sh installs ethtool, so the offload flag is read, not skipped.
    const offload = report.checks.find((c) => c.name === "checksum-offload flannel.1")!;
    assert.ok(["ok", "warn"].includes(offload.status), JSON.stringify(offload));
    assert.match(offload.detail, /tx-checksum-ip-generic is (on|off) for flannel\.1/);
    assert.match(
      report.checks.find((c) => c.name === "lease")!.detail,
      /^10\.244\.\d+\.0-24 \(expires in 2[34]h\d\dm\)$/,
    );
    const table = await weft(h1(), ["doctor", `--subnet-file=${lab.subnetFile(h1())}`, ...WEFTD_ARGS]);
    assert.equal(table.code, 0);
    assert.match(table.stdout, /^ok {4}store +etcd: 4 lease\(s\), backend vxlan$/m);
    assert.match(table.stdout, /\nno problems found(, \d warning\(s\))?\n$/);
    const route = report.checks.find((c) => c.name === "route")!;
    assert.match(route.detail, /^3 routes as weftd wants/, "host 2 and both reservations");
    assert.match(
      report.checks.find((c) => c.name === "interface")!.detail,
      /eth0 chosen by --iface eth0; local 172\.31\.0\.1; public IP 172\.31\.0\.1/,
    );
  });

  describe("with weftd stopped, names each fault, and weftd's repair clears it", () => {
    before(async () => {
      await weftd1.stop();
    });
    after(async () => {
      if (weftd1.exitStatus === undefined) await weftd1.stop();
    });

    const repairedByWeftd = async () => {
      weftd1 = await lab.startWeftd(h1(), WEFTD_ARGS);
      await waitFor(
        "doctor to say ok after weftd's repair",
        async () => (await doctor()).code === 0,
        20_000,
        200,
      );
      await weftd1.stop();
    };

    const peer = () => cluster.leases[1]!;

    it("a deleted route", async () => {
      await lab.run(h1(), ["ip", "route", "del", peer().subnet]);
      const { code, failed } = await doctor();
      assert.equal(code, 1);
      assert.deepEqual(failedNames(failed), ["route"]);
      assert.match(failed[0]!.detail, new RegExp(`missing: route ${peer().subnet.replace(/\./g, "\\.")}`));
      assert.match(failed[0]!.fix ?? "", /start weftd/);
      await repairedByWeftd();
    });

    it("a stale FDB entry nobody's lease names", async () => {
      await lab.run(h1(), [
        "bridge",
        "fdb",
        "add",
        "0a:0b:0c:0d:0e:0f",
        "dev",
        "flannel.1",
        "dst",
        "172.31.0.55",
        "self",
        "permanent",
      ]);
      const { code, failed } = await doctor();
      assert.equal(code, 1);
      assert.deepEqual(failedNames(failed), ["fdb"]);
      assert.match(failed[0]!.detail, /stale: fdb 0a:0b:0c:0d:0e:0f dst 172\.31\.0\.55 dev flannel\.1/);
      await repairedByWeftd();
    });

    it("a wrong FDB entry", async () => {
      const fdb = await lab.run(h1(), ["bridge", "fdb", "show", "dev", "flannel.1"]);
      const mac = /^([0-9a-f:]{17}) dst 172\.31\.0\.2 /m.exec(fdb)![1]!;
      await lab.run(h1(), ["bridge", "fdb", "replace", mac, "dev", "flannel.1", "dst", "172.31.0.77"]);
      const { code, failed } = await doctor();
      assert.equal(code, 1);
      assert.deepEqual(failedNames(failed), ["fdb"]);
      assert.match(
        failed[0]!.detail,
        new RegExp(`wrong: fdb ${mac} dst 172\\.31\\.0\\.77 .*expected fdb ${mac} dst 172\\.31\\.0\\.2`),
      );
      await repairedByWeftd();
    });

    it("an MTU too big for the underlay", async () => {
      // The kernel refuses a vxlan MTU its device cannot carry, so the underlay shrinks instead (a
      // cloud or VPN change): flannel.1 keeps 1450, which no longer fits.
      await lab.run(h1(), ["ip", "link", "set", "eth0", "mtu", "1400"]);
      const { code, failed } = await doctor();
      assert.equal(code, 1);
      assert.deepEqual(failedNames(failed), ["device flannel.1", "mtu", "subnet-env"]);
      assert.match(failed.find((c) => c.name === "device flannel.1")!.detail, /MTU 1450, expected 1350/);
      assert.match(
        failed.find((c) => c.name === "mtu")!.detail,
        /flannel\.1 MTU 1450 \+ 50 bytes of encapsulation exceeds eth0's MTU 1400/,
      );
      assert.match(failed.find((c) => c.name === "subnet-env")!.detail, /FLANNEL_MTU=1450, expected 1350/);
      await lab.run(h1(), ["ip", "link", "set", "eth0", "mtu", "1500"]);
      await repairedByWeftd();
    });

    it("a deleted device", async () => {
      await lab.run(h1(), ["ip", "link", "del", "flannel.1"]);
      const { code, failed } = await doctor();
      assert.equal(code, 1);
      assert.ok(failedNames(failed).includes("device flannel.1"), JSON.stringify(failed));
      assert.match(failed.find((c) => c.name === "device flannel.1")!.detail, /flannel\.1 does not exist/);
      await repairedByWeftd();
    });

    it("a flushed iptables chain", async () => {
      await lab.run(h1(), ["iptables", "-t", "nat", "-F", "FLANNEL-POSTRTG"]);
      const { code, failed } = await doctor();
      assert.equal(code, 1);
      assert.deepEqual(failedNames(failed), ["iptables FLANNEL-POSTRTG"]);
      assert.match(failed[0]!.detail, /IPv4 nat chain FLANNEL-POSTRTG/);
      await repairedByWeftd();
    });

    it("a stale subnet.env", async () => {
      const path = lab.subnetFile(h1());
      const text = await readFile(path, "utf8");
      await writeFile(path, text.replace(/^FLANNEL_SUBNET=.*$/m, "FLANNEL_SUBNET=10.244.250.1/24"));
      const { code, failed } = await doctor();
      assert.equal(code, 1);
      assert.deepEqual(failedNames(failed), ["subnet-env"]);
      assert.match(failed[0]!.detail, /FLANNEL_SUBNET=10\.244\.250\.1\/24, expected 10\.244\.\d+\.1\/24/);
      await repairedByWeftd();
    });

    it("ip_forward off", async () => {
      await lab.run(h1(), ["sysctl", "-qw", "net.ipv4.ip_forward=0"]);
      const { code, failed } = await doctor();
      assert.equal(code, 1);
      assert.deepEqual(failedNames(failed), ["ip-forward"]);
      assert.match(failed[0]!.fix ?? "", /sysctl -w net\.ipv4\.ip_forward=1/);
      // weftd leaves the sysctl to the operator, as flanneld does.
      await lab.run(h1(), ["sysctl", "-qw", "net.ipv4.ip_forward=1"]);
      assert.equal((await doctor()).code, 0);
    });
  });
});
