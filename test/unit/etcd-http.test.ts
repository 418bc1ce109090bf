/** EtcdStore's requests against a fake gateway: shapes sent, deadlines, errors, failover, auth. */
import assert from "node:assert/strict";
import { after, describe, it } from "node:test";
import { type EtcdConnectionOptions, EtcdStore } from "../../src/subnet/etcd/etcd-store.js";
import { answerError, answerJson, FakeGateway, HEADER } from "./etcd-fake-gateway.js";

const b64 = (text: string) => Buffer.from(text).toString("base64");

const gateways: FakeGateway[] = [];
after(async () => {
  for (const gateway of gateways) await gateway.stop();
});

async function gateway(handler: Parameters<typeof FakeGateway.start>[0]): Promise<FakeGateway> {
  const started = await FakeGateway.start(handler);
  gateways.push(started);
  return started;
}

function options(endpoints: string[], extra: Partial<EtcdConnectionOptions> = {}): EtcdConnectionOptions {
  return {
    endpoints,
    caFile: undefined,
    certFile: undefined,
    keyFile: undefined,
    username: undefined,
    password: undefined,
    callTimeoutMs: 2000,
    ...extra,
  };
}

describe("EtcdStore requests", () => {
  it("sends keys and values base64, with range_end for a prefix, and a lease only when there is one", async () => {
    const fake = await gateway((request, response) => {
      if (request.path === "/v3/kv/range" && request.body["range_end"]) {
        answerJson(response, 200, {
          header: HEADER,
          kvs: [{ key: b64("/p/a"), mod_revision: "6", value: b64("A"), lease: "7587880429463148041" }],
          count: "1",
        });
      } else if (request.path === "/v3/kv/range") answerJson(response, 200, { header: HEADER });
      else if (request.path === "/v3/lease/grant")
        answerJson(response, 200, { header: HEADER, ID: "7587880429463148041", TTL: "60" });
      else if (request.path === "/v3/kv/txn") answerJson(response, 200, { header: HEADER, succeeded: true });
      else answerJson(response, 200, { header: HEADER });
    });
    const store = await EtcdStore.connect(options([fake.endpoint]));
    try {
      assert.deepEqual(await store.list("/p/"), {
        values: [{ key: "/p/a", value: "A", modRevision: 6n, leaseId: "7587880429463148041" }],
        revision: 7n,
      });
      assert.equal(await store.get("/missing"), undefined);
      const lease = await store.grantLease(60);
      assert.equal(lease, "7587880429463148041");
      assert.equal(await store.createIfAbsent("/p/b", "B", lease), true);
      await store.put("/p/c", "C", "0");
      await store.delete("/p/c");
      assert.deepEqual(
        fake.requests.map((r) => [r.path, r.body]),
        [
          ["/v3/kv/range", { key: b64("/p/"), range_end: b64("/p0") }],
          ["/v3/kv/range", { key: b64("/missing") }],
          ["/v3/lease/grant", { TTL: 60 }],
          [
            "/v3/kv/txn",
            {
              compare: [{ key: b64("/p/b"), target: "CREATE", result: "EQUAL", create_revision: "0" }],
              success: [{ request_put: { key: b64("/p/b"), value: b64("B"), lease: "7587880429463148041" } }],
            },
          ],
          ["/v3/kv/put", { key: b64("/p/c"), value: b64("C") }],
          ["/v3/kv/deleterange", { key: b64("/p/c") }],
        ],
      );
      assert.ok(
        fake.requests.every((r) => r.authorization === undefined),
        "no token without a username",
      );
    } finally {
      store.close();
    }
  });

  it("says false when the key exists (the txn did not succeed)", async () => {
    const fake = await gateway((_request, response) => answerJson(response, 200, { header: HEADER }));
    const store = await EtcdStore.connect(options([fake.endpoint]));
    assert.equal(await store.createIfAbsent("/p/b", "B", "5"), false);
    store.close();
  });

  it("names the endpoint and etcd's message when etcd refuses a call", async () => {
    const fake = await gateway((_request, response) =>
      answerError(response, 404, 5, "etcdserver: requested lease not found"),
    );
    const store = await EtcdStore.connect(options([fake.endpoint]));
    await assert.rejects(store.put("/k", "v", "12"), {
      message: `etcd at ${fake.endpoint}: /v3/kv/put: etcdserver: requested lease not found`,
    });
    store.close();
  });

  it("says so when the endpoint has no JSON gateway", async () => {
    const fake = await gateway((_request, response) => {
      response.writeHead(404, { "content-type": "text/plain" });
      response.end("Not Found\n");
    });
    const store = await EtcdStore.connect(options([fake.endpoint]));
    await assert.rejects(
      store.get("/k"),
      /no JSON gateway at \/v3\/kv\/range \(HTTP 404; weft needs etcd 3\.4 or newer\)/,
    );
    store.close();
  });

  it("fails a call at its deadline when etcd does not answer", async () => {
    const fake = await gateway(() => {}); // accepts, reads, never answers
    const store = await EtcdStore.connect(options([fake.endpoint], { callTimeoutMs: 300 }));
    const started = Date.now();
    await assert.rejects(store.get("/k"), {
      message: `etcd at ${fake.endpoint}: no answer to /v3/kv/range within 300 ms`,
    });
    const took = Date.now() - started;
    assert.ok(took >= 250 && took < 2000, `took ${took} ms`);
    store.close();
  });

  it("fails at once with 'connection refused' naming the endpoint", async () => {
    const refused = await FakeGateway.refusedEndpoint();
    const store = await EtcdStore.connect(options([refused]));
    await assert.rejects(store.get("/k"), { message: `etcd at ${refused}: connection refused` });
    store.close();
  });

  it("moves on to the next endpoint when one cannot be reached, and stays there", async () => {
    const refused = await FakeGateway.refusedEndpoint();
    const fake = await gateway((_request, response) => answerJson(response, 200, { header: HEADER }));
    const store = await EtcdStore.connect(options([refused, fake.endpoint]));
    assert.equal(await store.get("/a"), undefined);
    assert.equal(await store.get("/b"), undefined);
    assert.equal(fake.requests.length, 2);
    store.close();
    const other = await FakeGateway.refusedEndpoint();
    const none = await EtcdStore.connect(options([refused, other]));
    await assert.rejects(none.get("/k"), {
      message: `etcd at ${refused}: connection refused; etcd at ${other}: connection refused`,
    });
    none.close();
  });

  it("retries once on a kept-alive connection that etcd closed in the meantime", async () => {
    const fake = await gateway((_request, response) => answerJson(response, 200, { header: HEADER }));
    const store = await EtcdStore.connect(options([fake.endpoint]));
    assert.equal(await store.get("/a"), undefined);
    fake.dropConnections();
    assert.equal(await store.get("/b"), undefined);
    store.close();
  });
});

describe("EtcdStore auth", () => {
  /** A gateway whose tokens are good for `uses` requests each; authenticate answers tok1, tok2, ... */
  async function authGateway(uses: number) {
    let issued = 0;
    let left = 0;
    const fake = await gateway((request, response) => {
      if (request.path === "/v3/auth/authenticate") {
        if (request.body["password"] !== "s3cret")
          return answerError(
            response,
            400,
            3,
            "etcdserver: authentication failed, invalid user ID or password",
          );
        issued += 1;
        left = uses;
        return answerJson(response, 200, { header: HEADER, token: `tok${issued}` });
      }
      if (!request.authorization) return answerError(response, 400, 3, "etcdserver: user name is empty");
      if (request.authorization !== `tok${issued}` || left === 0)
        return answerError(response, 401, 16, "etcdserver: invalid auth token");
      left -= 1;
      answerJson(response, 200, { header: HEADER });
    });
    return fake;
  }

  it("authenticates first, sends the token, and authenticates again once when it expires", async () => {
    const fake = await authGateway(2);
    const store = await EtcdStore.connect(options([fake.endpoint], { username: "root", password: "s3cret" }));
    for (const key of ["/a", "/b", "/c"]) assert.equal(await store.get(key), undefined);
    assert.deepEqual(
      fake.requests.map((r) => `${r.path} ${r.authorization ?? "-"}`),
      [
        "/v3/auth/authenticate -",
        "/v3/kv/range tok1",
        "/v3/kv/range tok1",
        "/v3/kv/range tok1", // refused: expired
        "/v3/auth/authenticate -",
        "/v3/kv/range tok2",
      ],
    );
    assert.deepEqual(fake.requests[0]!.body, { name: "root", password: "s3cret" });
    store.close();
  });

  it("authenticates once for calls made together", async () => {
    const fake = await authGateway(100);
    const store = await EtcdStore.connect(options([fake.endpoint], { username: "root", password: "s3cret" }));
    await Promise.all(["/a", "/b", "/c"].map((k) => store.get(k)));
    assert.equal(fake.paths().filter((p) => p === "/v3/auth/authenticate").length, 1);
    store.close();
  });

  it("reports wrong credentials clearly, without looping", async () => {
    const fake = await authGateway(100);
    const store = await EtcdStore.connect(options([fake.endpoint], { username: "root", password: "nope" }));
    await assert.rejects(store.get("/a"), {
      message:
        `etcd at ${fake.endpoint}: authenticating as "root": etcdserver: authentication failed, invalid user ID ` +
        "or password (check --etcd-username and --etcd-password)",
    });
    assert.deepEqual(fake.paths(), ["/v3/auth/authenticate"]);
    store.close();
  });

  it("goes without a token when etcd has auth off, as clientv3 does", async () => {
    const fake = await gateway((request, response) => {
      if (request.path === "/v3/auth/authenticate")
        return answerError(response, 400, 9, "etcdserver: authentication is not enabled");
      answerJson(response, 200, { header: HEADER });
    });
    const store = await EtcdStore.connect(options([fake.endpoint], { username: "root", password: "x" }));
    assert.equal(await store.get("/a"), undefined);
    assert.equal(await store.get("/b"), undefined);
    assert.deepEqual(
      fake.requests.map((r) => `${r.path} ${r.authorization ?? "-"}`),
      ["/v3/auth/authenticate -", "/v3/kv/range -", "/v3/kv/range -"],
    );
    store.close();
  });
});

describe("EtcdStore.connect", () => {
  it("refuses an endpoint that is not an http(s) URL and names a TLS file it cannot read", async () => {
    await assert.rejects(
      EtcdStore.connect(options(["etcd:2379"])),
      /etcd endpoint "etcd:2379" is not an http\(s\) URL/,
    );
    await assert.rejects(
      EtcdStore.connect(options(["https://127.0.0.1:2379"], { caFile: "/nonexistent/ca.crt" })),
      /cannot read the etcd CA file \(--etcd-cafile\) \/nonexistent\/ca\.crt/,
    );
  });
});
