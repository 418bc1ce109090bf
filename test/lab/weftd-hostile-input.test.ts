/**
 * weftd given operator mistakes (issue 7, items 4, 6, 7): a --subnet-file it cannot write (under /proc,
 * where Node's recursive mkdir used to spin forever; a directory), a /0 Network, a vxlan MTU the kernel
 * refuses. Each gives one clear line, quickly; an unwritable subnet file does not stop the datapath.
 */
import assert from "node:assert/strict";
import { mkdir, readdir } from "node:fs/promises";
import { join } from "node:path";
import { describe, it } from "node:test";
import { type Lab, type LabHost, withLab } from "./lab.js";
import { PREFIX, readLease, routeDestinations, VXLAN, waitFor } from "./weft-cluster.js";

const noStackTrace = (output: string) =>
  assert.doesNotMatch(output, /^\s+at .+:\d+:\d+\)?$/m, `stack trace in:\n${output}`);

/** The subnet leased to `host`, from etcd (a host that cannot write subnet.env still holds a lease). */
async function leasedSubnet(lab: Lab, host: LabHost): Promise<string | undefined> {
  for (const { key, value } of await lab.etcdGetPrefix(`${PREFIX}/subnets/`)) {
    if (value.includes(`"PublicIP":"172.31.0.${host.index}"`)) {
      return key.slice(key.lastIndexOf("/") + 1).replace("-", "/");
    }
  }
  return undefined;
}

describe("weftd with operator mistakes", { timeout: 180_000 }, () => {
  it("a --subnet-file it cannot write gives one error at once, and the peers are still programmed", async () => {
    await withLab({ hosts: 3, tag: "subfile" }, async (lab) => {
      await lab.startEtcd();
      await lab.etcdctl(["put", `${PREFIX}/config`, VXLAN]);
      const [h1, h2, h3] = [lab.host(1), lab.host(2), lab.host(3)];
      const directory = join(lab.tempDir, "subnet-env-is-a-dir");
      await mkdir(directory);
      const onProc = await lab.startWeftd(h1, ["--subnet-file=/proc/weft-lab/sub.env"]);
      const onDir = await lab.startWeftd(h2, [`--subnet-file=${directory}`]);
      const good = await lab.startWeftd(h3);

      await onProc.waitForOutput(
        /E\d{4} .* cannot write the subnet file \/proc\/weft-lab\/sub\.env: ENOENT: .*; pods on this host cannot start until it is written/,
        15_000,
      );
      await onDir.waitForOutput(
        new RegExp(`cannot write the subnet file ${directory}: it is a directory \\(point --subnet-file`),
        15_000,
      );
      await waitFor("subnet.env of host 3", async () => (await readLease(lab, h3)) !== undefined, 15_000);

      // Every host routes to the other two: the failed write held nothing up.
      const subnets = new Map<LabHost, string>();
      for (const host of [h1, h2, h3]) {
        await waitFor(
          `lease of ${host.name}`,
          async () => (await leasedSubnet(lab, host)) !== undefined,
          15_000,
        );
        subnets.set(host, (await leasedSubnet(lab, host))!);
      }
      for (const [host, weftd] of [
        [h1, onProc],
        [h2, onDir],
        [h3, good],
      ] as const) {
        const others = [...subnets].filter(([h]) => h !== host).map(([, s]) => s);
        await waitFor(
          `routes to ${others.join(", ")} on ${host.name}`,
          async () => {
            const have = new Set(await routeDestinations(lab, host));
            return others.every((s) => have.has(s));
          },
          15_000,
        ).catch((err: Error) => {
          throw new Error(`${err.message}\n${weftd.output()}`);
        });
        assert.ok(weftd.running, `weftd on ${host.name} keeps running`);
      }
      assert.deepEqual(
        await readdir(lab.tempDir).then((names) => names.filter((n) => n.startsWith("."))),
        [],
      );
      assert.deepEqual(await readdir(directory), []);
      for (const weftd of [onProc, onDir, good]) noStackTrace(weftd.output());
      assert.equal(onProc.output().match(/cannot write the subnet file/g)?.length, 1, "said once");
    });
  });

  it("a /0 Network is refused with one clear line while weftd waits for a good config", async () => {
    await withLab({ hosts: 1, tag: "netzero" }, async (lab) => {
      await lab.startEtcd();
      await lab.etcdctl(["put", `${PREFIX}/config`, '{"Network":"0.0.0.0/0","Backend":{"Type":"vxlan"}}']);
      const weftd = await lab.startWeftd(lab.host(1));
      await weftd.waitForOutput(
        /invalid network config: Network 0\.0\.0\.0\/0 is every address, not a pod network/,
        10_000,
      );
      await lab.etcdctl(["put", `${PREFIX}/config`, VXLAN]);
      await waitFor("subnet.env", async () => (await readLease(lab, lab.host(1))) !== undefined, 15_000);
      noStackTrace(weftd.output());
    });
  });

  it("a vxlan MTU larger than eth0 allows exits with one line naming Backend.MTU", async () => {
    await withLab({ hosts: 1, tag: "bigmtu" }, async (lab) => {
      await lab.startEtcd();
      await lab.etcdctl([
        "put",
        `${PREFIX}/config`,
        '{"Network":"10.244.0.0/16","Backend":{"Type":"vxlan","MTU":65535}}',
      ]);
      const weftd = await lab.startWeftd(lab.host(1));
      const status = await weftd.exited;
      assert.equal(status.code, 1, weftd.output());
      assert.match(
        weftd.output(),
        /invalid network config: Backend\.MTU 65535 of the vxlan backend does not fit eth0, whose MTU is 1500/,
      );
      assert.doesNotMatch(weftd.output(), /EINVAL/);
      noStackTrace(weftd.output());
    });
  });
});
