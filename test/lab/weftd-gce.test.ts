// Backend gce on three lab hosts. The fabric namespace plays Google's network: the GCE stand-in
// (test/cloud/gce-standin-main.ts) runs there as the metadata server and the Compute API, and installs
// every route it holds in the fabric as "destRange via <next-hop instance's address>". The hosts'
// default route goes to the fabric and weftd programs nothing in the hosts, so one host's subnet address
// reaches another's only when weft put the right route in the "cloud". Checked: full-mesh ping, a
// route deleted as in the console comes back within the reconcile period, a restart leaves correct
// routes alone, and a lease that is removed has its route removed (by the one sweeper).
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { fileURLToPath } from "node:url";
import { Lab, type LabHost, type LabProcess } from "./lab.js";
import { assertFullMeshPing, type HostLease, PREFIX, waitFor, waitForLeases } from "./weft-cluster.js";

const CONFIG = '{"Network":"10.244.0.0/16","Backend":{"Type":"gce"}}';
const PORT = 8181;
const ADMIN = "admin-console-token";
const routeName = (subnet: string) => `flannel-${subnet.replace(/[./]/g, "-")}`;

describe("weftd, Backend gce, three hosts, the fabric as the cloud router", { timeout: 300_000 }, () => {
  let lab: Lab;
  let standin: LabProcess;
  let weftds: LabProcess[];
  let leases: HostLease[];
  let api: string;

  const fabricRoutes = async () =>
    (
      JSON.parse(await lab.run(lab.fabric, ["ip", "-4", "-json", "route", "show"])) as {
        dst: string;
        gateway?: string;
      }[]
    )
      .filter((r) => r.gateway)
      .map((r) => `${r.dst} via ${r.gateway}`);
  /** As the operator would, with the console's credential, from the fabric. */
  const curl = (method: string, path: string) =>
    lab.run(lab.fabric, [
      "curl",
      "-sS",
      "-X",
      method,
      "-H",
      `Authorization: Bearer ${ADMIN}`,
      `${api}${path}`,
    ]);
  const startWeftd = (host: LabHost) =>
    lab.startWeftd(host, [], {
      GCE_METADATA_HOST: `${lab.fabricIp}:${PORT}`,
      CLOUDSDK_API_ENDPOINT_OVERRIDES_COMPUTE: `http://${lab.fabricIp}:${PORT}/compute/v1/`,
    });
  const mutations = () =>
    standin
      .output()
      .split("\n")
      .filter((l) => l.startsWith("api: "));

  before(async () => {
    lab = await Lab.create({ hosts: 3, tag: "gce" });
    await lab.run(lab.fabric, ["sysctl", "-q", "-w", "net.ipv4.ip_forward=1"]);
    const options = {
      project: "weft-lab",
      instances: lab.hosts.map((h) => ({ name: `node${h.index}`, zone: "us-central1-a", ip: h.ip })),
      listLagMs: 1500,
      operationStepMs: 150,
      adminToken: ADMIN,
    };
    const main = fileURLToPath(new URL("../cloud/gce-standin-main.js", import.meta.url));
    standin = await lab.spawn(lab.fabric, [
      process.execPath,
      main,
      JSON.stringify(options),
      lab.fabricIp,
      String(PORT),
    ]);
    await standin.waitForOutput(/gce stand-in listening/, 10_000);
    api = `http://${lab.fabricIp}:${PORT}/compute/v1/projects/weft-lab/`;
    await lab.startEtcd();
    await lab.etcdctl(["put", `${PREFIX}/config`, CONFIG]);
    weftds = await Promise.all(lab.hosts.map(startWeftd));
    leases = await waitForLeases(lab, weftds, 30_000);
    for (const [i, host] of lab.hosts.entries()) await lab.addPodAddress(host, `${leases[i]!.base}.1/24`);
  });

  after(async () => {
    await lab?.destroy();
  });

  test("each host's subnet is routed to its instance in the cloud, and the hosts reach each other", async () => {
    const wanted = leases.map((l, i) => `${l.subnet} via ${lab.hosts[i]!.ip}`).sort();
    await waitFor(
      "the three routes in the fabric",
      async () => {
        const have = await fabricRoutes();
        return wanted.every((w) => have.includes(w));
      },
      30_000,
    ).catch((err: Error) => {
      throw new Error(`${err.message}\nstand-in:\n${standin.output()}\nweftd 1:\n${weftds[0]!.output()}`);
    });
    // routes.get (consistent; routes.list lags behind by design of the stand-in, as GCE's may).
    for (const [i, l] of leases.entries()) {
      const text = await curl("GET", `global/routes/${routeName(l.subnet)}`);
      const route = JSON.parse(text) as {
        priority: number;
        destRange: string;
        nextHopInstance: string;
      };
      assert.equal(route.destRange, l.subnet, text);
      assert.equal(route.priority, 1000);
      assert.match(route.nextHopInstance, new RegExp(`/zones/us-central1-a/instances/node${i + 1}$`));
    }
    await assertFullMeshPing(
      lab,
      leases.map((l) => `${l.base}.1`),
    );
    // Never more than one insert per route, despite the 1.5 s listing lag.
    for (const l of leases)
      assert.equal(mutations().filter((m) => m === `api: insert ${routeName(l.subnet)}`).length, 1);
  });

  test("a route deleted as in the console comes back within the reconcile period", async () => {
    const name = routeName(leases[1]!.subnet);
    const op = JSON.parse(await curl("DELETE", `global/routes/${name}`)) as { status: string };
    assert.equal(op.status, "PENDING");
    await waitFor(
      "the route to leave the fabric",
      async () => !(await fabricRoutes()).some((r) => r.startsWith(`${leases[1]!.subnet} `)),
      10_000,
    );
    const down = await lab.ping(lab.host(1), `${leases[1]!.base}.1`, {
      count: 1,
      source: `${leases[0]!.base}.1`,
    });
    assert.equal(down.reachable, false, "without the cloud route the subnet is unreachable");
    await waitFor(
      "the route to be restored",
      async () => (await fabricRoutes()).includes(`${leases[1]!.subnet} via ${lab.host(2).ip}`),
      45_000,
    );
    const up = await lab.ping(lab.host(1), `${leases[1]!.base}.1`, {
      count: 2,
      source: `${leases[0]!.base}.1`,
    });
    assert.ok(up.reachable, up.output);
  });

  test("a restart leaves a correct route alone (no delete, no insert)", async () => {
    await weftds[0]!.stop();
    const before = mutations().length;
    weftds[0] = await startWeftd(lab.host(1));
    await weftds[0].waitForOutput(/datapath programmed/, 30_000);
    await new Promise((r) => setTimeout(r, 2000));
    assert.deepEqual(mutations().slice(before), [], "no route changed on restart");
  });

  test("a lease that is gone has its route removed by the sweeper", async () => {
    const gone = leases[2]!;
    await weftds[2]!.stop();
    await lab.etcdctl(["del", `${PREFIX}/subnets/${gone.subnet.replace("/", "-")}`]);
    await waitFor(
      "the gone lease's route to be removed",
      async () => !(await fabricRoutes()).some((r) => r.startsWith(`${gone.subnet} `)),
      90_000,
    ).catch((err: Error) => {
      throw new Error(`${err.message}\nstand-in:\n${standin.output()}`);
    });
    assert.equal(
      mutations().filter((m) => m === `api: delete ${routeName(gone.subnet)}`).length,
      1,
      `one agent deleted it:\n${mutations().join("\n")}`,
    );
    // The live hosts' routes stay.
    const have = await fabricRoutes();
    for (const [i, l] of leases.slice(0, 2).entries())
      assert.ok(have.includes(`${l.subnet} via ${lab.hosts[i]!.ip}`));
  });
});

describe("weftd, Backend gce, the operator's mistakes", { timeout: 120_000 }, () => {
  let lab: Lab;
  after(async () => {
    await lab?.destroy();
  });

  test("canIpForward off ends weftd with one line; a missing permission is logged once and retried", async () => {
    lab = await Lab.create({ hosts: 2, tag: "gceerr" });
    const main = fileURLToPath(new URL("../cloud/gce-standin-main.js", import.meta.url));
    const options = {
      project: "weft-lab",
      instances: [
        { name: "node1", zone: "z1", ip: lab.host(1).ip, canIpForward: false },
        { name: "node2", zone: "z1", ip: lab.host(2).ip, denied: ["compute.routes.create"] },
      ],
    };
    const standin = await lab.spawn(lab.fabric, [
      process.execPath,
      main,
      JSON.stringify(options),
      lab.fabricIp,
      String(PORT),
    ]);
    await standin.waitForOutput(/gce stand-in listening/, 10_000);
    await lab.startEtcd();
    await lab.etcdctl(["put", `${PREFIX}/config`, CONFIG]);
    const env = {
      GCE_METADATA_HOST: `${lab.fabricIp}:${PORT}`,
      CLOUDSDK_API_ENDPOINT_OVERRIDES_COMPUTE: `http://${lab.fabricIp}:${PORT}/compute/v1/`,
    };
    const noForward = await lab.startWeftd(lab.host(1), [], env);
    const status = await noForward.exited;
    assert.equal(status.code, 1, noForward.output());
    assert.match(noForward.output(), /instance node1 \(zone z1\) has canIpForward off.*--can-ip-forward/);
    assert.doesNotMatch(noForward.output(), /^\s+at /m, "no stack trace");

    const denied = await lab.startWeftd(lab.host(2), [], env);
    await denied.waitForOutput(/compute\.routes\.create/, 30_000);
    await new Promise((r) => setTimeout(r, 4000)); // a few retries
    assert.ok(denied.running, "a missing permission is retried, not fatal");
    const lines = denied
      .output()
      .split("\n")
      .filter((l) => /compute\.routes\.create/.test(l));
    assert.equal(lines.length, 1, `logged once:\n${lines.join("\n")}`);
    assert.doesNotMatch(denied.output(), /^\s+at /m, "no stack trace");
  });
});
