/** The streaming watch against a fake gateway: order, chunking, and exactly one onBroken on any failure. */
import assert from "node:assert/strict";
import type { ServerResponse } from "node:http";
import { after, describe, it } from "node:test";
import { EtcdHttp } from "../../src/subnet/etcd/etcd-http.js";
import { EtcdStore } from "../../src/subnet/etcd/etcd-store.js";
import { LineSplitter, openWatch, type PrefixWatchHandlers } from "../../src/subnet/etcd/etcd-watch.js";
import { answerError, answerJson, FakeGateway, type FakeRequest, HEADER } from "./etcd-fake-gateway.js";

const b64 = (text: string) => Buffer.from(text).toString("base64");
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const line = (result: unknown) =>
  `${JSON.stringify({ result: { header: HEADER, ...(result as object) } })}\n`;
const CREATED = line({ created: true });
const put = (key: string, value: string, rev: number) => ({
  kv: {
    key: b64(key),
    create_revision: String(rev),
    mod_revision: String(rev),
    version: "1",
    value: b64(value),
  },
});
const del = (key: string, rev: number) => ({
  type: "DELETE",
  kv: { key: b64(key), mod_revision: String(rev) },
});

const gateways: FakeGateway[] = [];
after(async () => {
  for (const gateway of gateways) await gateway.stop();
});

/** A gateway whose /v3/watch answers are written by `stream`. */
async function watchGateway(
  stream: (response: ServerResponse, request: FakeRequest) => void,
): Promise<FakeGateway> {
  const gateway = await FakeGateway.start((request, response) => {
    if (request.path !== "/v3/watch") return answerJson(response, 200, { header: HEADER });
    response.writeHead(200, { "content-type": "application/json" });
    stream(response, request);
  });
  gateways.push(gateway);
  return gateway;
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

async function store(endpoint: string): Promise<EtcdStore> {
  return EtcdStore.connect({
    endpoints: [endpoint],
    caFile: undefined,
    certFile: undefined,
    keyFile: undefined,
    username: undefined,
    password: undefined,
    callTimeoutMs: 1000,
  });
}

describe("LineSplitter", () => {
  it("splits at newlines across chunks, keeping a multi-byte character split between chunks whole", () => {
    const splitter = new LineSplitter();
    const text = Buffer.from('{"a":"ü"}\n{"b":2}\n\n{"c"', "utf8");
    const cut = text.indexOf(0xbc); // inside "ü" (0xc3 0xbc)
    assert.deepEqual(splitter.push(text.subarray(0, cut)), []);
    assert.deepEqual(splitter.push(text.subarray(cut)), ['{"a":"ü"}', '{"b":2}']);
    assert.deepEqual(splitter.push(Buffer.from(":3}\n")), ['{"c":3}']);
  });
});

describe("watchPrefix", () => {
  it("asks for the prefix from the revision and delivers puts and deletes in order, however chunked", async () => {
    const fake = await watchGateway((response) => {
      const all =
        CREATED +
        line({ events: [put("/p/a", "1", 8), del("/p/b", 9)] }) +
        line({}) + // progress notification
        line({
          events: [
            { ...put("/p/c", "3", 10), kv: { ...put("/p/c", "3", 10).kv, lease: "7587880429463148041" } },
          ],
        });
      // Dribble it out in 7-byte pieces.
      let at = 0;
      const timer = setInterval(() => {
        if (at >= all.length) return clearInterval(timer);
        response.write(all.slice(at, at + 7));
        at += 7;
      }, 1);
    });
    const client = await store(fake.endpoint);
    const { seen, handlers } = recorder();
    const watch = await client.watchPrefix("/p/", 8n, handlers);
    await waitUntil("3 events", () => seen.length === 3);
    assert.deepEqual(seen, [
      "put /p/a=1@8 lease 0",
      "delete /p/b@9",
      "put /p/c=3@10 lease 7587880429463148041",
    ]);
    assert.deepEqual(fake.requests[0]!.body, {
      create_request: { key: b64("/p/"), range_end: b64("/p0"), start_revision: "8", progress_notify: true },
    });
    await watch.close();
    client.close();
  });

  const breaks: Array<[string, (response: ServerResponse, fake: () => FakeGateway) => void, RegExp]> = [
    ["the stream ends", (response) => response.end(CREATED), /: the watch stream ended$/],
    [
      "etcd cancels for a compaction (and keeps the stream open)",
      (response) => response.write(CREATED + line({ canceled: true, compact_revision: "5" })),
      /: watch canceled: the revision asked for is compacted \(compact revision 5\)$/,
    ],
    [
      "an error object comes in the stream",
      (response) => response.write(`${CREATED}{"error":{"grpc_code":14,"message":"transport is closing"}}\n`),
      /: transport is closing$/,
    ],
    [
      "garbage comes in the stream",
      (response) => response.write(`${CREATED}<html>\n`),
      /unreadable watch message/,
    ],
    [
      "the connection is cut",
      (response, fake) => {
        response.write(CREATED);
        setTimeout(() => fake().dropConnections(), 20);
      },
      /: (the watch connection closed|connection reset|aborted)$/,
    ],
  ];
  for (const [what, stream, reason] of breaks) {
    it(`calls onBroken exactly once when ${what}`, async () => {
      let fake: FakeGateway | undefined;
      fake = await watchGateway((response) => stream(response, () => fake!));
      const client = await store(fake.endpoint);
      const { seen, handlers } = recorder();
      const watch = await client.watchPrefix("/p/", 1n, handlers);
      await waitUntil("onBroken", () => seen.length > 0);
      await sleep(100);
      assert.equal(seen.length, 1, seen.join("\n"));
      assert.match(seen[0]!, new RegExp(`^broken: etcd at ${fake.endpoint.replace(/\./g, "\\.")}`));
      assert.match(seen[0]!, reason);
      await watch.close();
      client.close();
    });
  }

  it("calls onBroken when the stream stays silent too long", async () => {
    const fake = await watchGateway((response) => response.write(CREATED));
    const http = await EtcdHttp.create({
      endpoints: [fake.endpoint],
      ca: undefined,
      cert: undefined,
      key: undefined,
      username: undefined,
      password: undefined,
      callTimeoutMs: 1000,
    });
    const { seen, handlers } = recorder();
    const request = { key: b64("/p/"), range_end: b64("/p0"), start_revision: "1", progress_notify: true };
    const watch = await openWatch(http, request, handlers, 150);
    await waitUntil("onBroken", () => seen.length > 0);
    assert.match(seen[0]!, /nothing from the watch stream for 150 ms$/);
    await watch.close();
    http.close();
  });

  it("calls nothing after close()", async () => {
    let respond: ServerResponse | undefined;
    const fake = await watchGateway((response) => {
      respond = response;
      response.write(CREATED);
    });
    const client = await store(fake.endpoint);
    const { seen, handlers } = recorder();
    const watch = await client.watchPrefix("/p/", 1n, handlers);
    await watch.close();
    respond?.end(line({ events: [put("/p/a", "1", 2)] }));
    fake.dropConnections();
    await sleep(100);
    assert.deepEqual(seen, []);
    client.close();
  });

  it("rejects (and calls no handler) when the watch cannot be created", async () => {
    const refused = await FakeGateway.refusedEndpoint();
    const { seen, handlers } = recorder();
    const down = await store(refused);
    await assert.rejects(down.watchPrefix("/p/", 1n, handlers), {
      message: `etcd at ${refused}: connection refused`,
    });
    down.close();

    const failing = await FakeGateway.start((_request, response) =>
      answerError(response, 503, 14, "etcdserver: no leader"),
    );
    gateways.push(failing);
    const noLeader = await store(failing.endpoint);
    await assert.rejects(noLeader.watchPrefix("/p/", 1n, handlers), /\/v3\/watch: etcdserver: no leader$/);
    noLeader.close();

    // Headers out, then nothing: the stream is open but never confirmed.
    const silent = await watchGateway((response) => response.flushHeaders());
    const mute = await store(silent.endpoint);
    await assert.rejects(mute.watchPrefix("/p/", 1n, handlers), /no watch confirmation within 1000 ms$/);
    mute.close();
    assert.deepEqual(seen, []);
  });

  it("authenticates again when etcd refuses the watch's token", async () => {
    let tokens = 0;
    const fake = await FakeGateway.start((request, response) => {
      if (request.path === "/v3/auth/authenticate") {
        tokens += 1;
        return answerJson(response, 200, { header: HEADER, token: `tok${tokens}` });
      }
      response.writeHead(200, { "content-type": "application/json" });
      if (request.authorization !== "tok2") {
        const reason = "rpc error: code = Unauthenticated desc = etcdserver: invalid auth token";
        return void response.write(
          line({ watch_id: "-1", created: true, canceled: true, cancel_reason: reason }),
        );
      }
      response.write(CREATED + line({ events: [put("/p/a", "1", 2)] }));
    });
    gateways.push(fake);
    const client = await EtcdStore.connect({
      endpoints: [fake.endpoint],
      caFile: undefined,
      certFile: undefined,
      keyFile: undefined,
      username: "root",
      password: "s3cret",
      callTimeoutMs: 1000,
    });
    const { seen, handlers } = recorder();
    const watch = await client.watchPrefix("/p/", 1n, handlers);
    await waitUntil("the event", () => seen.length === 1);
    assert.deepEqual(seen, ["put /p/a=1@2 lease 0"]);
    assert.deepEqual(
      fake.requests.map((r) => `${r.path} ${r.authorization ?? "-"}`),
      ["/v3/auth/authenticate -", "/v3/watch tok1", "/v3/auth/authenticate -", "/v3/watch tok2"],
    );
    await watch.close();
    client.close();
  });
});
