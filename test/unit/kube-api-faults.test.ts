// Faults of the Kubernetes API: which failures are transient (retried with backoff, honouring
// Retry-After) and which are permanent (one clear line naming the request and the RBAC rule missing);
// the kube subnet manager against a test API server whose first requests of every kind fail the way a
// real cluster's do; and the node watch against a server that stops sending without closing.
import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { classifyApiFailure, permanentApiError, rbacOf } from "../../src/kube/api-failure.js";
import { retryApi } from "../../src/kube/api-retry.js";
import { KubeApiError, KubeClient, KubeConnectionError } from "../../src/kube/kube-client.js";
import { loadKubeconfig } from "../../src/kube/kubeconfig.js";
import type { KubeNode } from "../../src/subnet/kube/kube-node.js";
import { NodeWatch } from "../../src/subnet/kube/node-watch.js";
import { openKubeSubnetManager } from "../../src/subnet/kube/open-kube-subnet-manager.js";
import { describeError, UserError } from "../../src/user-error.js";
import type { InjectedFault } from "../kube-api/faults.js";
import { WEFT_USER } from "../kube-api/identities.js";
import { nodeObject, type RunningApi, startApiInProcess } from "../kube-api/in-process.js";
import { writeKubeconfig } from "../kube-api/kubeconfig-file.js";

const attrs = {
  publicIP: "172.31.0.1",
  publicIPv6: undefined,
  backendType: "vxlan",
  backendData: { VNI: 1, VtepMAC: "02:00:00:00:00:01" },
  backendV6Data: undefined,
};
const request = { attrs, previousSubnet: undefined, previousIPv6Subnet: undefined };

async function until(
  what: string,
  timeoutMs: number,
  probe: () => boolean | Promise<boolean>,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await probe())) {
    if (Date.now() > deadline) throw new Error(`${what}: not within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

const apiError = (code: number, method = "GET", path = "/api/v1/nodes", retryAfter?: number) =>
  new KubeApiError(method, path, code, "Reason", "message", retryAfter);

describe("classifying API failures", () => {
  test("overload, server errors and broken connections are transient", () => {
    for (const code of [410, 429, 500, 502, 503, 504])
      assert.equal(classifyApiFailure(apiError(code)).transient, true, String(code));
    for (const code of ["ECONNREFUSED", "ECONNRESET", "ETIMEDOUT", "EHOSTUNREACH", undefined])
      assert.equal(
        classifyApiFailure(new KubeConnectionError("https://x", "down", code)).transient,
        true,
        String(code),
      );
    assert.deepEqual(classifyApiFailure(apiError(429, "GET", "/api/v1/nodes", 3)), {
      transient: true,
      retryAfterMs: 3000,
    });
  });

  test("credentials, RBAC, missing objects, invalid requests and an untrusted certificate are permanent", () => {
    for (const code of [400, 401, 403, 404, 422])
      assert.equal(classifyApiFailure(apiError(code)).transient, false, String(code));
    for (const code of ["CERT_HAS_EXPIRED", "UNABLE_TO_VERIFY_LEAF_SIGNATURE", "TOKEN"])
      assert.equal(classifyApiFailure(new KubeConnectionError("https://x", "bad", code)).transient, false);
    assert.equal(classifyApiFailure(new TypeError("a bug")).transient, false);
    const exists = new KubeApiError(
      "POST",
      "/api/v1/nodes",
      409,
      "AlreadyExists",
      'nodes "n" already exists',
    );
    assert.equal(classifyApiFailure(exists).transient, false);
    const conflict = new KubeApiError(
      "PATCH",
      "/api/v1/nodes/n",
      409,
      "Conflict",
      "the object has been modified",
    );
    assert.equal(classifyApiFailure(conflict).transient, true);
  });

  test("the RBAC verb and resource of a request", () => {
    assert.deepEqual(rbacOf("PATCH", "/api/v1/nodes/n1/status"), { verb: "patch", resource: "nodes/status" });
    assert.deepEqual(rbacOf("GET", "/api/v1/nodes?limit=500&resourceVersion=0"), {
      verb: "list",
      resource: "nodes",
    });
    assert.deepEqual(rbacOf("GET", "/api/v1/nodes?allowWatchBookmarks=true&watch=true"), {
      verb: "watch",
      resource: "nodes",
    });
    assert.deepEqual(rbacOf("GET", "/api/v1/namespaces/kube-system/pods/p"), {
      verb: "get",
      resource: "pods",
    });
  });

  test("a 403 names the verb and resource to grant; a 404 says what it means", () => {
    const forbidden = permanentApiError(
      new KubeApiError(
        "PATCH",
        "/api/v1/nodes/n1/status",
        403,
        "Forbidden",
        'nodes "n1" is forbidden: User "u" cannot patch resource "nodes/status"',
      ),
      "write the node's flannel annotations",
    );
    assert.ok(forbidden instanceof UserError);
    assert.match(
      describeError(forbidden),
      /^cannot write the node's flannel annotations: nodes "n1" is forbidden.*\(403 Forbidden on PATCH \/api\/v1\/nodes\/n1\/status\) \(grant verb "patch" on resource "nodes\/status"/,
    );
    assert.match(
      describeError(permanentApiError(apiError(404), "list nodes", "is this the API server?")),
      /cannot list nodes: GET \/api\/v1\/nodes: 404 NotFound: message \(is this the API server\?\)/,
    );
  });
});

describe("retrying an API step", () => {
  const backoff = { minMs: 5, maxMs: 20 };

  test("transient failures are retried, logged once each, and the wait honours Retry-After", async () => {
    const logs: string[] = [];
    const failures = [apiError(503), apiError(503), apiError(429, "GET", "/api/v1/nodes", 1)];
    const started = Date.now();
    let calls = 0;
    const value = await retryApi(
      async () => {
        calls++;
        const failure = failures.shift();
        if (failure) throw failure;
        return "ok";
      },
      { what: "list nodes", log: (m) => logs.push(m), backoff },
    );
    assert.equal(value, "ok");
    assert.equal(calls, 4);
    assert.ok(Date.now() - started >= 1000, "waited at least the Retry-After second");
    // One line per distinct failure, one when it works again.
    assert.equal(logs.length, 3, logs.join("\n"));
    assert.match(logs[0]!, /^cannot list nodes: GET \/api\/v1\/nodes: 503 Reason: message; retrying/);
    assert.match(logs[2]!, /answers again/);
  });

  test("a permanent failure stops at once with one clear error", async () => {
    let calls = 0;
    await assert.rejects(
      retryApi(
        async () => {
          calls++;
          throw new KubeApiError("PATCH", "/api/v1/nodes/n/status", 422, "Invalid", "bad");
        },
        { what: "set the NetworkUnavailable condition", log: () => {}, backoff },
      ),
      (err) => err instanceof UserError && /rejected PATCH \/api\/v1\/nodes\/n\/status/.test(err.message),
    );
    assert.equal(calls, 1);
  });

  test("a permanent failure the caller can wait out is waited out, with its own line", async () => {
    const logs: string[] = [];
    let calls = 0;
    await retryApi(
      async () => {
        if (++calls < 4) throw apiError(404, "PATCH", "/api/v1/nodes/n/status");
      },
      {
        what: "write the annotations",
        log: (m) => logs.push(m),
        backoff,
        waitOn: (err) => (err.code === 404 ? "waiting for node n to be registered" : undefined),
      },
    );
    assert.equal(calls, 4);
    assert.equal(logs.filter((l) => l === "waiting for node n to be registered").length, 1);
  });

  test("shutting down ends the wait", async () => {
    const stop = new AbortController();
    const running = retryApi(
      async () => {
        throw apiError(503);
      },
      { what: "list nodes", log: () => {}, signal: stop.signal, backoff: { minMs: 60_000, maxMs: 60_000 } },
    );
    setTimeout(() => stop.abort(), 50);
    const started = Date.now();
    await assert.rejects(running, KubeApiError);
    assert.ok(Date.now() - started < 5000);
  });
});

describe("the kube subnet manager against a faulty API", { timeout: 90_000 }, () => {
  let api: RunningApi;
  let netConf: string;
  const injected = async () => (await api.call("GET", "/weft-test/faults")).body as InjectedFault[];
  const setFaults = (rules: object[]) => api.call("POST", "/weft-test/faults", rules);

  before(async () => {
    api = await startApiInProcess({ bookmarkIntervalMs: 300 });
    netConf = join(api.dir, "net-conf.json");
    writeFileSync(netConf, '{"Network":"10.244.0.0/16","Backend":{"Type":"vxlan"}}');
  });
  after(async () => {
    await api?.close();
  });

  test("the first requests of every kind fail (503, 429, 500, 504, reset): the lease is taken once the API answers", async () => {
    await api.call("POST", "/api/v1/nodes", nodeObject("flaky", ["10.244.9.0/24"], "172.31.0.1"));
    await setFaults([
      { verb: "list", resource: "nodes", user: WEFT_USER, faults: ["503", "reset"] },
      { verb: "watch", resource: "nodes", user: WEFT_USER, faults: ["429", "500"] },
      { verb: "patch", resource: "nodes/status", user: WEFT_USER, faults: ["503", "reset", "504", "500"] },
    ]);
    const logs: string[] = [];
    const manager = await openKubeSubnetManager({
      apiUrl: "",
      kubeconfigFile: api.weftKubeconfig,
      annotationPrefix: "flannel.alpha.coreos.com",
      netConfigPath: netConf,
      setNodeNetworkUnavailable: true,
      env: { NODE_NAME: "flaky" },
      log: (m) => logs.push(m),
    });
    try {
      const lease = await manager.acquireLease(request);
      assert.equal(lease.key, "10.244.9.0-24");
      const seen = new Map<string, unknown>();
      const warnings: string[] = [];
      manager.watchLeases({
        onLeases: (leases) => {
          for (const [key, value] of leases) seen.set(key, value);
        },
        onOwnLease: () => {},
        onWarning: (m) => warnings.push(m),
        onFatal: (err) => assert.fail(`fatal: ${err.message}`),
      });
      await manager.networkReady();
      const node = (await api.call("GET", "/api/v1/nodes/flaky")).body;
      assert.equal(
        node.metadata.annotations["flannel.alpha.coreos.com/backend-data"],
        '{"VNI":1,"VtepMAC":"02:00:00:00:00:01"}',
      );
      assert.equal(
        node.status.conditions.find((c: { type: string }) => c.type === "NetworkUnavailable")?.status,
        "False",
      );
      // The watch works once its faults are spent: a peer added now arrives.
      await api.call(
        "POST",
        "/api/v1/nodes",
        nodeObject("peer", ["10.244.10.0/24"], "172.31.0.2", {
          "flannel.alpha.coreos.com/backend-data": '{"VNI":1,"VtepMAC":"02:00:00:00:00:02"}',
          "flannel.alpha.coreos.com/backend-type": "vxlan",
          "flannel.alpha.coreos.com/kube-subnet-manager": "true",
          "flannel.alpha.coreos.com/public-ip": "172.31.0.2",
        }),
      );
      await until("the peer's lease", 15_000, () => seen.has("10.244.10.0-24"));
      const faults = (await injected()).map((f) => `${f.verb} ${f.fault}`);
      assert.deepEqual(faults.sort(), [
        "list 503",
        "list reset",
        "patch 500",
        "patch 503",
        "patch 504",
        "patch reset",
        "watch 429",
        "watch 500",
      ]);
      const all = [...logs, ...warnings].join("\n");
      assert.match(all, /cannot list nodes \(.*503 ServiceUnavailable: the server is currently unable/);
      assert.match(all, /cannot write the node's flannel annotations: .*; retrying/);
      assert.match(all, /cannot list nodes \(cannot reach the Kubernetes API at \S+: ECONNRESET/);
      assert.match(all, /500 HTTP 500: etcdserver: leader changed/);
      assert.doesNotMatch(all, /\n\s+at /, "no stack trace");
    } finally {
      await manager.close();
      await setFaults([]);
    }
  });

  test("a refused credential before the first list stops with one clear line", async () => {
    const kubeconfig = writeKubeconfig(join(api.dir, "bad.kubeconfig"), api.url, api.tls.caFile, {
      token: "not-a-token",
    });
    const manager = await openKubeSubnetManager({
      apiUrl: "",
      kubeconfigFile: kubeconfig,
      annotationPrefix: "flannel.alpha.coreos.com",
      netConfigPath: netConf,
      setNodeNetworkUnavailable: true,
      env: { NODE_NAME: "flaky" },
      log: () => {},
    });
    try {
      await assert.rejects(
        manager.storedBackendData(),
        (err) =>
          err instanceof UserError &&
          /^cannot list nodes: the Kubernetes API refused our credentials \(401 Unauthorized on GET \/api\/v1\/nodes\)/.test(
            err.message,
          ),
      );
    } finally {
      await manager.close();
    }
  });

  for (const fault of ["stall", "hang"] as const)
    test(`a watch that goes silent without closing (${fault === "stall" ? "after its headers" : "before any answer"}) is cut and resumed from its resourceVersion`, async () => {
      await setFaults([{ verb: "watch", resource: "nodes", user: WEFT_USER, faults: [fault] }]);
      const client = new KubeClient(await loadKubeconfig(api.weftKubeconfig));
      const names: string[][] = [];
      const warnings: string[] = [];
      const watch = new NodeWatch(
        client,
        "flannel.alpha.coreos.com/",
        {
          onChange: (nodes: ReadonlyMap<string, KubeNode>) => names.push([...nodes.keys()]),
          onWarning: (m) => warnings.push(m),
        },
        { idleMs: 1500 },
      );
      await api.call("DELETE", "/weft-test/requests");
      watch.start();
      try {
        await watch.whenSynced();
        // Made while the first watch is stalled: it must arrive once the watch is cut and resumed.
        await api.call(
          "POST",
          "/api/v1/nodes",
          nodeObject(
            `during-${fault}`,
            [fault === "stall" ? "10.244.11.0/24" : "10.244.12.0/24"],
            "172.31.0.3",
          ),
        );
        await until("the node made during the stall", 10_000, () =>
          names.some((n) => n.includes(`during-${fault}`)),
        );
        assert.ok(
          warnings.some((w) =>
            fault === "stall"
              ? /node watch interrupted \(the watch carried no data for 1\.5 s/.test(w)
              : /node watch interrupted \(cannot reach the Kubernetes API at \S+: no answer within 1\.5 s/.test(
                  w,
                ),
          ),
          warnings.join("\n"),
        );
        // A healthy watch (bookmarks every 300 ms) is not cut: still one list and two watches later.
        await new Promise((r) => setTimeout(r, 3000));
        const requests = (await api.call("GET", "/weft-test/requests")).body as {
          url: string;
          user: string;
        }[];
        const ours = requests.filter((r) => r.user === WEFT_USER);
        assert.equal(ours.filter((r) => !r.url.includes("watch=true")).length, 1, "resumed, not re-listed");
        assert.equal(ours.filter((r) => r.url.includes("watch=true")).length, 2);
        assert.match(
          ours.filter((r) => r.url.includes("watch=true"))[1]!.url,
          /resourceVersion=\d+&timeout=\d+m\d+s&timeoutSeconds=\d+&watch=true$/,
        );
      } finally {
        watch.close();
        client.close();
        await setFaults([]);
      }
    });
});
