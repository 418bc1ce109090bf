/**
 * Our own lease key rewritten by someone else, with real etcd: taken over by another host (another
 * PublicIP), or rewritten with our PublicIP but without our etcd lease.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { Lab } from "./lab.js";
import { withLab } from "./lab.js";
import { PREFIX, readLease, routeDestinations, startCluster, VXLAN, waitFor } from "./weft-cluster.js";

const SUBNETS = `${PREFIX}/subnets/`;
const OTHER_IP = "172.31.0.9";
const OTHER_MAC = "9a:00:00:00:00:09";
const OTHER_VALUE = `{"PublicIP":"${OTHER_IP}","PublicIPv6":null,"BackendType":"vxlan","BackendData":{"VNI":1,"VtepMAC":"${OTHER_MAC}"}}`;

/** A subnet.env subnet ("10.244.7.0/24") as its etcd key ("10.244.7.0-24"). */
const keyOf = (subnet: string) => subnet.replace("/", "-");

/** The key's value and etcd lease ID ("0" for none), as etcd has them. */
async function stored(lab: Lab, key: string): Promise<{ value: string; lease: string } | undefined> {
  const out = await lab.etcdctl(["get", "-w", "json", "--", key]);
  // Lease IDs exceed 2^53: read them as text, not as JSON numbers.
  const lease = /"lease":(\d+)/.exec(out)?.[1] ?? "0";
  const kv = (JSON.parse(out) as { kvs?: { value?: string }[] }).kvs?.[0];
  if (!kv) return undefined;
  return { value: Buffer.from(kv.value ?? "", "base64").toString("utf8"), lease };
}

describe("our own lease rewritten by someone else", { timeout: 180_000 }, () => {
  it("leaves a key taken over by another host to it and takes a new lease", async () => {
    await withLab({ hosts: 2, tag: "takeover" }, async (lab) => {
      const { weftds, leases } = await startCluster(lab, VXLAN);
      const [h1, h2] = [lab.host(1), lab.host(2)];
      const key = SUBNETS + keyOf(leases[0]!.subnet);
      assert.notEqual((await stored(lab, key))?.lease, "0", "our key carries our etcd lease");

      // Another host writes our key, as an operator's etcdctl would: its PublicIP, no TTL.
      await lab.etcdctl(["put", key, OTHER_VALUE]);
      const line = await weftds[0]!.waitForOutput(/^E.*weftd\] our lease .*$/m, 10_000);
      assert.equal(
        line[0].replace(/^E\S+ \S+ \d+ weftd\] /, ""),
        `our lease ${key} was taken over by another host (PublicIP ${OTHER_IP}); leaving it to that host and taking a new lease`,
      );
      const status = await Promise.race([
        weftds[0]!.exited,
        new Promise<undefined>((resolve) => setTimeout(resolve, 15_000)),
      ]);
      assert.equal(status?.code, 1, `weftd exits to restart pods on the new subnet:\n${weftds[0]!.output()}`);
      const moved = /another host took its subnet; we got (\S+) instead/.exec(weftds[0]!.output());
      assert.ok(moved, weftds[0]!.output());

      // Nothing of ours went to that key: the other host's value, without a TTL, as it wrote it.
      assert.deepEqual(await stored(lab, key), { value: OTHER_VALUE, lease: "0" });
      const newKey = SUBNETS + moved[1]!;
      assert.notEqual(newKey, key);
      assert.match((await stored(lab, newKey))?.value ?? "", /"PublicIP":"172\.31\.0\.1"/);

      // Host 2 routes to both: the other host at the old subnet, host 1 at its new one.
      const newSubnet = moved[1]!.replace("-", "/");
      await waitFor(
        `${h2.name} to route to ${leases[0]!.subnet} and ${newSubnet}`,
        async () => {
          const routes = await routeDestinations(lab, h2);
          return routes.includes(leases[0]!.subnet) && routes.includes(newSubnet);
        },
        10_000,
      );
      const fdb = await lab.run(h2, ["bridge", "fdb", "show", "dev", "flannel.1"]);
      assert.match(fdb, new RegExp(`${OTHER_MAC} dst ${OTHER_IP.replaceAll(".", "\\.")}`));
      assert.ok(weftds[1]!.running);

      // Started again, host 1 finds its new lease by its address.
      const again = await lab.startWeftd(h1);
      await again.waitForOutput(
        new RegExp(`found lease ${moved[1]!.replaceAll(".", "\\.")} for our address`),
        15_000,
      );
      await waitFor(
        `subnet.env of ${h1.name} with ${newSubnet}`,
        async () => (await readLease(lab, h1))?.subnet === newSubnet,
        10_000,
      );
      assert.deepEqual(await stored(lab, key), { value: OTHER_VALUE, lease: "0" });
    });
  });

  it("keeps our key rewritten with our PublicIP: as a reservation without a TTL, under our lease otherwise", async () => {
    await withLab({ hosts: 2, tag: "rewrite" }, async (lab) => {
      const { weftds, leases } = await startCluster(lab, VXLAN);
      const key = SUBNETS + keyOf(leases[0]!.subnet);
      const ours = (await stored(lab, key))!;

      // Under another etcd lease (one that would end soon): put back under one of ours.
      const granted = await lab.etcdctl(["lease", "grant", "600"]);
      const foreign = /lease ([0-9a-f]+) granted/.exec(granted)?.[1];
      assert.ok(foreign, granted);
      await lab.etcdctl(["put", `--lease=${foreign}`, key, ours.value]);
      const foreignDecimal = BigInt(`0x${foreign}`).toString();
      await weftds[0]!.waitForOutput(/was rewritten under an etcd lease that is not ours/, 10_000);
      await waitFor(
        "our key under our etcd lease again",
        async () => {
          const now = await stored(lab, key);
          return now !== undefined && now.lease !== foreignDecimal && now.lease !== "0";
        },
        10_000,
      );

      // Without a TTL: an operator's reservation for this host; kept as it is, weftd goes on.
      await lab.etcdctl(["put", key, ours.value]);
      await weftds[0]!.waitForOutput(/rewritten without a TTL; keeping it as a reservation/, 10_000);
      assert.deepEqual(await stored(lab, key), { value: ours.value, lease: "0" });
      assert.doesNotMatch(weftds[0]!.output(), /^E/m, "no error for our own PublicIP");
      for (const w of weftds) assert.ok(w.running, w.output());
      assert.ok((await routeDestinations(lab, lab.host(2))).includes(leases[0]!.subnet));
    });
  });
});
