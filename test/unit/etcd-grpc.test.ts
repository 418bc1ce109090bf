/** EtcdStore's calls against a fake etcd gRPC server: bytes sent, deadlines, errors, failover, auth. */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { dirname, join } from "node:path";
import { after, describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { type EtcdConnectionOptions, EtcdStore } from "../../src/subnet/etcd/etcd-store.js";
import { ProtoWriter } from "../../src/subnet/etcd/protobuf.js";
import {
  b,
  type FakeCall,
  FakeEtcd,
  type FakeHandler,
  type FakeReply,
  header,
  keyValue,
} from "./etcd-fake-server.js";

const LEASE = "7587880429463148041";
const LEASE_VARINT = "89aca8e2c5a1e4a669";
const HEADER_ONLY = new ProtoWriter().message(1, header(7)).finish();

const fakes: FakeEtcd[] = [];
after(async () => {
  for (const fake of fakes) await fake.stop();
});

async function fakeEtcd(handler: FakeHandler): Promise<FakeEtcd> {
  const started = await FakeEtcd.start(handler);
  fakes.push(started);
  return started;
}

/** Answers every call with a response carrying only a header. */
const answerHeader: FakeHandler = (_call, reply) => {
  reply.message(HEADER_ONLY);
  reply.end();
};

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

const requests = (fake: FakeEtcd) =>
  fake.calls.map((c) => [c.method, c.messages.map((m) => m.toString("hex"))]);
const hex = (text: string) => b(text).toString("hex");

describe("EtcdStore calls", () => {
  it("sends each call's request to its gRPC method and reads the answers", async () => {
    const fake = await fakeEtcd((call, reply) => {
      const answers: Record<string, Uint8Array> = {
        "KV/Range": call.messages[0]!.includes(Buffer.from("/p0"))
          ? new ProtoWriter()
              .message(1, header(7))
              .message(2, keyValue("/p/a", "A", 6, BigInt(LEASE)))
              .int64(4, 1)
              .finish()
          : HEADER_ONLY,
        "Lease/LeaseGrant": new ProtoWriter()
          .message(1, header(7))
          .int64(2, BigInt(LEASE))
          .int64(3, 60)
          .finish(),
        "KV/Txn": new ProtoWriter().message(1, header(8)).bool(2, true).finish(),
      };
      reply.message(answers[call.method] ?? HEADER_ONLY);
      reply.end();
    });
    const store = await EtcdStore.connect(options([fake.endpoint]));
    try {
      assert.deepEqual(await store.list("/p/"), {
        values: [{ key: "/p/a", value: "A", modRevision: 6n, createRevision: 6n, leaseId: LEASE }],
        revision: 7n,
      });
      assert.equal(await store.get("/missing"), undefined);
      const lease = await store.grantLease(60);
      assert.equal(lease, LEASE);
      assert.equal(await store.createIfAbsent("/p/b", "B", lease), true);
      await store.put("/p/c", "C", "0");
      await store.delete("/p/c");
      assert.deepEqual(requests(fake), [
        ["KV/Range", [hex("0a 03 2f702f  12 03 2f7030")]],
        ["KV/Range", [hex("0a 08 2f6d697373696e67")]],
        ["Lease/LeaseGrant", [hex("08 3c")]],
        [
          "KV/Txn",
          [hex(`0a 0a 10 01 1a 04 2f702f62 28 00  12 15 12 13 0a 04 2f702f62 12 01 42 18 ${LEASE_VARINT}`)],
        ],
        ["KV/Put", [hex("0a 04 2f702f63  12 01 43")]],
        ["KV/DeleteRange", [hex("0a 04 2f702f63")]],
      ]);
      assert.ok(
        fake.calls.every((c) => c.token === undefined),
        "no token without a username",
      );
      for (const call of fake.calls) {
        const ms = Number(/^(\d+)m$/.exec(call.timeout ?? "")?.[1]);
        assert.ok(ms > 1500 && ms <= 2000, `grpc-timeout ${call.timeout} for a 2000 ms deadline`);
      }
    } finally {
      store.close();
    }
  });

  it("says false when the key exists (the txn did not succeed)", async () => {
    const fake = await fakeEtcd(answerHeader);
    const store = await EtcdStore.connect(options([fake.endpoint]));
    assert.equal(await store.createIfAbsent("/p/b", "B", "5"), false);
    store.close();
  });

  it("names the endpoint, the method and etcd's message when etcd refuses a call", async () => {
    const fake = await fakeEtcd((_call, reply) => reply.fail(5, "etcdserver: requested lease not found"));
    const store = await EtcdStore.connect(options([fake.endpoint]));
    await assert.rejects(store.put("/k", "v", "12"), {
      message: `etcd at ${fake.endpoint}: KV/Put: etcdserver: requested lease not found (NOT_FOUND)`,
    });
    // The status may also come in trailers, after response headers.
    const late = await fakeEtcd((_call, reply) => reply.end(14, "etcdserver: no leader"));
    const other = await EtcdStore.connect(options([late.endpoint]));
    await assert.rejects(other.get("/k"), {
      message: `etcd at ${late.endpoint}: KV/Range: etcdserver: no leader (UNAVAILABLE)`,
    });
    assert.equal(late.calls.length, 1, "an answered call is not sent again");
    store.close();
    other.close();
  });

  it("says so when the endpoint answers something that is not gRPC", async () => {
    const fake = await fakeEtcd((_call, reply) => {
      reply.stream.respond({ ":status": 404, "content-type": "text/plain" });
      reply.stream.end("Not Found\n");
    });
    const store = await EtcdStore.connect(options([fake.endpoint]));
    await assert.rejects(store.get("/k"), /KV\/Range answered HTTP 404 \(text\/plain\), not gRPC/);
    const garbled = await fakeEtcd((_call, reply) => {
      reply.raw(b("01 00000001 00"));
      reply.end();
    });
    const other = await EtcdStore.connect(options([garbled.endpoint]));
    await assert.rejects(other.get("/k"), /compressed gRPC message/);
    store.close();
    other.close();
  });

  it("fails a call at its deadline when etcd does not answer", async () => {
    const fake = await fakeEtcd(() => {}); // reads, never answers
    const store = await EtcdStore.connect(options([fake.endpoint], { callTimeoutMs: 300 }));
    const started = Date.now();
    await assert.rejects(store.get("/k"), {
      message: `etcd at ${fake.endpoint}: no answer to KV/Range within 300 ms`,
    });
    const took = Date.now() - started;
    assert.ok(took >= 250 && took < 2000, `took ${took} ms`);
    store.close();
  });

  it("fails at once with 'connection refused' naming the endpoint", async () => {
    const refused = await FakeEtcd.refusedEndpoint();
    const store = await EtcdStore.connect(options([refused]));
    await assert.rejects(store.get("/k"), { message: `etcd at ${refused}: connection refused` });
    store.close();
  });

  it("moves on to the next endpoint when one cannot be reached, and stays there", async () => {
    const refused = await FakeEtcd.refusedEndpoint();
    const fake = await fakeEtcd(answerHeader);
    const store = await EtcdStore.connect(options([refused, fake.endpoint]));
    assert.equal(await store.get("/a"), undefined);
    assert.equal(await store.get("/b"), undefined);
    assert.equal(fake.calls.length, 2);
    store.close();
    const other = await FakeEtcd.refusedEndpoint();
    const none = await EtcdStore.connect(options([refused, other]));
    await assert.rejects(none.get("/k"), {
      message: `etcd at ${refused}: connection refused; etcd at ${other}: connection refused`,
    });
    none.close();
  });

  it("asks for a leader on every call, and goes to another member when one has none", async () => {
    const leaderless = await fakeEtcd((_call, reply) => reply.fail(14, "etcdserver: no leader"));
    const healthy = await fakeEtcd(answerHeader);
    const store = await EtcdStore.connect(options([leaderless.endpoint, healthy.endpoint]));
    try {
      assert.equal(await store.get("/a"), undefined);
      assert.equal(await store.get("/b"), undefined);
      assert.deepEqual(leaderless.methods(), ["KV/Range"], "the leaderless member is asked once");
      assert.deepEqual(healthy.methods(), ["KV/Range", "KV/Range"]);
      for (const call of [...leaderless.calls, ...healthy.calls]) assert.equal(call.hasLeader, "true");
    } finally {
      store.close();
    }
  });

  it("gives a silent member half the deadline, then asks the next one", async () => {
    const silent = await fakeEtcd(() => {}); // takes the call, never answers (cut off, before it knows)
    const healthy = await fakeEtcd(answerHeader);
    const store = await EtcdStore.connect(
      options([silent.endpoint, healthy.endpoint], { callTimeoutMs: 600 }),
    );
    try {
      const started = Date.now();
      assert.equal(await store.get("/a"), undefined);
      const took = Date.now() - started;
      assert.ok(took >= 250 && took < 600, `took ${took} ms`);
      assert.equal(silent.calls.length, 1);
      assert.equal(healthy.calls.length, 1);
      const ms = Number(/^(\d+)m$/.exec(silent.calls[0]!.timeout ?? "")?.[1]);
      assert.ok(ms > 200 && ms <= 300, `grpc-timeout ${silent.calls[0]!.timeout} for half of 600 ms`);
    } finally {
      store.close();
    }
  });

  it("does not send a call again when the only member has no leader", async () => {
    const leaderless = await fakeEtcd((_call, reply) => reply.fail(14, "etcdserver: no leader"));
    const store = await EtcdStore.connect(options([leaderless.endpoint]));
    await assert.rejects(store.get("/a"), {
      message: `etcd at ${leaderless.endpoint}: KV/Range: etcdserver: no leader (UNAVAILABLE)`,
    });
    assert.equal(leaderless.calls.length, 1);
    store.close();
  });

  it("shares one connection between calls, and connects anew after etcd dropped it", async () => {
    const fake = await fakeEtcd(answerHeader);
    const store = await EtcdStore.connect(options([fake.endpoint]));
    await Promise.all(["/a", "/b", "/c"].map((k) => store.get(k)));
    assert.equal(await store.get("/d"), undefined);
    assert.equal(fake.connections, 1);
    fake.dropConnections();
    assert.equal(await store.get("/e"), undefined);
    assert.equal(fake.connections, 2);
    store.close();
  });
});

describe("EtcdStore auth", () => {
  /** A server whose tokens are good for `uses` calls each; Authenticate answers tok1, tok2, ... */
  async function authEtcd(uses: number) {
    let issued = 0;
    let left = 0;
    return fakeEtcd((call: FakeCall, reply: FakeReply) => {
      if (call.method === "Auth/Authenticate") {
        if (!call.messages[0]!.includes(Buffer.from("s3cret")))
          return reply.fail(3, "etcdserver: authentication failed, invalid user ID or password");
        issued += 1;
        left = uses;
        reply.message(new ProtoWriter().message(1, header(1)).bytesField(2, `tok${issued}`).finish());
        return reply.end();
      }
      if (!call.token) return reply.fail(3, "etcdserver: user name is empty");
      if (call.token !== `tok${issued}` || left === 0)
        return reply.fail(16, "etcdserver: invalid auth token");
      left -= 1;
      answerHeader(call, reply);
    });
  }

  it("authenticates first, sends the token as metadata, and authenticates again once when it expires", async () => {
    const fake = await authEtcd(2);
    const store = await EtcdStore.connect(options([fake.endpoint], { username: "root", password: "s3cret" }));
    for (const key of ["/a", "/b", "/c"]) assert.equal(await store.get(key), undefined);
    assert.deepEqual(
      fake.calls.map((c) => `${c.method} ${c.token ?? "-"}`),
      [
        "Auth/Authenticate -",
        "KV/Range tok1",
        "KV/Range tok1",
        "KV/Range tok1", // refused: expired
        "Auth/Authenticate -",
        "KV/Range tok2",
      ],
    );
    assert.deepEqual(fake.calls[0]!.messages[0], b("0a 04 726f6f74  12 06 733363726574"));
    store.close();
  });

  it("authenticates once for calls made together", async () => {
    const fake = await authEtcd(100);
    const store = await EtcdStore.connect(options([fake.endpoint], { username: "root", password: "s3cret" }));
    await Promise.all(["/a", "/b", "/c"].map((k) => store.get(k)));
    assert.equal(fake.methods().filter((m) => m === "Auth/Authenticate").length, 1);
    store.close();
  });

  it("reports wrong credentials clearly, without looping", async () => {
    const fake = await authEtcd(100);
    const store = await EtcdStore.connect(options([fake.endpoint], { username: "root", password: "nope" }));
    await assert.rejects(store.get("/a"), {
      message:
        `etcd at ${fake.endpoint}: authenticating as "root": etcdserver: authentication failed, invalid user ID ` +
        "or password (check --etcd-username and --etcd-password)",
    });
    assert.deepEqual(fake.methods(), ["Auth/Authenticate"]);
    store.close();
  });

  it("goes without a token when etcd has auth off, as clientv3 does", async () => {
    const fake = await fakeEtcd((call, reply) => {
      if (call.method === "Auth/Authenticate")
        return reply.fail(9, "etcdserver: authentication is not enabled");
      answerHeader(call, reply);
    });
    const store = await EtcdStore.connect(options([fake.endpoint], { username: "root", password: "x" }));
    assert.equal(await store.get("/a"), undefined);
    assert.equal(await store.get("/b"), undefined);
    assert.deepEqual(
      fake.calls.map((c) => `${c.method} ${c.token ?? "-"}`),
      ["Auth/Authenticate -", "KV/Range -", "KV/Range -"],
    );
    store.close();
  });
});

describe("EtcdStore.connect and close", () => {
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

  it("does not keep the process alive: idle after calls, or after close() with a watch open", async () => {
    const fake = await fakeEtcd((call, reply) => {
      if (call.method === "Watch/Watch") return reply.message(new ProtoWriter().bool(3, true).finish());
      answerHeader(call, reply);
    });
    const store = join(dirname(fileURLToPath(import.meta.url)), "../../src/subnet/etcd/etcd-store.js");
    const script = (closing: string) => `
      import { EtcdStore } from ${JSON.stringify(store)};
      const s = await EtcdStore.connect({ endpoints: [${JSON.stringify(fake.endpoint)}], callTimeoutMs: 2000 });
      await s.get("/a");
      ${closing}
      console.log("done");`;
    const run = (source: string) =>
      new Promise<{ code: number | null; ms: number; out: string }>((resolve) => {
        const started = Date.now();
        const child = spawn(process.execPath, ["--input-type=module", "-e", source]);
        let out = "";
        child.stdout.on("data", (d) => (out += d));
        child.stderr.on("data", (d) => (out += d));
        const killer = setTimeout(() => child.kill(), 5000);
        child.on("exit", (code) => {
          clearTimeout(killer);
          resolve({ code, ms: Date.now() - started, out });
        });
      });
    for (const closing of [
      "",
      `const w = await s.watchPrefix("/p/", 1n, { onPut() {}, onDelete() {}, onBroken() {} }); s.close();`,
      `const w = await s.watchPrefix("/p/", 1n, { onPut() {}, onDelete() {}, onBroken() {} }); await w.close();`,
    ]) {
      const result = await run(script(closing));
      assert.equal(result.code, 0, `${closing}: ${result.out}`);
      assert.match(result.out, /done/);
      assert.ok(result.ms < 4000, `${closing}: exited after ${result.ms} ms`);
    }
  });
});
