/**
 * The aws-vpc backend: SigV4 against AWS's published test-suite examples, the XML it reads, its keys,
 * which routes it owns (own subnet; stale ones only as the sweeper), and the backend with the
 * reconciler against the EC2 + IMDS stand-in: discovery, repair, no churn on restart, takeover,
 * sweeping, retries of throttling and one clear error for a missing permission or a full table.
 */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, beforeEach, describe, it } from "node:test";
import { CredentialChain, parseCredentialsFile } from "../../src/backend/aws-vpc/aws-credentials.js";
import { signRequest } from "../../src/backend/aws-vpc/aws-sigv4.js";
import { AwsVpcBackend, STALE_GRACE_MS } from "../../src/backend/aws-vpc/aws-vpc-backend.js";
import { parseAwsVpcConfig } from "../../src/backend/aws-vpc/aws-vpc-config.js";
import { ownershipView, ownsCloudRoute, sweeperSubnet } from "../../src/backend/aws-vpc/aws-vpc-desired.js";
import {
  type CloudRouteEntry,
  cloudRouteShape,
  decodeCloudRoutes,
} from "../../src/backend/aws-vpc/cloud-route-kind.js";
import { Ec2Client, ec2Endpoint } from "../../src/backend/aws-vpc/ec2-client.js";
import { queryBody } from "../../src/backend/aws-vpc/ec2-query.js";
import { parseEc2Error, parseRouteTables } from "../../src/backend/aws-vpc/ec2-xml.js";
import { InstanceMetadata, readIdentity, regionOfZone } from "../../src/backend/aws-vpc/instance-metadata.js";
import type { ExternalInterface } from "../../src/backend/backend.js";
import { configureBackend } from "../../src/backend/registry.js";
import { ConfigError, parseNetworkConfig } from "../../src/config/network-config.js";
import { parseCIDR } from "../../src/ip/ip-network.js";
import type { Lease } from "../../src/lease/lease.js";
import type { RtNetlink } from "../../src/netlink/index.js";
import { createKernelKinds } from "../../src/reconcile/kinds/kernel-kinds.js";
import { Reconciler } from "../../src/reconcile/reconciler.js";
import { UserError } from "../../src/user-error.js";
import { Ec2Standin, type StandinInstance } from "../cloud/ec2-standin.js";
import { TEST_ACCESS_KEY, TEST_SECRET_KEY, testOptions } from "../cloud/ec2-standin-fixture.js";

async function waitUntil(done: () => boolean, timeoutMs: number): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!done()) {
    if (Date.now() > until) throw new Error("timed out");
    await new Promise((r) => setTimeout(r, 50));
  }
}

const SUITE_CREDENTIALS = {
  accessKeyId: "AKIDEXAMPLE",
  secretAccessKey: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
};
const SUITE_DATE = new Date("2015-08-30T12:36:00Z");

describe("SigV4 (AWS's signature v4 test suite)", () => {
  it("get-vanilla", async () => {
    const headers = await signRequest(
      {
        method: "GET",
        protocol: "https:",
        hostname: "example.amazonaws.com",
        path: "/",
        headers: { host: "example.amazonaws.com" },
      },
      SUITE_CREDENTIALS,
      "us-east-1",
      "service",
      SUITE_DATE,
    );
    assert.equal(headers["x-amz-date"], "20150830T123600Z");
    assert.equal(
      headers.authorization,
      "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=host;x-amz-date, Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31",
    );
  });

  it("get-header-key-duplicate", async () => {
    const headers = await signRequest(
      {
        method: "GET",
        protocol: "https:",
        hostname: "example.amazonaws.com",
        path: "/",
        headers: { host: "example.amazonaws.com", "my-header1": "value2,value2,value1" },
      },
      SUITE_CREDENTIALS,
      "us-east-1",
      "service",
      SUITE_DATE,
    );
    assert.equal(
      headers.authorization,
      "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=host;my-header1;x-amz-date, Signature=c9d5ea9f3f72853aea855b47ea873832890dbdd183b4468f858259531a5138ea",
    );
  });

  it("adds the session token of temporary credentials", async () => {
    const headers = await signRequest(
      {
        method: "POST",
        protocol: "https:",
        hostname: "ec2.eu-west-1.amazonaws.com",
        path: "/",
        headers: { host: "ec2.eu-west-1.amazonaws.com" },
        body: "Action=DescribeRouteTables",
      },
      { ...SUITE_CREDENTIALS, sessionToken: "TOKEN" },
      "eu-west-1",
      "ec2",
      SUITE_DATE,
    );
    assert.equal(headers["x-amz-security-token"], "TOKEN");
    assert.match(
      headers.authorization!,
      /Credential=AKIDEXAMPLE\/20150830\/eu-west-1\/ec2\/aws4_request, SignedHeaders=host;x-amz-date;x-amz-security-token,/,
    );
  });
});

describe("EC2 requests and responses", () => {
  it("builds the Query body sorted and RFC 3986-encoded", () => {
    assert.equal(
      queryBody("CreateRoute", {
        RouteTableId: "rtb-1",
        DestinationCidrBlock: "10.244.1.0/24",
        "Filter.1.Value.1": "a b*",
      }),
      "Action=CreateRoute&DestinationCidrBlock=10.244.1.0%2F24&Filter.1.Value.1=a%20b%2A&RouteTableId=rtb-1&Version=2016-11-15",
    );
  });

  it("reads DescribeRouteTables in EC2's namespace, entities decoded", () => {
    const xml = `<?xml version="1.0" encoding="UTF-8"?>
<DescribeRouteTablesResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/">
   <requestId>6f570b0b-9c18-4b07-bdec-73740dcf861a</requestId>
   <routeTableSet>
      <item>
         <routeTableId>rtb-1122334455667788a</routeTableId>
         <vpcId>vpc-1122334455667788a</vpcId>
         <routeSet>
            <item><destinationCidrBlock>10.0.0.0/22</destinationCidrBlock><gatewayId>local</gatewayId><state>active</state><origin>CreateRouteTable</origin></item>
            <item><destinationCidrBlock>10.244.3.0/24</destinationCidrBlock><instanceId>i-0a1</instanceId><networkInterfaceId>eni-1</networkInterfaceId><state>blackhole</state><origin>CreateRoute</origin></item>
         </routeSet>
         <tagSet><item><key>Name</key><value>a &amp; b</value></item></tagSet>
      </item>
   </routeTableSet>
</DescribeRouteTablesResponse>`;
    const [table] = parseRouteTables(xml);
    assert.equal(table?.routeTableId, "rtb-1122334455667788a");
    assert.equal(table?.routes.length, 2);
    assert.deepEqual(table?.routes[1], {
      destinationCidrBlock: "10.244.3.0/24",
      instanceId: "i-0a1",
      networkInterfaceId: "eni-1",
      gatewayId: undefined,
      state: "blackhole",
      origin: "CreateRoute",
    });
  });

  it("reads EC2's error body", () => {
    const xml = `<?xml version="1.0" encoding="UTF-8"?>
<Response><Errors><Error><Code>UnauthorizedOperation</Code><Message>You are not authorized to perform this operation.</Message></Error></Errors><RequestID>ea966190-f9aa-478e-9ede-example</RequestID></Response>`;
    assert.deepEqual(parseEc2Error(xml), {
      code: "UnauthorizedOperation",
      message: "You are not authorized to perform this operation.",
      requestId: "ea966190-f9aa-478e-9ede-example",
    });
    assert.equal(parseEc2Error("<html>bad gateway</html>"), undefined);
    assert.equal(parseEc2Error("not xml <"), undefined);
  });
});

describe("aws-vpc keys and identity", () => {
  it("RouteTableID: absent, one ID, or a list (flannel v0.7's keys)", () => {
    assert.deepEqual(parseAwsVpcConfig({}).routeTableIds, []);
    assert.deepEqual(parseAwsVpcConfig({ RouteTableID: "rtb-0123abcd" }).routeTableIds, ["rtb-0123abcd"]);
    assert.deepEqual(parseAwsVpcConfig({ routetableid: ["rtb-0123abcd", "rtb-0123abce"] }).routeTableIds, [
      "rtb-0123abcd",
      "rtb-0123abce",
    ]);
    for (const bad of [42, ["rtb-0123abcd", 7], "subnet-0123abcd", "rtb-xyz"]) {
      assert.throws(
        () => parseAwsVpcConfig({ RouteTableID: bad }),
        (e: unknown) => e instanceof ConfigError && /Backend\.RouteTableID/.test(e.message),
      );
    }
  });

  it("is a registered backend; a bad key waits as a config error", () => {
    const ok = parseNetworkConfig('{"Network":"10.244.0.0/16","Backend":{"Type":"aws-vpc"}}');
    assert.equal(configureBackend(ok).registration.type, "aws-vpc");
    const bad = parseNetworkConfig(
      '{"Network":"10.244.0.0/16","Backend":{"Type":"aws-vpc","RouteTableID":1}}',
    );
    assert.throws(() => configureBackend(bad), ConfigError);
  });

  it("the EC2 endpoint: AWS_ENDPOINT_URL_EC2, else AWS_ENDPOINT_URL, else the region's", () => {
    assert.equal(ec2Endpoint("eu-west-1", {}), "https://ec2.eu-west-1.amazonaws.com");
    assert.equal(ec2Endpoint("cn-north-1", {}), "https://ec2.cn-north-1.amazonaws.com.cn");
    assert.equal(ec2Endpoint("eu-west-1", { AWS_ENDPOINT_URL: "http://a" }), "http://a");
    assert.equal(
      ec2Endpoint("eu-west-1", { AWS_ENDPOINT_URL: "http://a", AWS_ENDPOINT_URL_EC2: "http://b" }),
      "http://b",
    );
  });

  it("region from the availability zone (also local zones)", () => {
    assert.equal(regionOfZone("eu-west-1b"), "eu-west-1");
    assert.equal(regionOfZone("us-gov-west-1a"), "us-gov-west-1");
    assert.equal(regionOfZone("us-east-1-bos-1a"), "us-east-1");
  });

  it("reads profiles of the shared credentials file", () => {
    const p = parseCredentialsFile(
      "[default]\naws_access_key_id = A\naws_secret_access_key=B\n\n[profile ops]\n# c\nAWS_ACCESS_KEY_ID=C\n",
    );
    assert.deepEqual(p.get("default"), { aws_access_key_id: "A", aws_secret_access_key: "B" });
    assert.equal(p.get("ops")?.aws_access_key_id, "C");
  });
});

function lease(subnet: string): Lease {
  return {
    key: subnet.replace("/", "-"),
    subnet: parseCIDR(subnet),
    ipv6Subnet: undefined,
    attrs: {
      publicIP: "172.31.0.9",
      publicIPv6: undefined,
      backendType: "aws-vpc",
      backendData: undefined,
      backendV6Data: undefined,
    },
    reservation: false,
  };
}

const route = (
  destination: string,
  instanceId: string | undefined,
  extra: Partial<CloudRouteEntry> = {},
): CloudRouteEntry => ({
  table: "rtb-1",
  destination,
  instanceId,
  blackhole: false,
  createdByUser: true,
  ...extra,
});

describe("the cloud-route kind", () => {
  it("key is table + destination; a new target or a blackhole is not the same", () => {
    const a = route("10.244.1.0/24", "i-1");
    assert.equal(cloudRouteShape.key(a), "rtb-1 10.244.1.0/24");
    assert.equal(cloudRouteShape.key(route("10.244.1.0/24", "i-2")), cloudRouteShape.key(a));
    assert.equal(cloudRouteShape.same(a, route("10.244.1.0/24", "i-1")), true);
    assert.equal(cloudRouteShape.same(a, route("10.244.1.0/24", "i-2")), false);
    assert.equal(cloudRouteShape.same(a, route("10.244.1.0/24", "i-1", { blackhole: true })), false);
    assert.equal(cloudRouteShape.describe(a), "route 10.244.1.0/24 -> i-1 in rtb-1");
  });

  it("decodes a table's routes; AWS's local route is not a user's", () => {
    const entries = decodeCloudRoutes([
      {
        routeTableId: "rtb-1",
        vpcId: "vpc-1",
        routes: [
          {
            destinationCidrBlock: "172.31.0.0/16",
            gatewayId: "local",
            instanceId: undefined,
            networkInterfaceId: undefined,
            state: "active",
            origin: "CreateRouteTable",
          },
          {
            destinationCidrBlock: "10.244.3.0/24",
            gatewayId: undefined,
            instanceId: "i-3",
            networkInterfaceId: "eni-3",
            state: "blackhole",
            origin: "CreateRoute",
          },
          {
            destinationCidrBlock: undefined,
            gatewayId: "pl-1",
            instanceId: undefined,
            networkInterfaceId: undefined,
            state: "active",
            origin: "CreateRoute",
          },
        ],
      },
    ]);
    assert.deepEqual(entries, [
      {
        table: "rtb-1",
        destination: "172.31.0.0/16",
        instanceId: undefined,
        blackhole: false,
        createdByUser: false,
      },
      {
        table: "rtb-1",
        destination: "10.244.3.0/24",
        instanceId: "i-3",
        blackhole: true,
        createdByUser: true,
      },
    ]);
  });
});

describe("aws-vpc ownership", () => {
  const network = parseCIDR("10.244.0.0/16")!;
  it("the sweeper is the holder of the lowest live subnet", () => {
    const s = sweeperSubnet([lease("10.244.9.0/24"), lease("10.244.2.0/24"), lease("10.244.30.0/24")]);
    assert.equal(s?.ip, parseCIDR("10.244.2.0/24")!.ip);
  });

  it("every agent owns its own subnet's route (to take it over), and nothing else unless it sweeps", () => {
    const view = ownershipView(network, lease("10.244.5.0/24"), [lease("10.244.1.0/24")]);
    assert.equal(view?.sweeper, false);
    assert.equal(ownsCloudRoute(view, route("10.244.5.0/24", "i-other")), true);
    assert.equal(ownsCloudRoute(view, route("10.244.7.0/24", "i-gone")), false);
  });

  it("the sweeper owns stale instance routes in the Network, never live ones, gateways or AWS's own", () => {
    const view = ownershipView(network, lease("10.244.1.0/24"), [lease("10.244.5.0/24")]);
    assert.equal(view?.sweeper, true);
    assert.equal(ownsCloudRoute(view, route("10.244.7.0/24", "i-gone")), true);
    assert.equal(ownsCloudRoute(view, route("10.244.8.0/24", undefined, { blackhole: true })), true);
    assert.equal(ownsCloudRoute(view, route("10.244.5.0/24", "i-peer")), false);
    assert.equal(ownsCloudRoute(view, route("10.244.9.0/24", undefined)), false, "a gateway route");
    assert.equal(ownsCloudRoute(view, route("10.245.7.0/24", "i-x")), false, "outside the Network");
    assert.equal(ownsCloudRoute(view, route("10.244.0.0/16", "i-x")), false, "the Network itself");
    assert.equal(ownsCloudRoute(view, route("10.244.7.0/24", "i-x", { createdByUser: false })), false);
  });
});

describe("the credentials chain", () => {
  const noImds = new InstanceMetadata("http://127.0.0.1:1");
  it("the environment first, with its session token", async () => {
    const c = await new CredentialChain(
      {
        AWS_ACCESS_KEY_ID: "AK",
        AWS_SECRET_ACCESS_KEY: "SK",
        AWS_SESSION_TOKEN: "T",
        AWS_SHARED_CREDENTIALS_FILE: "/nonexistent",
      },
      noImds,
    ).get();
    assert.deepEqual(c, { accessKeyId: "AK", secretAccessKey: "SK", sessionToken: "T" });
  });

  it("then the shared credentials file's AWS_PROFILE; a missing profile is a clear error", async () => {
    const dir = mkdtempSync(join(tmpdir(), "weft-aws-cred-"));
    const file = join(dir, "credentials");
    writeFileSync(
      file,
      "[default]\naws_access_key_id=D\naws_secret_access_key=DS\n[ops]\naws_access_key_id=O\naws_secret_access_key=OS\n",
    );
    try {
      const env = { AWS_SHARED_CREDENTIALS_FILE: file };
      assert.equal((await new CredentialChain(env, noImds).get()).accessKeyId, "D");
      assert.equal(
        (await new CredentialChain({ ...env, AWS_PROFILE: "ops" }, noImds).get()).accessKeyId,
        "O",
      );
      await assert.rejects(
        new CredentialChain({ ...env, AWS_PROFILE: "nope" }, noImds).get(),
        (e: unknown) => e instanceof UserError && /AWS_PROFILE "nope" is not in/.test(e.message),
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("the instance metadata service", () => {
  let standin: Ec2Standin;
  let url: string;
  after(() => standin.close());

  it("IMDSv2 with a session token, where tokens are required", async () => {
    standin = new Ec2Standin(testOptions(["127.0.0.1"], { imdsTokensRequired: true }));
    url = await standin.listen();
    const id = await readIdentity(new InstanceMetadata(url), {});
    assert.deepEqual(id, {
      instanceId: "i-00000000000000001",
      availabilityZone: "eu-west-1b",
      region: "eu-west-1",
      subnetId: "subnet-0a1b2c3d4e5f60001",
      vpcId: "vpc-0a1b2c3d4e5f60001",
    });
    assert.equal(
      (await readIdentity(new InstanceMetadata(url), { AWS_REGION: "eu-central-1" })).region,
      "eu-central-1",
    );
    await standin.close();
  });

  it("falls back to IMDSv1 when the token call is refused", async () => {
    standin = new Ec2Standin(testOptions(["127.0.0.1"], { imdsV1Only: true }));
    url = await standin.listen();
    assert.equal((await readIdentity(new InstanceMetadata(url), {})).instanceId, "i-00000000000000001");
  });
});

describe("EC2 client errors", () => {
  let standin: Ec2Standin;
  let client: Ec2Client;
  before(async () => {
    standin = new Ec2Standin(testOptions(["127.0.0.1"], { denied: new Set() }));
    const url = await standin.listen();
    client = new Ec2Client({
      region: "eu-west-1",
      endpoint: url,
      credentials: async () => ({ accessKeyId: TEST_ACCESS_KEY, secretAccessKey: TEST_SECRET_KEY }),
      backoff: { minMs: 5, maxMs: 20 },
    });
  });
  after(() => standin.close());

  it("retries throttling (RequestLimitExceeded) and succeeds", async () => {
    standin.options.throttleNext = 2;
    const before = standin.calls.length;
    const tables = await client.describeRouteTables([]);
    assert.equal(tables.length, 2);
    assert.equal(standin.calls.length - before, 3);
  });

  it("a missing permission is one UserError naming the call and the IAM permission", async () => {
    standin.options.denied!.add("CreateRoute");
    await assert.rejects(
      client.createRoute("rtb-0a1b2c3d4e5f60001", "10.244.1.0/24", "i-00000000000000001"),
      (e: unknown) => {
        return (
          e instanceof UserError &&
          /EC2 CreateRoute was refused \(UnauthorizedOperation\)/.test(e.message) &&
          /ec2:CreateRoute/.test(e.message)
        );
      },
    );
    standin.options.denied!.clear();
  });

  it("a full route table is one UserError naming RouteLimitExceeded", async () => {
    const t = standin.table("rtb-0a1b2c3d4e5f60001")!;
    while (t.routes.length < 50)
      t.routes.push({
        destination: `10.250.${t.routes.length}.0/24`,
        instanceId: undefined,
        gatewayId: "igw-1",
        origin: "CreateRoute",
      });
    await assert.rejects(
      client.createRoute(t.routeTableId, "10.244.1.0/24", "i-00000000000000001"),
      (e: unknown) => {
        return e instanceof UserError && /route table is full \(RouteLimitExceeded/.test(e.message);
      },
    );
    t.routes.splice(2);
  });

  it("a refused connection is retried, then reported", async () => {
    // A port nobody listens on any more.
    const closed = new Ec2Standin(testOptions([]));
    const endpoint = await closed.listen();
    await closed.close();
    const dead = new Ec2Client({
      region: "eu-west-1",
      endpoint,
      credentials: async () => ({ accessKeyId: TEST_ACCESS_KEY, secretAccessKey: TEST_SECRET_KEY }),
      backoff: { minMs: 5, maxMs: 10 },
      attempts: 3,
    });
    await assert.rejects(dead.describeRouteTables([]), /ECONNREFUSED/);
  });
});

describe("aws-vpc backend with the reconciler, against the stand-in", () => {
  const network = "10.244.0.0/16";
  const config = parseNetworkConfig(`{"Network":"${network}","Backend":{"Type":"aws-vpc"}}`);
  const TABLE = "rtb-0a1b2c3d4e5f60001";
  let standin: Ec2Standin;
  let url: string;
  let caller: StandinInstance;
  const logs: string[] = [];
  let clock = 0;

  beforeEach(async () => {
    await standin?.close();
    standin = new Ec2Standin(
      testOptions(["172.31.0.1", "172.31.0.2", "172.31.0.3"], {
        instanceByAddress: () => caller,
        denied: new Set(),
      }),
    );
    url = await standin.listen();
    logs.length = 0;
  });
  after(() => standin.close());

  async function agent(n: number | StandinInstance, backendKeys: Record<string, unknown> = {}) {
    caller = typeof n === "number" ? standin.options.instances[n]! : n;
    const ext = {
      name: "eth0",
      index: 2,
      mtu: 9001,
      ipv4: caller.privateIp,
      ipv6: undefined,
      publicIP: caller.privateIp,
      publicIPv6: undefined,
      connected: [],
    } as ExternalInterface;
    const backend = new AwsVpcBackend(
      {
        config,
        extIface: ext,
        netlink: {} as RtNetlink,
        kernel: createKernelKinds({} as RtNetlink),
        log: (m) => logs.push(m),
        warn: (m) => logs.push(m),
      },
      parseAwsVpcConfig(backendKeys),
      // No keys in the environment or a file: the instance role through IMDS.
      {
        AWS_EC2_METADATA_SERVICE_ENDPOINT: url,
        AWS_ENDPOINT_URL_EC2: url,
        HOME: "/nonexistent",
        AWS_SHARED_CREDENTIALS_FILE: "/nonexistent",
      },
      () => clock,
    );
    const setUp = await backend.setUp();
    const reconciler = new Reconciler({
      kinds: backend.kinds,
      scope: { networks: [parseCIDR(network)!], ownSubnets: [], routeDevices: [], ownedDevices: [] },
      log: (m) => logs.push(m),
      retry: { minMs: 10, maxMs: 50 },
    });
    return { backend, reconciler, setUp, instance: caller };
  }

  const routesOf = () =>
    standin.table(TABLE)!.routes.map((r) => `${r.destination}>${r.instanceId ?? r.gatewayId}`);
  const mutations = () =>
    standin.calls.filter((c) => /^(Create|Replace|Delete)Route$/.test(c.action)).map((c) => c.action);

  it("finds the subnet's table, turns off source/dest check, creates its route and repairs it", async () => {
    const a = await agent(0);
    assert.equal(a.instance.sourceDestCheck, false);
    assert.equal(a.setUp.mtu, 9001);
    assert.equal(a.setUp.attrs.backendType, "aws-vpc");
    const own = lease("10.244.1.0/24");
    await a.reconciler.setDesired(a.backend.desiredState(own, []).state);
    assert.ok(routesOf().includes("10.244.1.0/24>i-00000000000000001"), routesOf().join(" "));
    // Deleted in the console: the next full run puts it back.
    standin.table(TABLE)!.routes.splice(
      standin.table(TABLE)!.routes.findIndex((r) => r.destination === "10.244.1.0/24"),
      1,
    );
    await a.reconciler.trigger();
    assert.ok(routesOf().includes("10.244.1.0/24>i-00000000000000001"));
    a.reconciler.close();
  });

  it("leaves a correct route alone on restart, and takes over one that points elsewhere", async () => {
    standin.table(TABLE)!.routes.push({
      destination: "10.244.1.0/24",
      instanceId: "i-00000000000000001",
      gatewayId: undefined,
      origin: "CreateRoute",
    });
    standin.table(TABLE)!.routes.push({
      destination: "10.244.2.0/24",
      instanceId: "i-00000000000000003",
      gatewayId: undefined,
      origin: "CreateRoute",
    });
    const a = await agent(0);
    await a.reconciler.setDesired(
      a.backend.desiredState(lease("10.244.1.0/24"), [lease("10.244.2.0/24")]).state,
    );
    assert.deepEqual(mutations(), [], "no delete and re-create of a working route");
    const b = await agent(1);
    await b.reconciler.setDesired(
      b.backend.desiredState(lease("10.244.2.0/24"), [lease("10.244.1.0/24")]).state,
    );
    assert.deepEqual(mutations(), ["CreateRoute", "ReplaceRoute"]);
    assert.ok(routesOf().includes("10.244.2.0/24>i-00000000000000002"));
    a.reconciler.close();
    b.reconciler.close();
  });

  it("only the sweeper removes the route of a gone lease", async () => {
    standin.table(TABLE)!.routes.push({
      destination: "10.244.9.0/24",
      instanceId: "i-00000000000000003",
      gatewayId: undefined,
      origin: "CreateRoute",
    });
    const b = await agent(1); // 10.244.5.0/24: not the lowest
    await b.reconciler.setDesired(
      b.backend.desiredState(lease("10.244.5.0/24"), [lease("10.244.1.0/24")]).state,
    );
    await b.reconciler.trigger();
    assert.ok(routesOf().includes("10.244.9.0/24>i-00000000000000003"), "a non-sweeper leaves it");
    const a = await agent(0); // 10.244.1.0/24: the sweeper
    const peers = [lease("10.244.5.0/24")];
    await a.reconciler.setDesired(a.backend.desiredState(lease("10.244.1.0/24"), peers).state);
    // Not at first sight: a peer's route may precede its lease in our watch.
    assert.ok(routesOf().includes("10.244.9.0/24>i-00000000000000003"), "removed before the grace period");
    clock += STALE_GRACE_MS;
    await a.reconciler.trigger();
    assert.ok(!routesOf().some((r) => r.startsWith("10.244.9.0/24")), routesOf().join(" "));
    assert.ok(routesOf().includes("10.244.5.0/24>i-00000000000000002"), "a live peer's route stays");
    // A lease removed later: the hook removes its route without waiting for a full run.
    standin.table(TABLE)!.routes.push({
      destination: "10.244.7.0/24",
      instanceId: "i-00000000000000003",
      gatewayId: undefined,
      origin: "CreateRoute",
    });
    const gone = lease("10.244.7.0/24");
    a.backend.desiredState(lease("10.244.1.0/24"), peers);
    a.backend.peersChanged({
      own: lease("10.244.1.0/24"),
      added: [],
      removed: [gone],
      peers: new Map(peers.map((p) => [p.key, p])),
    });
    await a.backend.close();
    assert.ok(!routesOf().some((r) => r.startsWith("10.244.7.0/24")), routesOf().join(" "));
    a.reconciler.close();
    b.reconciler.close();
  });

  it("without an own table for the subnet, the VPC's main table", async () => {
    standin.table(TABLE)!.subnetIds.length = 0;
    const a = await agent(0);
    await a.reconciler.setDesired(a.backend.desiredState(lease("10.244.1.0/24"), []).state);
    const main = standin.table("rtb-0f0f0f0f0f0f0f0f0")!;
    assert.ok(
      main.routes.some((r) => r.destination === "10.244.1.0/24" && r.instanceId === "i-00000000000000001"),
    );
    a.reconciler.close();
  });

  it("RouteTableID names the tables; one that does not exist is one clear error", async () => {
    const a = await agent(0, { RouteTableID: ["rtb-0f0f0f0f0f0f0f0f0", TABLE] });
    await a.reconciler.setDesired(a.backend.desiredState(lease("10.244.1.0/24"), []).state);
    for (const t of ["rtb-0f0f0f0f0f0f0f0f0", TABLE]) {
      assert.ok(
        standin.table(t)!.routes.some((r) => r.destination === "10.244.1.0/24"),
        t,
      );
    }
    a.reconciler.close();
    await assert.rejects(
      agent(0, { RouteTableID: "rtb-0123456789abcdef0" }),
      (e: unknown) =>
        e instanceof UserError &&
        /rtb-0123456789abcdef0/.test(e.message) &&
        /Backend\.RouteTableID/.test(e.hint ?? ""),
    );
  });

  it("an instance this EC2 endpoint does not know is one clear error", async () => {
    const stranger = { ...standin.options.instances[0]!, instanceId: "i-0badbadbadbadbad0" };
    await assert.rejects(
      agent(stranger),
      (e: unknown) =>
        e instanceof UserError && /i-0badbadbadbadbad0/.test(e.message) && /AWS_REGION/.test(e.hint ?? ""),
    );
  });

  it("a missing permission at start waits with one message naming it, and goes on once granted", async () => {
    standin.options.denied?.add("ModifyInstanceAttribute");
    const starting = agent(0);
    await waitUntil(
      () => standin.calls.filter((c) => c.action === "ModifyInstanceAttribute").length >= 2,
      10_000,
    );
    const lines = logs.filter((l) => /ec2:ModifyInstanceAttribute/.test(l));
    assert.equal(lines.length, 1, logs.join("\n"));
    assert.match(lines[0]!, /EC2 ModifyInstanceAttribute was refused \(UnauthorizedOperation\)/);
    standin.options.denied?.clear();
    const a = await starting;
    assert.equal(a.instance.sourceDestCheck, false);
  });
});
