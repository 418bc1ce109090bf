/**
 * The etcd side as an operator meets it: leases others wrote (malformed ones, reservations), our own lease
 * deleted under us, a bad or missing config, an unknown backend, and etcd with TLS and a password.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { withLab } from "./lab.js";
import { makePki, TLS_ETCD_URL, tlsEtcdArgv, tlsEtcdctlFlags } from "./lab-pki.js";
import {
  PREFIX,
  readLease,
  routeDestinations,
  sleep,
  VXLAN,
  waitFor,
  waitForLeases,
} from "./weft-cluster.js";

const SUBNETS = `${PREFIX}/subnets/`;
const noStackTrace = (output: string) =>
  assert.doesNotMatch(output, /^\s+at .+:\d+:\d+\)?$/m, `stack trace in:\n${output}`);

describe("weftd and etcd", { timeout: 180_000 }, () => {
  it("leaves a malformed lease alone, reports it once, and does not take its subnet", async () => {
    await withLab({ hosts: 2, tag: "badlease" }, async (lab) => {
      await lab.startEtcd();
      const config =
        '{"Network":"10.244.0.0/16","SubnetMin":"10.244.7.0","SubnetMax":"10.244.9.0","Backend":{"Type":"vxlan"}}';
      await lab.etcdctl(["put", `${PREFIX}/config`, config]);
      await lab.etcdctl(["put", `${SUBNETS}10.244.7.0-24`, '{"PublicIP":"bogus"}']);
      const weftds = await Promise.all(lab.hosts.map((h) => lab.startWeftd(h)));
      const leases = await waitForLeases(lab, weftds, 10_000);
      assert.deepEqual(leases.map((l) => l.subnet).sort(), ["10.244.8.0/24", "10.244.9.0/24"]);
      await weftds[0]!.waitForOutput(
        /ignoring lease 10\.244\.7\.0-24: PublicIP "bogus" is not an IPv4 address/,
        5000,
      );
      const bad = (await lab.etcdGetPrefix(SUBNETS)).find((kv) => kv.key.endsWith("10.244.7.0-24"));
      assert.equal(bad?.value, '{"PublicIP":"bogus"}', "the bad value is left as it was");
      assert.equal(weftds[0]!.output().match(/ignoring lease 10\.244\.7\.0-24/g)?.length, 1, "reported once");
    });
  });

  it("uses a reservation that carries its address and never takes one that does not", async () => {
    await withLab({ hosts: 2, tag: "reserve" }, async (lab) => {
      await lab.startEtcd();
      await lab.etcdctl([
        "put",
        `${PREFIX}/config`,
        '{"Network":"10.244.0.0/16","SubnetMin":"10.244.20.0","SubnetMax":"10.244.22.0","Backend":{"Type":"host-gw"}}',
      ]);
      // Keys put without an etcd lease are reservations: host 1's, and one for a host that is not here.
      await lab.etcdctl([
        "put",
        `${SUBNETS}10.244.21.0-24`,
        '{"PublicIP":"172.31.0.1","PublicIPv6":null,"BackendType":"host-gw"}',
      ]);
      await lab.etcdctl([
        "put",
        `${SUBNETS}10.244.20.0-24`,
        '{"PublicIP":"172.31.0.99","PublicIPv6":null,"BackendType":"host-gw"}',
      ]);
      const weftds = await Promise.all(lab.hosts.map((h) => lab.startWeftd(h)));
      const leases = await waitForLeases(lab, weftds, 10_000);
      assert.equal(leases[0]!.subnet, "10.244.21.0/24", "host 1 uses its reservation");
      assert.equal(leases[1]!.subnet, "10.244.22.0/24", "host 2 takes the only free subnet");
      const json = JSON.parse(await lab.etcdctl(["get", `${SUBNETS}10.244.21.0-24`, "-w", "json"])) as {
        kvs: Array<{ lease?: number }>;
      };
      assert.ok(!json.kvs[0]!.lease, "the reservation keeps having no TTL");
    });
  });

  it("takes its lease back when someone deletes it, keeping the subnet", async () => {
    await withLab({ hosts: 2, tag: "relost" }, async (lab) => {
      await lab.startEtcd();
      await lab.etcdctl(["put", `${PREFIX}/config`, VXLAN]);
      const weftds = await Promise.all(lab.hosts.map((h) => lab.startWeftd(h)));
      const leases = await waitForLeases(lab, weftds, 10_000);
      const key = `${SUBNETS}${leases[0]!.base}.0-24`;
      await lab.etcdctl(["del", key]);
      await waitFor(
        "the lease to be re-created",
        async () => (await lab.etcdGetPrefix(SUBNETS)).some((kv) => kv.key === key),
        5000,
      );
      await weftds[0]!.waitForOutput(/acquired again/, 5000);
      assert.ok(weftds[0]!.running);
      assert.deepEqual(await readLease(lab, lab.host(1)), leases[0]);
      await sleep(300);
      assert.ok(
        (await routeDestinations(lab, lab.host(2))).includes(leases[0]!.subnet),
        "the peer routes to it again",
      );
    });
  });

  it("waits with a clear message for a missing or invalid config, then starts once it is fixed", async () => {
    await withLab({ hosts: 1, tag: "badconf" }, async (lab) => {
      await lab.startEtcd();
      const weftd = await lab.startWeftd(lab.host(1));
      await weftd.waitForOutput(
        /no network config at \/coreos\.com\/network\/config \(write one, e\.g\. etcdctl put/,
        5000,
      );
      await lab.etcdctl(["put", `${PREFIX}/config`, '{"Network":"10.244.0.0/16","SubnetLen":31}']);
      await weftd.waitForOutput(
        /invalid network config: SubnetLen 31 is too long: it must be at most 30/,
        5000,
      );
      assert.ok(weftd.running, "weftd keeps waiting for a good config");
      await lab.etcdctl(["put", `${PREFIX}/config`, VXLAN]);
      await waitFor("subnet.env", async () => (await readLease(lab, lab.host(1))) !== undefined, 10_000);
      noStackTrace(weftd.output());
    });
  });

  it("waits with one clear line for an unknown backend or a bad backend key, setting nothing up", async () => {
    await withLab({ hosts: 1, tag: "badbe" }, async (lab) => {
      await lab.startEtcd();
      const put = (config: string) => lab.etcdctl(["put", `${PREFIX}/config`, config]);
      await put('{"Network":"10.244.0.0/16","Backend":{"Type":"carrier-pigeon"}}');
      const weftd = await lab.startWeftd(lab.host(1));
      await weftd.waitForOutput(
        /unknown backend type "carrier-pigeon" in Backend\.Type \(use one of: vxlan, host-gw/,
        5000,
      );
      await put('{"Network":"10.244.0.0/16","Backend":{"Type":"vxlan","VNI":16777216}}');
      await weftd.waitForOutput(
        /Backend\.VNI of the vxlan backend must be a whole number from 0 to 16777215, not 16777216/,
        10_000,
      );
      await put('{"Network":"10.244.0.0/16","Backend":{"Type":"vxlan","Port":"8472"}}');
      await weftd.waitForOutput(
        /Backend\.Port of the vxlan backend must be a whole number from 0 to 65535, not "8472"/,
        10_000,
      );
      assert.ok(weftd.running, "weftd keeps waiting for a good backend config");
      assert.equal(
        weftd.output().match(/Backend\.VNI of/g)?.length,
        1,
        "each cause is logged once, not per retry",
      );
      const links = await lab.run(lab.host(1), ["ip", "-o", "link", "show"]);
      assert.doesNotMatch(links, /flannel\./, "no device is made for a config that is not valid");
      assert.deepEqual(await lab.etcdGetPrefix(SUBNETS), [], "no lease is taken either");
      await put(VXLAN);
      await waitFor("subnet.env", async () => (await readLease(lab, lab.host(1))) !== undefined, 15_000);
      noStackTrace(weftd.output());
    });
  });

  it("talks to etcd over TLS with a client certificate and a username and password", async () => {
    await withLab({ hosts: 1, tag: "tls" }, async (lab) => {
      const pki = await makePki(lab.tempDir);
      const url = TLS_ETCD_URL;
      const etcd = await lab.spawn(lab.fabric, tlsEtcdArgv(pki));
      const tls = tlsEtcdctlFlags(pki);
      const ctl = (args: string[], user = true) =>
        lab.run(lab.fabric, ["etcdctl", ...tls, ...(user ? ["--user=root:s3cret"] : []), ...args], {
          env: { ETCDCTL_API: "3" },
        });
      let last = "";
      await waitFor(
        "etcd with TLS",
        async () => {
          // etcdctl prints the health verdict on stderr.
          const result = await lab.exec(lab.fabric, ["etcdctl", ...tls, "endpoint", "health"], {
            env: { ETCDCTL_API: "3" },
          });
          last = result.stdout + result.stderr;
          return result.code === 0 && last.includes("is healthy");
        },
        15_000,
        200,
      ).catch((err: Error) => {
        throw new Error(`${err.message}\nlast check: ${last}\n${etcd.output()}`);
      });
      await ctl(["user", "add", "root:s3cret"], false);
      await ctl(["auth", "enable"], false);
      await ctl(["put", `${PREFIX}/config`, VXLAN]);
      const weftd = await lab.startWeftd(lab.host(1), [
        `--etcd-endpoints=${url}`,
        `--etcd-cafile=${pki.ca}`,
        `--etcd-certfile=${pki.clientCert}`,
        `--etcd-keyfile=${pki.clientKey}`,
        "--etcd-username=root",
        "--etcd-password=s3cret",
      ]);
      await waitFor(
        "subnet.env",
        async () => (await readLease(lab, lab.host(1))) !== undefined,
        15_000,
      ).catch((err: Error) => {
        throw new Error(`${err.message}\n${weftd.output()}`);
      });
      assert.match(await ctl(["get", "--prefix", SUBNETS, "--keys-only"]), /10\.244\.\d+\.0-24/);
      await etcd.stop();
    });
  });
});
