/**
 * The EC2 stand-in checked with the real AWS CLI (Debian's awscli): the CLI signs its own requests,
 * sends its own parameters and parses the stand-in's XML with the EC2 service model, so these
 * assertions show the stand-in speaks what AWS's client expects, not merely what weft sends.
 */
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { Ec2Standin } from "../cloud/ec2-standin.js";
import { TEST_ACCESS_KEY, TEST_SECRET_KEY, testOptions } from "../cloud/ec2-standin-fixture.js";

// Debian's CLI, not whatever `aws` comes first on PATH.
const AWS = "/usr/bin/aws";
const TABLE = "rtb-0a1b2c3d4e5f60001";
const INSTANCE = "i-00000000000000001";

let standin: Ec2Standin;
let url: string;
let home: string;

/** Runs the CLI asynchronously: the stand-in answers from this process's event loop. */
function aws(
  args: string[],
  secret = TEST_SECRET_KEY,
): Promise<{ status: number; json: unknown; stderr: string }> {
  return new Promise((resolve) => {
    execFile(
      AWS,
      ["ec2", ...args, "--endpoint-url", url, "--output", "json"],
      {
        encoding: "utf8",
        timeout: 60_000,
        env: {
          PATH: "/usr/bin:/bin",
          HOME: home,
          AWS_ACCESS_KEY_ID: TEST_ACCESS_KEY,
          AWS_SECRET_ACCESS_KEY: secret,
          AWS_DEFAULT_REGION: "eu-west-1",
          AWS_EC2_METADATA_DISABLED: "true",
          AWS_MAX_ATTEMPTS: "1",
          AWS_PAGER: "",
        },
      },
      (err, stdout, stderr) => {
        const status = err ? (typeof err.code === "number" ? err.code : -1) : 0;
        resolve({ status, json: stdout.trim() ? JSON.parse(stdout) : undefined, stderr });
      },
    );
  });
}

interface CliRoute {
  DestinationCidrBlock: string;
  InstanceId?: string;
  GatewayId?: string;
  State: string;
  Origin: string;
}
interface CliTable {
  RouteTableId: string;
  VpcId: string;
  Routes: CliRoute[];
  Associations: { Main: boolean; SubnetId?: string }[];
}

const tables = async (args: string[] = []): Promise<CliTable[]> => {
  const r = await aws(["describe-route-tables", ...args]);
  assert.equal(r.status, 0, r.stderr);
  return (r.json as { RouteTables: CliTable[] }).RouteTables;
};

describe("EC2 stand-in with the real AWS CLI", () => {
  before(async () => {
    assert.ok(existsSync(AWS), `${AWS} is missing: install Debian's awscli (scripts/setup.sh does)`);
    home = mkdtempSync(join(tmpdir(), "weft-awscli-"));
    standin = new Ec2Standin(testOptions(["127.0.0.1", "127.0.0.2", "127.0.0.3"], { denied: new Set() }));
    url = await standin.listen();
  });
  after(async () => {
    await standin.close();
    rmSync(home, { recursive: true, force: true });
  });

  it("describe-route-tables: the CLI parses both tables, their routes and associations", async () => {
    const all = await tables();
    assert.deepEqual(all.map((t) => t.RouteTableId).sort(), [
      "rtb-0a1b2c3d4e5f60001",
      "rtb-0f0f0f0f0f0f0f0f0",
    ]);
    const own = all.find((t) => t.RouteTableId === TABLE)!;
    assert.equal(own.VpcId, "vpc-0a1b2c3d4e5f60001");
    assert.deepEqual(
      own.Associations.map((a) => [a.Main, a.SubnetId]),
      [[false, "subnet-0a1b2c3d4e5f60001"]],
    );
    assert.deepEqual(own.Routes[0], {
      DestinationCidrBlock: "172.31.0.0/16",
      GatewayId: "local",
      State: "active",
      Origin: "CreateRouteTable",
    });
  });

  it("filters by association.subnet-id and by vpc-id + association.main", async () => {
    const bySubnet = await tables([
      "--filters",
      "Name=association.subnet-id,Values=subnet-0a1b2c3d4e5f60001",
    ]);
    assert.deepEqual(
      bySubnet.map((t) => t.RouteTableId),
      [TABLE],
    );
    const main = await tables([
      "--filters",
      "Name=vpc-id,Values=vpc-0a1b2c3d4e5f60001",
      "Name=association.main,Values=true",
    ]);
    assert.deepEqual(
      main.map((t) => t.RouteTableId),
      ["rtb-0f0f0f0f0f0f0f0f0"],
    );
    const bad = await aws(["describe-route-tables", "--filters", "Name=no-such-filter,Values=x"]);
    assert.notEqual(bad.status, 0);
    assert.match(bad.stderr, /InvalidParameterValue/);
  });

  it("create-route, then RouteAlreadyExists; replace-route; delete-route, then InvalidRoute.NotFound", async () => {
    const created = await aws([
      "create-route",
      "--route-table-id",
      TABLE,
      "--destination-cidr-block",
      "10.244.7.0/24",
      "--instance-id",
      INSTANCE,
    ]);
    assert.equal(created.status, 0, created.stderr);
    assert.deepEqual(created.json, { Return: true });
    const route = (await tables(["--route-table-ids", TABLE]))[0]!.Routes.find(
      (r) => r.DestinationCidrBlock === "10.244.7.0/24",
    );
    assert.equal(route?.InstanceId, INSTANCE);
    assert.equal(route?.State, "active");
    assert.equal(route?.Origin, "CreateRoute");

    const again = await aws([
      "create-route",
      "--route-table-id",
      TABLE,
      "--destination-cidr-block",
      "10.244.7.0/24",
      "--instance-id",
      INSTANCE,
    ]);
    assert.notEqual(again.status, 0);
    assert.match(again.stderr, /\(RouteAlreadyExists\) when calling the CreateRoute operation/);

    const replaced = await aws([
      "replace-route",
      "--route-table-id",
      TABLE,
      "--destination-cidr-block",
      "10.244.7.0/24",
      "--instance-id",
      "i-00000000000000002",
    ]);
    assert.equal(replaced.status, 0, replaced.stderr);
    const after = (await tables(["--route-table-ids", TABLE]))[0]!.Routes.find(
      (r) => r.DestinationCidrBlock === "10.244.7.0/24",
    );
    assert.equal(after?.InstanceId, "i-00000000000000002");

    const deleted = await aws([
      "delete-route",
      "--route-table-id",
      TABLE,
      "--destination-cidr-block",
      "10.244.7.0/24",
    ]);
    assert.equal(deleted.status, 0, deleted.stderr);
    const gone = await aws([
      "delete-route",
      "--route-table-id",
      TABLE,
      "--destination-cidr-block",
      "10.244.7.0/24",
    ]);
    assert.match(gone.stderr, /\(InvalidRoute\.NotFound\) when calling the DeleteRoute operation/);
  });

  it("refuses a route table that does not exist and a CIDR with host bits", async () => {
    const missing = await aws([
      "create-route",
      "--route-table-id",
      "rtb-0123456789abcdef0",
      "--destination-cidr-block",
      "10.244.8.0/24",
      "--instance-id",
      INSTANCE,
    ]);
    assert.match(missing.stderr, /InvalidRouteTableID\.NotFound/);
    const host = await aws([
      "create-route",
      "--route-table-id",
      TABLE,
      "--destination-cidr-block",
      "10.244.8.1/24",
      "--instance-id",
      INSTANCE,
    ]);
    assert.match(host.stderr, /InvalidParameterValue/);
  });

  it("describe-instances and modify-instance-attribute --no-source-dest-check", async () => {
    const r = await aws(["describe-instances", "--instance-ids", INSTANCE]);
    assert.equal(r.status, 0, r.stderr);
    const inst = (r.json as { Reservations: { Instances: Record<string, unknown>[] }[] }).Reservations[0]!
      .Instances[0]!;
    assert.equal(inst.InstanceId, INSTANCE);
    assert.equal(inst.SubnetId, "subnet-0a1b2c3d4e5f60001");
    assert.equal(inst.PrivateIpAddress, "127.0.0.1");
    assert.deepEqual(inst.Placement, { AvailabilityZone: "eu-west-1b", Tenancy: "default" });
    assert.equal(inst.SourceDestCheck, true);
    const m = await aws(["modify-instance-attribute", "--instance-id", INSTANCE, "--no-source-dest-check"]);
    assert.equal(m.status, 0, m.stderr);
    assert.equal(standin.options.instances[0]!.sourceDestCheck, false);
    const unknown = await aws(["describe-instances", "--instance-ids", "i-0123456789abcdef0"]);
    assert.match(unknown.stderr, /InvalidInstanceID\.NotFound/);
  });

  it("checks the signature: a wrong secret key is SignatureDoesNotMatch", async () => {
    const r = await aws(["describe-route-tables"], "not-the-secret");
    assert.notEqual(r.status, 0);
    assert.match(r.stderr, /SignatureDoesNotMatch/);
  });

  it("a policy without ec2:CreateRoute: UnauthorizedOperation; a full table: RouteLimitExceeded", async () => {
    standin.options.denied!.add("CreateRoute");
    const denied = await aws([
      "create-route",
      "--route-table-id",
      TABLE,
      "--destination-cidr-block",
      "10.244.9.0/24",
      "--instance-id",
      INSTANCE,
    ]);
    assert.match(denied.stderr, /\(UnauthorizedOperation\) when calling the CreateRoute operation/);
    standin.options.denied!.clear();
    const table = standin.table(TABLE)!;
    while (table.routes.length < 50) {
      table.routes.push({
        destination: `10.250.${table.routes.length}.0/24`,
        instanceId: INSTANCE,
        gatewayId: undefined,
        origin: "CreateRoute",
      });
    }
    const full = await aws([
      "create-route",
      "--route-table-id",
      TABLE,
      "--destination-cidr-block",
      "10.244.9.0/24",
      "--instance-id",
      INSTANCE,
    ]);
    assert.match(full.stderr, /\(RouteLimitExceeded\) when calling the CreateRoute operation/);
    table.routes.splice(2);
  });
});
