/** The watch stream against a fake etcd: order, chunking, and exactly one onBroken on any failure. */
import assert from "node:assert/strict";
import { after, describe, it } from "node:test";
import { EtcdGrpc } from "../../src/subnet/etcd/etcd-grpc.js";
import { prefixRangeEnd } from "../../src/subnet/etcd/etcd-messages.js";
import { EtcdStore } from "../../src/subnet/etcd/etcd-store.js";
import { openWatch, type PrefixWatchHandlers } from "../../src/subnet/etcd/etcd-watch.js";
import { encodeGrpcFrame } from "../../src/subnet/etcd/grpc-frame.js";
import { ProtoWriter } from "../../src/subnet/etcd/protobuf.js";
import { b, FakeEtcd, type FakeReply, FreezableRelay, header, keyValue } from "./etcd-fake-server.js";

const LEASE = "7587880429463148041";
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** WatchResponse{header, watch_id 0, created}. */
const CREATED = new ProtoWriter().message(1, header(7)).bool(3, true).finish();
const PROGRESS = new ProtoWriter().message(1, header(9)).finish();
const putEvent = (key: string, value: string, rev: number, lease: bigint | number = 0) =>
  new ProtoWriter().message(2, keyValue(key, value, rev, lease));
const deleteEvent = (key: string, rev: number) =>
  new ProtoWriter().int64(1, 1).message(2, new ProtoWriter().bytesField(1, key).int64(3, rev));
const events = (...list: ProtoWriter[]) => {
  const w = new ProtoWriter().message(1, header(10));
  for (const event of list) w.message(11, event);
  return w.finish();
};

const fakes: Array<{ stop(): Promise<void> }> = [];
after(async () => {
  for (const fake of fakes) await fake.stop();
});

/** A fake whose Watch calls are answered by `stream`; other calls get an empty answer. */
async function watchEtcd(stream: (reply: FakeReply, fake: () => FakeEtcd) => void): Promise<FakeEtcd> {
  let fake: FakeEtcd | undefined;
  fake = await FakeEtcd.start((call, reply) => {
    if (call.method !== "Watch/Watch") {
      reply.message(new ProtoWriter().message(1, header(7)).finish());
      return reply.end();
    }
    stream(reply, () => fake!);
  });
  fakes.push(fake);
  return fake;
}

function recorder() {
  const seen: string[] = [];
  const handlers: PrefixWatchHandlers = {
    onPut: (kv) => seen.push(`put ${kv.key}=${kv.value}@${kv.modRevision} lease ${kv.leaseId}`),
    onDelete: (key, revision) => seen.push(`delete ${key}@${revision}`),
    onBroken: (reason) => seen.push(`broken: ${reason}`),
  };
  return { seen, handlers };
}

async function waitUntil(what: string, check: () => boolean, timeoutMs = 3000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(10);
  }
}

function store(endpoint: string, extra: { username?: string; password?: string } = {}): Promise<EtcdStore> {
  return EtcdStore.connect({
    endpoints: [endpoint],
    caFile: undefined,
    certFile: undefined,
    keyFile: undefined,
    username: extra.username,
    password: extra.password,
    callTimeoutMs: 1000,
  });
}

const escapeRegExp = (text: string) => text.replace(/[.*+?^${}()|[\]\\/]/g, "\\$&");

describe("watchPrefix", () => {
  it("asks for the prefix from the revision and delivers puts and deletes in order, however chunked", async () => {
    const fake = await watchEtcd((reply) => {
      const all = Buffer.concat(
        [
          CREATED,
          events(putEvent("/p/a", "1", 8), deleteEvent("/p/b", 9)),
          PROGRESS,
          events(putEvent("/p/c", "3", 10, BigInt(LEASE))),
        ].map(encodeGrpcFrame),
      );
      // Dribble it out in 7-byte pieces.
      let at = 0;
      const timer = setInterval(() => {
        if (at >= all.length || reply.stream.destroyed) return clearInterval(timer);
        reply.raw(all.subarray(at, at + 7));
        at += 7;
      }, 1);
    });
    const client = await store(fake.endpoint);
    const { seen, handlers } = recorder();
    const watch = await client.watchPrefix("/p/", 8n, handlers);
    await waitUntil("3 events", () => seen.length === 3);
    assert.deepEqual(seen, ["put /p/a=1@8 lease 0", "delete /p/b@9", `put /p/c=3@10 lease ${LEASE}`]);
    // WatchRequest{create_request{key "/p/", range_end "/p0", start_revision 8, progress_notify}}
    assert.deepEqual(fake.calls[0]!.messages, [b("0a 0e  0a 03 2f702f  12 03 2f7030  18 08  20 01")]);
    await watch.close();
    client.close();
  });

  const breaks: Array<[string, (reply: FakeReply, fake: () => FakeEtcd) => void, RegExp]> = [
    [
      "the stream ends",
      (reply) => {
        reply.message(CREATED);
        reply.end();
      },
      /: the watch stream ended$/,
    ],
    [
      "etcd cancels for a compaction (and keeps the stream open)",
      (reply) => {
        reply.message(CREATED);
        reply.message(new ProtoWriter().message(1, header(9)).bool(4, true).int64(5, 5).finish());
      },
      /: watch canceled: the revision asked for is compacted \(compact revision 5\)$/,
    ],
    [
      "the stream ends with an error status",
      (reply) => {
        reply.message(CREATED);
        setTimeout(() => reply.end(14, "etcdserver: no leader"), 20);
      },
      /: Watch\/Watch: etcdserver: no leader \(UNAVAILABLE\)$/,
    ],
    [
      "garbage comes in the stream",
      (reply) => {
        reply.message(CREATED);
        reply.message(b("0a 05 01"));
      },
      /: unreadable watch message: protobuf length runs past the end of the message$/,
    ],
    [
      "the connection is cut",
      (reply, fake) => {
        reply.message(CREATED);
        setTimeout(() => fake().dropConnections(), 20);
      },
      /: the connection closed$/,
    ],
  ];
  for (const [what, stream, reason] of breaks) {
    it(`calls onBroken exactly once when ${what}`, async () => {
      const fake = await watchEtcd(stream);
      const client = await store(fake.endpoint);
      const { seen, handlers } = recorder();
      const watch = await client.watchPrefix("/p/", 1n, handlers);
      await waitUntil("onBroken", () => seen.length > 0);
      await sleep(100);
      assert.equal(seen.length, 1, seen.join("\n"));
      assert.match(seen[0]!, new RegExp(`^broken: etcd at ${escapeRegExp(fake.endpoint)}`));
      assert.match(seen[0]!, reason);
      await watch.close();
      client.close();
    });
  }

  it("calls onBroken once when the peer stops answering HTTP/2 PING, and connects anew after", async () => {
    const fake = await watchEtcd((reply) => reply.message(CREATED));
    const relay = await FreezableRelay.start(fake.endpoint);
    fakes.push(relay);
    const grpc = new EtcdGrpc({
      endpoints: [relay.endpoint],
      ca: undefined,
      cert: undefined,
      key: undefined,
      username: undefined,
      password: undefined,
      callTimeoutMs: 1000,
      pingIntervalMs: 100,
      pingTimeoutMs: 300,
    });
    const { seen, handlers } = recorder();
    const create = { key: "/p/", rangeEnd: prefixRangeEnd("/p/"), startRevision: 1n, progressNotify: true };
    const watch = await openWatch(grpc, create, handlers);
    await sleep(400); // answered PINGs keep it alive
    assert.deepEqual(seen, []);
    relay.freeze();
    await waitUntil("onBroken", () => seen.length > 0, 2000);
    await sleep(300);
    assert.deepEqual(seen, [`broken: etcd at ${relay.endpoint}: no answer to an HTTP/2 PING within 300 ms`]);
    await watch.close();
    grpc.close();
  });

  it("asks for a leader, and lists elsewhere after a member ends the watch for having none", async () => {
    let end: FakeReply | undefined;
    const cutOff = await watchEtcd((reply) => {
      reply.message(CREATED);
      end = reply;
    });
    const healthy = await watchEtcd((reply) => reply.message(CREATED));
    const client = await EtcdStore.connect({
      endpoints: [cutOff.endpoint, healthy.endpoint],
      caFile: undefined,
      certFile: undefined,
      keyFile: undefined,
      username: undefined,
      password: undefined,
      callTimeoutMs: 1000,
    });
    const { seen, handlers } = recorder();
    const watch = await client.watchPrefix("/p/", 8n, handlers);
    assert.equal(cutOff.calls[0]?.hasLeader, "true");
    // What etcd does once it has had no leader for three election timeouts (ErrGRPCNoLeader).
    end!.end(14, "etcdserver: no leader");
    await waitUntil("onBroken", () => seen.length > 0);
    assert.deepEqual(seen, [
      `broken: etcd at ${cutOff.endpoint}: Watch/Watch: etcdserver: no leader (UNAVAILABLE)`,
    ]);
    await client.list("/p/");
    const again = await client.watchPrefix("/p/", 8n, handlers);
    assert.deepEqual(cutOff.methods(), ["Watch/Watch"], "nothing more to the member without a leader");
    assert.deepEqual(healthy.methods(), ["KV/Range", "Watch/Watch"]);
    await watch.close();
    await again.close();
    client.close();
  });

  it("calls onBroken when the stream stays silent too long", async () => {
    const fake = await watchEtcd((reply) => reply.message(CREATED));
    const grpc = new EtcdGrpc({
      endpoints: [fake.endpoint],
      ca: undefined,
      cert: undefined,
      key: undefined,
      username: undefined,
      password: undefined,
      callTimeoutMs: 1000,
    });
    const { seen, handlers } = recorder();
    const create = { key: "/p/", rangeEnd: prefixRangeEnd("/p/"), startRevision: 1n, progressNotify: true };
    const watch = await openWatch(grpc, create, handlers, 150);
    await waitUntil("onBroken", () => seen.length > 0);
    assert.match(seen[0]!, /nothing from the watch stream for 150 ms$/);
    await watch.close();
    grpc.close();
  });

  it("calls nothing after close()", async () => {
    let later: FakeReply | undefined;
    const fake = await watchEtcd((reply) => {
      later = reply;
      reply.message(CREATED);
    });
    const client = await store(fake.endpoint);
    const { seen, handlers } = recorder();
    const watch = await client.watchPrefix("/p/", 1n, handlers);
    await watch.close();
    later?.message(events(putEvent("/p/a", "1", 2)));
    later?.end(14, "gone");
    fake.dropConnections();
    await sleep(100);
    assert.deepEqual(seen, []);
    // The store still works for other calls.
    assert.equal(await client.get("/p/a"), undefined);
    client.close();
  });

  it("rejects (and calls no handler) when the watch cannot be created", async () => {
    const refused = await FakeEtcd.refusedEndpoint();
    const { seen, handlers } = recorder();
    const down = await store(refused);
    await assert.rejects(down.watchPrefix("/p/", 1n, handlers), {
      message: `etcd at ${refused}: connection refused`,
    });
    down.close();

    const failing = await watchEtcd((reply) => reply.fail(14, "etcdserver: no leader"));
    const noLeader = await store(failing.endpoint);
    await assert.rejects(
      noLeader.watchPrefix("/p/", 1n, handlers),
      /Watch\/Watch: etcdserver: no leader \(UNAVAILABLE\)$/,
    );
    noLeader.close();

    // Headers out, then nothing: the stream is open but never confirmed.
    const silent = await watchEtcd((reply) => reply.raw(Buffer.alloc(0)));
    const mute = await store(silent.endpoint);
    await assert.rejects(mute.watchPrefix("/p/", 1n, handlers), /no watch confirmation within 1000 ms$/);
    mute.close();

    const permission = await watchEtcd((reply) =>
      reply.message(
        new ProtoWriter()
          .int64(2, -1)
          .bool(3, true)
          .bool(4, true)
          .bytesField(6, "etcdserver: permission denied")
          .finish(),
      ),
    );
    const denied = await store(permission.endpoint);
    await assert.rejects(
      denied.watchPrefix("/p/", 1n, handlers),
      /: watch canceled: etcdserver: permission denied$/,
    );
    denied.close();
    assert.deepEqual(seen, []);
  });

  it("authenticates again when etcd refuses the watch's token", async () => {
    let tokens = 0;
    const fake = await FakeEtcd.start((call, reply) => {
      if (call.method === "Auth/Authenticate") {
        tokens += 1;
        reply.message(new ProtoWriter().message(1, header(1)).bytesField(2, `tok${tokens}`).finish());
        return reply.end();
      }
      if (call.token === "tok1") {
        // As etcd 3.4: created and canceled at once, with the reason.
        const reason = "rpc error: code = Unauthenticated desc = etcdserver: invalid auth token";
        return reply.message(
          new ProtoWriter().int64(2, -1).bool(3, true).bool(4, true).bytesField(6, reason).finish(),
        );
      }
      if (call.token === "tok2") return reply.fail(16, "etcdserver: invalid auth token");
      reply.message(CREATED);
      reply.message(events(putEvent("/p/a", "1", 2)));
    });
    fakes.push(fake);
    const client = await store(fake.endpoint, { username: "root", password: "s3cret" });
    const { seen, handlers } = recorder();
    // tok1 is refused in the stream, tok2 by status: one retry only, so this watch fails.
    await assert.rejects(client.watchPrefix("/p/", 1n, handlers), /invalid auth token/);
    // The next starts with tok2, is refused, authenticates again and gets through.
    const watch = await client.watchPrefix("/p/", 1n, handlers);
    await waitUntil("the event", () => seen.length === 1);
    assert.deepEqual(seen, ["put /p/a=1@2 lease 0"]);
    assert.deepEqual(
      fake.calls.map((c) => `${c.method} ${c.token ?? "-"}`),
      [
        "Auth/Authenticate -",
        "Watch/Watch tok1",
        "Auth/Authenticate -",
        "Watch/Watch tok2",
        "Watch/Watch tok2",
        "Auth/Authenticate -",
        "Watch/Watch tok3",
      ],
    );
    await watch.close();
    client.close();
  });
});
