// The gce backend: route names, request bodies and response parsing against shapes quoted from Google's
// Compute Engine v1 documentation, the sweeper election, and the route kind + reconciler against the
// stand-in (test/cloud/gce-standin.ts) on the loopback: eventual consistency, 409, 401, quota, 403.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import {
  ComputeClient,
  explainApiError,
  GceApiError,
  gceEndpoints,
  MetadataClient,
  operationError,
  parseApiError,
  TokenSource,
} from "../../src/backend/gce/gce-api.js";
import { discoverIdentity, gceRegistration } from "../../src/backend/gce/gce-backend.js";
import {
  decodeRoute,
  encodeRoute,
  type GceRouteEntry,
  gceDesiredRoutes,
  gceRouteShape,
  isSweeper,
  ownsRoute,
  routeName,
  SWEEP_GRACE_MS,
} from "../../src/backend/gce/gce-route.js";
import { type GceRouteRole, gceRouteKind } from "../../src/backend/gce/gce-route-kind.js";
import { parseNetworkConfig } from "../../src/config/network-config.js";
import { parseCIDR } from "../../src/ip/ip-network.js";
import type { Lease } from "../../src/lease/lease.js";
import { Reconciler } from "../../src/reconcile/reconciler.js";
import { UserError } from "../../src/user-error.js";
import { GceStandin } from "../cloud/gce-standin.js";

async function waitUntil(check: () => boolean, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`not true within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

function lease(subnet: string): Lease {
  return {
    key: subnet.replace("/", "-"),
    subnet: parseCIDR(subnet),
    ipv6Subnet: undefined,
    attrs: {
      publicIP: "172.31.0.1",
      publicIPv6: undefined,
      backendType: undefined,
      backendData: undefined,
      backendV6Data: undefined,
    },
    reservation: false,
  };
}

describe("gce: pure parts", () => {
  test("route names are flanneld's: flannel-<subnet with . and / as ->", () => {
    assert.equal(routeName(parseCIDR("10.244.3.0/24")!), "flannel-10-244-3-0-24");
    assert.equal(routeName(parseCIDR("10.1.128.0/17")!), "flannel-10-1-128-0-17");
  });

  test("a Route resource as routes.get documents it decodes; others' routes are not ours", () => {
    // Route resource fields, https://cloud.google.com/compute/docs/reference/rest/v1/routes#resource:-route
    const resource = {
      kind: "compute#route",
      id: "6288218573633870000",
      creationTimestamp: "2017-02-01T10:20:30.123-08:00",
      name: "flannel-10-244-3-0-24",
      network: "https://www.googleapis.com/compute/v1/projects/p1/global/networks/default",
      destRange: "10.244.3.0/24",
      priority: 1000,
      nextHopInstance:
        "https://www.googleapis.com/compute/v1/projects/p1/zones/us-central1-a/instances/node3",
      selfLink: "https://www.googleapis.com/compute/v1/projects/p1/global/routes/flannel-10-244-3-0-24",
    };
    assert.deepEqual(decodeRoute(resource), {
      name: "flannel-10-244-3-0-24",
      destRange: "10.244.3.0/24",
      nextHopInstance: resource.nextHopInstance,
      created: "2017-02-01T10:20:30.123-08:00",
    });
    assert.equal(decodeRoute({ ...resource, name: "default-route-abc" }), undefined);
    assert.equal(decodeRoute({ name: "flannel-x" }), undefined);
  });

  test("instance URLs of either host compare equal; a different instance does not", () => {
    const a: GceRouteEntry = {
      name: "flannel-a",
      destRange: "10.244.3.0/24",
      nextHopInstance: "https://www.googleapis.com/compute/v1/projects/p/zones/z/instances/n1",
    };
    const b = {
      ...a,
      nextHopInstance: "https://compute.googleapis.com/compute/v1/projects/p/zones/z/instances/n1",
    };
    assert.ok(gceRouteShape.same(a, b));
    assert.ok(!gceRouteShape.same(a, { ...a, nextHopInstance: a.nextHopInstance!.replace("n1", "n2") }));
    // A live peer's route (no next hop wanted) matches whatever it points at.
    assert.ok(gceRouteShape.same({ ...a, nextHopInstance: undefined }, a));
  });

  test("the routes.insert body has the fields flanneld set (priority 1000)", () => {
    const body = encodeRoute(
      {
        name: "flannel-10-244-3-0-24",
        destRange: "10.244.3.0/24",
        nextHopInstance: "https://x/projects/p/zones/z/instances/i",
      },
      "https://x/projects/p/global/networks/default",
    );
    assert.deepEqual(
      { ...body, description: undefined },
      {
        name: "flannel-10-244-3-0-24",
        network: "https://x/projects/p/global/networks/default",
        destRange: "10.244.3.0/24",
        priority: 1000,
        nextHopInstance: "https://x/projects/p/zones/z/instances/i",
        description: undefined,
      },
    );
  });

  test("Google's error bodies parse to status and reason; the quota and permission errors say what to do", () => {
    // The error format of https://cloud.google.com/compute/docs/api/how-tos/api-requests-responses
    const quota = parseApiError(
      403,
      JSON.stringify({
        error: {
          code: 403,
          message: "Quota 'ROUTES' exceeded.  Limit: 100.0 globally.",
          errors: [
            {
              domain: "usageLimits",
              reason: "quotaExceeded",
              message: "Quota 'ROUTES' exceeded.  Limit: 100.0 globally.",
            },
          ],
        },
      }),
    );
    assert.equal(quota.status, 403);
    assert.equal(quota.reason, "quotaExceeded");
    const quotaText = explainApiError(quota, "insert", "p1");
    assert.ok(quotaText instanceof UserError);
    assert.match(quotaText.message, /route quota.*100 routes per project/);
    const exists = parseApiError(
      409,
      '{"error":{"code":409,"message":"The resource \'projects/p1/global/routes/flannel-x\' already exists","errors":[{"domain":"global","reason":"alreadyExists","message":"..."}]}}',
    );
    assert.equal(exists.reason, "alreadyExists");
    const denied = explainApiError(
      parseApiError(
        403,
        '{"error":{"code":403,"message":"Required \'compute.routes.create\' permission for \'projects/p1/global/routes/flannel-x\'","errors":[{"domain":"global","reason":"forbidden","message":"..."}]}}',
      ),
      "insert",
      "p1",
    ) as UserError;
    assert.match(`${denied.message} ${denied.hint}`, /compute\.routes\.create/);
    // Not JSON (a proxy's page): still one error with the status.
    assert.equal(parseApiError(502, "<html>bad gateway</html>").status, 502);
    assert.ok(parseApiError(502, "x").transient);
    assert.ok(
      parseApiError(
        429,
        '{"error":{"code":429,"message":"Rate Limit Exceeded","errors":[{"reason":"rateLimitExceeded"}]}}',
      ).transient,
    );
    assert.ok(!quota.transient);
  });

  test("a DONE operation's error (Operation.error.errors[]) becomes an API error", () => {
    // Operation resource, https://cloud.google.com/compute/docs/reference/rest/v1/globalOperations
    const err = operationError({
      name: "operation-1",
      status: "DONE",
      httpErrorStatusCode: 403,
      error: {
        errors: [{ code: "QUOTA_EXCEEDED", message: "Quota 'ROUTES' exceeded.  Limit: 100.0 globally." }],
      },
    });
    assert.equal(err?.reason, "quotaExceeded");
    assert.equal(err?.status, 403);
    assert.equal(operationError({ name: "operation-2", status: "DONE" }), undefined);
  });

  test("endpoints honour GCE_METADATA_HOST and CLOUDSDK_API_ENDPOINT_OVERRIDES_COMPUTE", () => {
    assert.deepEqual(gceEndpoints({}), {
      metadataBase: "http://metadata.google.internal/computeMetadata/v1/",
      computeBase: "https://compute.googleapis.com/compute/v1/",
    });
    assert.deepEqual(
      gceEndpoints({
        GCE_METADATA_HOST: "10.0.0.5:8080",
        CLOUDSDK_API_ENDPOINT_OVERRIDES_COMPUTE: "http://10.0.0.5:8080/compute/v1",
      }),
      {
        metadataBase: "http://10.0.0.5:8080/computeMetadata/v1/",
        computeBase: "http://10.0.0.5:8080/compute/v1/",
      },
    );
    assert.throws(
      () => gceEndpoints({ CLOUDSDK_API_ENDPOINT_OVERRIDES_COMPUTE: "compute.local" }),
      /must be a URL/,
    );
  });

  test("the holder of the lowest live subnet is the one sweeper", () => {
    const all = ["10.244.7.0/24", "10.244.2.0/24", "10.244.12.0/24"].map(lease);
    const sweepers = all.filter((own) =>
      isSweeper(
        own,
        all.filter((l) => l !== own),
      ),
    );
    assert.deepEqual(
      sweepers.map((l) => l.key),
      ["10.244.2.0-24"],
    );
    const desired = gceDesiredRoutes(
      all[1]!,
      [all[0]!, all[2]!],
      "https://x/projects/p/zones/z/instances/me",
    );
    assert.ok(desired.sweeper);
    assert.deepEqual(
      desired.routes.map((r) => [r.name, r.nextHopInstance !== undefined]),
      [
        ["flannel-10-244-2-0-24", true],
        ["flannel-10-244-7-0-24", false],
        ["flannel-10-244-12-0-24", false],
      ],
    );
    const other = gceDesiredRoutes(all[0]!, [all[1]!, all[2]!], "https://x/i");
    assert.equal(other.sweeper, false);
    assert.equal(other.routes.length, 1);
  });

  test("ownership: own route always; the sweeper only old flannel routes inside the Network", () => {
    const nets = [parseCIDR("10.244.0.0/16")!];
    const now = Date.parse("2026-01-01T00:10:00Z");
    const old = {
      name: "flannel-10-244-9-0-24",
      destRange: "10.244.9.0/24",
      nextHopInstance: "x",
      created: "2026-01-01T00:00:00Z",
    };
    assert.ok(ownsRoute(old, "flannel-10-244-9-0-24", false, nets, now));
    assert.ok(!ownsRoute(old, "flannel-10-244-2-0-24", false, nets, now));
    assert.ok(ownsRoute(old, "flannel-10-244-2-0-24", true, nets, now));
    const young = { ...old, created: new Date(now - SWEEP_GRACE_MS / 2).toISOString() };
    assert.ok(
      !ownsRoute(young, "flannel-10-244-2-0-24", true, nets, now),
      "a new peer's route gets its grace",
    );
    const outside = { ...old, name: "flannel-10-9-0-0-24", destRange: "10.9.0.0/24" };
    assert.ok(!ownsRoute(outside, "flannel-10-244-2-0-24", true, nets, now), "another cluster's Network");
  });

  test("the registry knows gce; IPv6-only configs are refused with the reason", () => {
    const v4 = parseNetworkConfig('{"Network":"10.244.0.0/16","Backend":{"Type":"gce"}}');
    assert.equal(typeof gceRegistration.configure(v4), "function");
    const v6 = parseNetworkConfig(
      '{"EnableIPv4":false,"EnableIPv6":true,"IPv6Network":"fd00::/48","Backend":{"Type":"gce"}}',
    );
    assert.throws(() => gceRegistration.configure(v6), /IPv4 only/);
  });
});

describe("gce: against the stand-in", () => {
  let standin: GceStandin;
  const instances = [
    { name: "node1", zone: "us-central1-a", ip: "127.0.0.1" },
    { name: "node2", zone: "us-central1-a", ip: "127.0.0.2" },
    { name: "noforward", zone: "us-central1-b", ip: "127.0.0.3", canIpForward: false },
  ];

  before(async () => {
    standin = new GceStandin({
      project: "p1",
      instances,
      listLagMs: 800,
      operationStepMs: 30,
      adminToken: "admin",
    });
    await standin.listen();
  });
  after(() => standin.close());

  const clients = () => {
    const metadata = new MetadataClient(`http://${standin.hostPort}/computeMetadata/v1/`);
    const tokens = new TokenSource(metadata);
    return { metadata, tokens, compute: new ComputeClient(standin.computeBase, "p1", tokens) };
  };

  test("the metadata server answers only with Metadata-Flavor: Google", async () => {
    const res = await fetch(`http://${standin.hostPort}/computeMetadata/v1/project/project-id`);
    assert.equal(res.status, 403);
    assert.equal(await clients().metadata.get("project/project-id"), "p1");
  });

  test("identity: project, zone, instance and network from the metadata server", async () => {
    const { metadata, tokens } = clients();
    const { identity } = await discoverIdentity(
      metadata,
      (p) => new ComputeClient(standin.computeBase, p, tokens),
    );
    assert.deepEqual(identity, {
      project: "p1",
      zone: "us-central1-a",
      instance: "node1",
      instanceUrl: `${standin.computeBase}projects/p1/zones/us-central1-a/instances/node1`,
      networkUrl: `${standin.computeBase}projects/p1/global/networks/default`,
    });
  });

  test("an instance without canIpForward gets one clear error", async () => {
    const { tokens } = clients();
    const metadata = {
      get: async (path: string) =>
        path === "instance/name"
          ? "noforward"
          : path === "instance/zone"
            ? "projects/1/zones/us-central1-b"
            : clients().metadata.get(path),
    } as MetadataClient;
    await assert.rejects(
      discoverIdentity(metadata, (p) => new ComputeClient(standin.computeBase, p, tokens)),
      (err: Error) =>
        err instanceof UserError &&
        /canIpForward off/.test(err.message) &&
        /--can-ip-forward/.test(err.hint ?? ""),
    );
  });

  test("without a token the API answers 401; a revoked token is refreshed once", async () => {
    const res = await fetch(`${standin.computeBase}projects/p1/global/routes`);
    assert.equal(res.status, 401);
    const body = (await res.json()) as { error: { code: number; errors: { reason: string }[] } };
    assert.equal(body.error.code, 401);
    const { compute } = clients();
    await compute.listRoutes(standin.networkUrl());
    standin.revokeTokens();
    const before = standin.requests.filter((r) => r.endsWith("/token")).length;
    await compute.listRoutes(standin.networkUrl());
    assert.equal(standin.requests.filter((r) => r.endsWith("/token")).length, before + 1);
  });

  test("routes.list pages through nextPageToken and keeps to the network", async () => {
    const { compute } = clients();
    for (let i = 0; i < 7; i++)
      standin.addRouteNow({
        name: `flannel-10-99-${i}-0-24`,
        destRange: `10.99.${i}.0/24`,
        nextHopInstance: standin.instanceUrl(instances[1]!),
      });
    standin.pageSize = 3;
    const listed = await compute.listRoutes(standin.networkUrl());
    standin.pageSize = 500;
    assert.equal(listed.filter((r) => r.name.startsWith("flannel-10-99-")).length, 7);
    for (let i = 0; i < 7; i++) standin.deleteRouteNow(`flannel-10-99-${i}-0-24`);
  });

  function reconcilerFor(role: GceRouteRole) {
    const { compute } = clients();
    const kind = gceRouteKind(
      () => compute,
      () => standin.networkUrl(),
      () => role,
      () => {},
    );
    const reconciler = new Reconciler({
      kinds: [kind],
      scope: { networks: [parseCIDR("10.244.0.0/16")!], ownSubnets: [], routeDevices: [], ownedDevices: [] },
      log: () => {},
      retry: { minMs: 20, maxMs: 100, jitter: 0 },
    });
    return { reconciler, kind };
  }
  const me = () => standin.instanceUrl(instances[0]!);
  const ownRoute = (): GceRouteEntry => ({
    name: "flannel-10-244-1-0-24",
    destRange: "10.244.1.0/24",
    nextHopInstance: me(),
  });
  const inserts = () =>
    standin.requests.filter((r) => r === "POST /compute/v1/projects/p1/global/routes").length;
  const deletes = () => standin.requests.filter((r) => r.startsWith("DELETE ")).length;

  test("own route: created once although not listed yet, repaired after a console delete, left alone on restart", async () => {
    const role = { ownName: "flannel-10-244-1-0-24", sweeper: false };
    const { reconciler } = reconcilerFor(role);
    const before = inserts();
    await reconciler.setDesired({ "gce-route": [ownRoute()] });
    assert.equal(standin.routes.get("flannel-10-244-1-0-24")?.nextHopInstance, me());
    // Not listed for 800 ms: full runs now must not insert it again.
    await reconciler.trigger();
    await reconciler.trigger();
    assert.equal(inserts(), before + 1, "one insert despite the listing lag");
    await new Promise((r) => setTimeout(r, 900));
    // As in the console: deleted; the next full run (the reconciler's timer) puts it back.
    standin.deleteRouteNow("flannel-10-244-1-0-24");
    await reconciler.trigger();
    assert.ok(standin.routes.has("flannel-10-244-1-0-24"));
    assert.equal(inserts(), before + 2);
    reconciler.close();
    await new Promise((r) => setTimeout(r, 900));
    // A restart: a fresh kind finds the route correct and neither deletes nor inserts it.
    const again = reconcilerFor(role).reconciler;
    const [i0, d0] = [inserts(), deletes()];
    await again.setDesired({ "gce-route": [ownRoute()] });
    assert.deepEqual([inserts(), deletes()], [i0, d0]);
    assert.ok(again.stats.lastRunClean);
    again.close();
  });

  test("a route of our name pointing at another instance is taken over (delete + insert)", async () => {
    standin.deleteRouteNow("flannel-10-244-1-0-24");
    standin.addRouteNow({
      name: "flannel-10-244-1-0-24",
      destRange: "10.244.1.0/24",
      nextHopInstance: standin.instanceUrl(instances[1]!),
    });
    const { reconciler } = reconcilerFor({ ownName: "flannel-10-244-1-0-24", sweeper: false });
    await reconciler.setDesired({ "gce-route": [ownRoute()] });
    assert.equal(standin.routes.get("flannel-10-244-1-0-24")?.nextHopInstance, me());
    reconciler.close();
  });

  test("an insert answered 409 for a route that is ours is success", async () => {
    const { kind } = reconcilerFor({ ownName: "flannel-10-244-1-0-24", sweeper: false });
    const d0 = deletes();
    await kind.put(ownRoute());
    assert.equal(deletes(), d0, "nothing deleted");
  });

  test("the sweeper removes old routes of gone leases; others leave them; live peers' routes stay", async () => {
    const peer = standin.instanceUrl(instances[1]!);
    standin.addRouteNow({
      name: "flannel-10-244-5-0-24",
      destRange: "10.244.5.0/24",
      nextHopInstance: peer,
      ageMs: 120_000,
    });
    standin.addRouteNow({
      name: "flannel-10-244-6-0-24",
      destRange: "10.244.6.0/24",
      nextHopInstance: peer,
      ageMs: 120_000,
    });
    standin.addRouteNow({
      name: "flannel-10-244-8-0-24",
      destRange: "10.244.8.0/24",
      nextHopInstance: peer,
      ageMs: 1000,
    });
    const live = { name: "flannel-10-244-6-0-24", destRange: "10.244.6.0/24", nextHopInstance: undefined };
    const notSweeper = reconcilerFor({ ownName: "flannel-10-244-1-0-24", sweeper: false }).reconciler;
    await notSweeper.setDesired({ "gce-route": [ownRoute()] });
    assert.ok(standin.routes.has("flannel-10-244-5-0-24"), "a non-sweeper removes nothing of others");
    notSweeper.close();
    const sweeper = reconcilerFor({ ownName: "flannel-10-244-1-0-24", sweeper: true }).reconciler;
    await sweeper.setDesired({ "gce-route": [ownRoute(), live] });
    assert.ok(!standin.routes.has("flannel-10-244-5-0-24"), "the gone lease's route is removed");
    assert.ok(standin.routes.has("flannel-10-244-6-0-24"), "a live peer's route stays");
    assert.ok(standin.routes.has("flannel-10-244-8-0-24"), "a young route gets its grace");
    sweeper.close();
    standin.deleteRouteNow("flannel-10-244-6-0-24");
    standin.deleteRouteNow("flannel-10-244-8-0-24");
  });

  test("quota exceeded and a missing permission fail the put with one clear error", async () => {
    const full = new GceStandin({
      project: "p1",
      instances: [{ ...instances[0]!, denied: [] }],
      routeQuota: 1,
    });
    await full.listen();
    try {
      full.addRouteNow({
        name: "flannel-10-244-9-0-24",
        destRange: "10.244.9.0/24",
        nextHopInstance: full.instanceUrl(instances[0]!),
      });
      const metadata = new MetadataClient(`http://${full.hostPort}/computeMetadata/v1/`);
      const compute = new ComputeClient(full.computeBase, "p1", new TokenSource(metadata));
      const kind = gceRouteKind(
        () => compute,
        () => full.networkUrl(),
        () => ({ ownName: undefined, sweeper: false }),
        () => {},
      );
      await assert.rejects(
        kind.put({ ...ownRoute(), nextHopInstance: full.instanceUrl(instances[0]!) }),
        (err: Error) => err instanceof UserError && /no route quota left.*Limit: 1\.0/.test(err.message),
      );
    } finally {
      await full.close();
    }
    const denied = new GceStandin({
      project: "p1",
      instances: [{ ...instances[0]!, denied: ["compute.routes.create"] }],
    });
    await denied.listen();
    try {
      const metadata = new MetadataClient(`http://${denied.hostPort}/computeMetadata/v1/`);
      const compute = new ComputeClient(denied.computeBase, "p1", new TokenSource(metadata));
      const kind = gceRouteKind(
        () => compute,
        () => denied.networkUrl(),
        () => ({ ownName: undefined, sweeper: false }),
        () => {},
      );
      await assert.rejects(
        kind.put({ ...ownRoute(), nextHopInstance: denied.instanceUrl(instances[0]!) }),
        (err: Error) =>
          err instanceof UserError &&
          /compute\.routes\.create/.test(`${err.message} ${(err as UserError).hint}`),
      );
    } finally {
      await denied.close();
    }
  });

  test("429 and 503 fail a run, which the reconciler retries with backoff until the route is there", async () => {
    standin.deleteRouteNow("flannel-10-244-1-0-24");
    const { reconciler } = reconcilerFor({ ownName: "flannel-10-244-1-0-24", sweeper: false });
    standin.failNext(429, 1);
    await reconciler.setDesired({ "gce-route": [ownRoute()] });
    standin.failNext(503, 2);
    await reconciler.trigger();
    assert.equal(reconciler.stats.lastRunClean, false, "the run with the 503 failed");
    await waitUntil(() => standin.routes.has("flannel-10-244-1-0-24"), 5000);
    assert.ok(reconciler.stats.failedRuns >= 1);
    reconciler.close();
  });

  test("an instance the Compute API does not know is one clear error", async () => {
    const { tokens } = clients();
    const metadata = {
      get: async (path: string) => (path === "instance/name" ? "ghost" : clients().metadata.get(path)),
    } as MetadataClient;
    await assert.rejects(
      discoverIdentity(metadata, (p) => new ComputeClient(standin.computeBase, p, tokens)),
      (err: Error) =>
        err instanceof UserError &&
        /instance ghost in zone us-central1-a is not in project p1/.test(err.message),
    );
  });

  test("an operation is PENDING, then RUNNING, then DONE", async () => {
    const { compute } = clients();
    const op = await compute.insertRoute(
      encodeRoute(
        { name: "flannel-10-244-77-0-24", destRange: "10.244.77.0/24", nextHopInstance: me() },
        standin.networkUrl(),
      ),
    );
    assert.equal(op.status, "PENDING");
    assert.equal(standin.routes.has("flannel-10-244-77-0-24"), false, "not there before DONE");
    await compute.waitOperation(op);
    assert.equal(standin.routes.has("flannel-10-244-77-0-24"), true);
    await assert.rejects(
      compute.getRoute("flannel-nope"),
      (e: Error) => e instanceof GceApiError && e.status === 404,
    );
    await compute.waitOperation(await compute.deleteRoute("flannel-10-244-77-0-24"));
  });
});

describe("gce: a role change never deletes a peer's route", () => {
  test("an agent that stops being the sweeper drops the live peer it tolerated without deleting it", async () => {
    const standin = new GceStandin({
      project: "p1",
      instances: [{ name: "n1", zone: "z", ip: "127.0.0.1" }],
      operationStepMs: 10,
    });
    await standin.listen();
    try {
      const peerUrl = standin.instanceUrl({ name: "n1", zone: "z", ip: "127.0.0.1" });
      standin.addRouteNow({
        name: "flannel-10-244-96-0-24",
        destRange: "10.244.96.0/24",
        nextHopInstance: peerUrl,
      });
      const metadata = new MetadataClient(`http://${standin.hostPort}/computeMetadata/v1/`);
      const compute = new ComputeClient(standin.computeBase, "p1", new TokenSource(metadata));
      let role: GceRouteRole = { ownName: "flannel-10-244-55-0-24", sweeper: true };
      const kind = gceRouteKind(
        () => compute,
        () => standin.networkUrl(),
        () => role,
        () => {},
      );
      const reconciler = new Reconciler({
        kinds: [kind],
        scope: {
          networks: [parseCIDR("10.244.0.0/16")!],
          ownSubnets: [],
          routeDevices: [],
          ownedDevices: [],
        },
        log: () => {},
        retry: { minMs: 20, maxMs: 100, jitter: 0 },
      });
      const own = { name: "flannel-10-244-55-0-24", destRange: "10.244.55.0/24", nextHopInstance: peerUrl };
      const tolerated = {
        name: "flannel-10-244-96-0-24",
        destRange: "10.244.96.0/24",
        nextHopInstance: undefined,
      };
      await reconciler.setDesired({ "gce-route": [own, tolerated] });
      // 10.244.5.0/24 appeared: we are no longer the sweeper and want only our own route.
      role = { ownName: "flannel-10-244-55-0-24", sweeper: false };
      await reconciler.setDesired({ "gce-route": [own] });
      assert.ok(standin.routes.has("flannel-10-244-96-0-24"), "the live peer's route is still there");
      assert.equal(standin.requests.filter((r) => r.startsWith("DELETE")).length, 0);
      // Still the sweeper when the peer's lease goes: its route is removed.
      role = { ownName: "flannel-10-244-55-0-24", sweeper: true };
      await reconciler.setDesired({ "gce-route": [own, tolerated] });
      await reconciler.setDesired({ "gce-route": [own] });
      assert.ok(!standin.routes.has("flannel-10-244-96-0-24"), "the sweeper removed the gone lease's route");
      reconciler.close();
    } finally {
      await standin.close();
    }
  });
});
