/**
 * aws-vpc on 3 hosts: the fabric namespace plays the VPC. The EC2 + IMDS stand-in runs there and
 * installs each route of the subnet's route table into the fabric's kernel (dst via the instance), and
 * the hosts' default route is the fabric, so pods on different hosts reach each other only if weft
 * programmed the cloud. Checked with the real AWS CLI from the fabric: a route deleted as in the
 * console comes back within the reconcile period, a restart leaves correct routes alone, a lease
 * removed has its route removed (by one agent).
 */
import assert from "node:assert/strict";
import { dirname, join } from "node:path";
import { after, before, describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { TEST_ACCESS_KEY, TEST_SECRET_KEY } from "../cloud/ec2-standin-fixture.js";
import { Lab, type LabProcess } from "./lab.js";
import {
  addPods,
  assertFullMeshPing,
  type HostLease,
  PREFIX,
  waitFor,
  waitForLeases,
} from "./weft-cluster.js";

const ipNumber = (base: string) => base.split(".").reduce((n, o) => n * 256 + Number(o), 0);
const CONFIG = '{"Network":"10.244.0.0/16","Backend":{"Type":"aws-vpc"}}';
const TABLE = "rtb-0a1b2c3d4e5f60001";
const PORT = 8773;
/** weftd's full reconcile period is 30 s; a little slack for a loaded machine. */
const REPAIR_MS = 50_000;

describe("weftd with aws-vpc on 3 hosts, the fabric as the VPC router", { timeout: 300_000 }, () => {
  let lab: Lab;
  let standin: LabProcess;
  let weftds: LabProcess[];
  let leases: HostLease[];
  let pods: string[];
  let env: Record<string, string>;

  const aws = async (args: string[]): Promise<unknown> => {
    const out = await lab.run(
      lab.fabric,
      [
        "/usr/bin/aws",
        "ec2",
        ...args,
        "--endpoint-url",
        `http://${lab.fabricIp}:${PORT}`,
        "--output",
        "json",
      ],
      {
        env: {
          HOME: lab.tempDir,
          AWS_ACCESS_KEY_ID: TEST_ACCESS_KEY,
          AWS_SECRET_ACCESS_KEY: TEST_SECRET_KEY,
          AWS_DEFAULT_REGION: "eu-west-1",
          AWS_EC2_METADATA_DISABLED: "true",
          AWS_PAGER: "",
        },
        timeoutMs: 60_000,
      },
    );
    return out.trim() ? JSON.parse(out) : undefined;
  };
  const cloudRoutes = async (): Promise<Map<string, string>> => {
    const r = (await aws(["describe-route-tables", "--route-table-ids", TABLE])) as {
      RouteTables: { Routes: { DestinationCidrBlock: string; InstanceId?: string }[] }[];
    };
    return new Map(
      r.RouteTables[0]!.Routes.filter((x) => x.InstanceId).map((x) => [
        x.DestinationCidrBlock,
        x.InstanceId!,
      ]),
    );
  };
  const fabricRoutes = async (): Promise<Map<string, string>> => {
    const out = JSON.parse(
      await lab.run(lab.fabric, ["ip", "-4", "-json", "route", "show", "proto", "static"]),
    ) as { dst: string; gateway: string }[];
    return new Map(out.map((r) => [r.dst, r.gateway]));
  };
  const instanceOf = (i: number) => `i-0${String(i + 1).padStart(16, "0")}`;
  const reach = async (from: number, to: number) =>
    (await lab.ping(lab.hosts[from]!, pods[to]!, { count: 1, source: pods[from], timeoutMs: 1000 }))
      .reachable;
  const describes = () =>
    standin
      .output()
      .split("\n")
      .filter((l) => l.startsWith("ec2 DescribeRouteTables ")).length;
  const mutations = (subnet: string) =>
    standin
      .output()
      .split("\n")
      .filter((l) => /^ec2 (Create|Replace|Delete)Route /.test(l) && l.includes(`"${subnet}"`)).length;

  before(async () => {
    lab = await Lab.create({ hosts: 3, tag: "aws" });
    // The fabric routes between the hosts' pod subnets like the VPC router; no redirects, so every
    // packet takes the cloud's routes.
    await lab.run(lab.fabric, [
      "sysctl",
      "-q",
      "-w",
      "net.ipv4.ip_forward=1",
      "net.ipv4.conf.all.send_redirects=0",
      "net.ipv4.conf.br0.send_redirects=0",
    ]);
    standin = await lab.spawn(lab.fabric, [
      process.execPath,
      join(dirname(fileURLToPath(import.meta.url)), "..", "cloud", "ec2-standin-main.js"),
      `--listen=${lab.fabricIp}:${PORT}`,
      `--instances=${lab.hosts.map((h) => h.ip).join(",")}`,
      "--log-requests",
    ]);
    await standin.waitForOutput(/"url"/, 20_000);
    await lab.startEtcd();
    await lab.etcdctl(["put", `${PREFIX}/config`, CONFIG]);
    const endpoint = `http://${lab.fabricIp}:${PORT}`;
    // No keys: each weftd takes its instance role's credentials from the metadata service.
    env = { AWS_EC2_METADATA_SERVICE_ENDPOINT: endpoint, AWS_ENDPOINT_URL_EC2: endpoint };
    weftds = await Promise.all(lab.hosts.map((h) => lab.startWeftd(h, [], env)));
    leases = await waitForLeases(lab, weftds, 30_000);
    pods = await addPods(lab, leases);
  });
  after(async () => lab?.destroy());

  it("puts each host's subnet route (to its instance) in the subnet's table; the fabric carries pod traffic", async () => {
    await waitFor(
      "the three routes in the route table",
      async () => (await cloudRoutes()).size === 3,
      30_000,
    ).catch((err: Error) => {
      throw new Error(
        `${err.message}\n${weftds.map((w) => w.output()).join("\n---\n")}\nstand-in:\n${standin.output()}`,
      );
    });
    const routes = await cloudRoutes();
    for (const [i, l] of leases.entries())
      assert.equal(routes.get(l.subnet), instanceOf(i), `route of ${l.subnet}`);
    await waitFor("the fabric's routes", async () => (await fabricRoutes()).size === 3, 10_000);
    const fabric = await fabricRoutes();
    for (const [i, l] of leases.entries()) assert.equal(fabric.get(l.subnet), lab.hosts[i]!.ip);
    await assertFullMeshPing(lab, pods);
    const instances = (await aws(["describe-instances"])) as {
      Reservations: { Instances: { SourceDestCheck: boolean }[] }[];
    };
    assert.deepEqual(
      instances.Reservations.map((r) => r.Instances[0]!.SourceDestCheck),
      [false, false, false],
    );
    for (const w of weftds)
      assert.match(
        w.output(),
        /aws-vpc: instance i-0\d+ in eu-west-1, .*route table\(s\) rtb-0a1b2c3d4e5f60001/,
      );
  });

  it("a route deleted as in the console comes back within the reconcile period", async () => {
    await aws(["delete-route", "--route-table-id", TABLE, "--destination-cidr-block", leases[1]!.subnet]);
    await waitFor("host 1 losing host 2's pod", async () => !(await reach(0, 1)), 10_000);
    await waitFor(
      "the route restored",
      async () => (await cloudRoutes()).get(leases[1]!.subnet) === instanceOf(1),
      REPAIR_MS,
    );
    await waitFor("host 1 reaching host 2's pod again", () => reach(0, 1), 10_000);
  });

  it("a restart leaves a correct route alone (no delete and re-create)", async () => {
    const before = mutations(leases[0]!.subnet);
    await weftds[0]!.stop();
    const reads = describes();
    weftds[0] = await lab.startWeftd(lab.hosts[0]!, [], env);
    await weftds[0].waitForOutput(/aws-vpc: instance/, 30_000);
    // Its first full run reads the table (other hosts' 30 s runs may read it too: wait for a few reads).
    await waitFor("the restarted weftd's first run", async () => describes() > reads + 1, 40_000);
    await new Promise((r) => setTimeout(r, 2000));
    assert.equal(mutations(leases[0]!.subnet), before, "calls that changed the restarted host's route");
    assert.ok(await reach(1, 0));
  });

  it("a lease removed (host gone) has its route removed by one agent", async () => {
    const gone = leases[2]!;
    await weftds[2]!.stop();
    await lab.etcdctl(["del", `${PREFIX}/subnets/${gone.subnet.replace("/", "-")}`]);
    await waitFor(
      "the gone lease's route removed",
      async () => !(await cloudRoutes()).has(gone.subnet),
      40_000,
    );
    await waitFor("the fabric's route removed", async () => !(await fabricRoutes()).has(gone.subnet), 10_000);
    // Removed by the holder of the lowest live subnet alone, not by every agent.
    const lowest = leases.slice(0, 2).sort((a, b) => ipNumber(a.base) - ipNumber(b.base))[0]!;
    const sweeperHost = lab.hosts[leases.indexOf(lowest)]!.ip;
    const deleters = standin
      .output()
      .split("\n")
      .filter((l) => l.startsWith("ec2 DeleteRoute ") && l.includes(`"${gone.subnet}"`))
      .map((l) => l.split(" ")[3]);
    assert.ok(deleters.length >= 1);
    assert.deepEqual([...new Set(deleters)], [sweeperHost], "hosts that called DeleteRoute");
    assert.equal((await cloudRoutes()).size, 2);
    assert.ok(await reach(0, 1));
  });
});
