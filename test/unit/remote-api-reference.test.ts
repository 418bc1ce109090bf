/**
 * The client/server REST API against flanneld v0.7.0's own traffic (test/fixtures/reference/flanneld-v0.7.0/
 * *-wire.txt): every body v0.7's server and clients sent is decoded and encoded again by weft, byte for
 * byte; the config with defaults; the server's event log answering long polls as v0.7 did.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { parseNetworkConfig } from "../../src/config/network-config.js";
import { decodeLeaseAttrs } from "../../src/lease/lease-json.js";
import { LeaseEventLog } from "../../src/server/lease-event-log.js";
import { parseListenTarget } from "../../src/server/remote-server.js";
import type { StoreFlags } from "../../src/subnet/registry.js";
import { openRemoteStore } from "../../src/subnet/remote/open-remote-subnet-manager.js";
import {
  type ApiLease,
  decodeApiLease,
  decodeWatchAnswer,
  encodeApiAttrs,
  encodeApiConfig,
  encodeApiLease,
  encodeNetworksAnswer,
  encodeWatchAnswer,
  formatGoTime,
} from "../../src/subnet/remote/remote-json.js";
import { UserError } from "../../src/user-error.js";
import { type HttpMessage, wireMessages } from "../helpers/wire-transcript.js";

const WIRE_FILES = [
  "client-server-wire.txt",
  "client-server-restart-wire.txt",
  "multi-network-client-server-wire.txt",
];
const all = WIRE_FILES.flatMap((f) => wireMessages(f).map((m) => ({ ...m, file: f })));
const header = (m: HttpMessage, name: string) => m.headers.find(([k]) => k === name)?.[1];

describe("v0.7 REST bodies, re-encoded byte for byte", () => {
  it("parses the transcripts (every segment's size checks out)", () => {
    assert.ok(all.filter((m) => m.from === "server").length > 50);
    assert.ok(all.filter((m) => m.from === "client").length > 50);
  });

  it("server answers: leases, watch answers (snapshots and events), networks lists", () => {
    let leases = 0;
    let watches = 0;
    let networks = 0;
    for (const m of all.filter((x) => x.from === "server" && x.startLine === "HTTP/1.1 200 OK")) {
      assert.equal(header(m, "Content-Length"), String(Buffer.byteLength(m.body)));
      if (m.body.startsWith('{"Subnet"')) {
        assert.equal(`${encodeApiLease(decodeApiLease(JSON.parse(m.body)))}\n`, m.body);
        leases++;
      } else if (m.body.startsWith('{"events"')) {
        const parsed = JSON.parse(m.body) as {
          snapshot: unknown[] | null;
          events: Array<{ network?: string }> | null;
        };
        if (parsed.snapshot?.every((s) => typeof s === "string")) {
          assert.equal(
            `${encodeNetworksAnswer(parsed.snapshot as string[], JSON.parse(m.body).cursor)}\n`,
            m.body,
          );
          networks++;
        } else if (parsed.events?.some((e) => e.network !== undefined)) {
          networks++; // a network event: checked below
        } else {
          assert.equal(`${encodeWatchAnswer(decodeWatchAnswer(m.body))}\n`, m.body);
          watches++;
        }
      }
    }
    assert.ok(
      leases >= 10 && watches >= 30 && networks >= 3,
      `${leases} leases, ${watches} watches, ${networks} networks`,
    );
  });

  it("a removed lease is sent as v0.7 does: its subnet, zero attrs, zero time", () => {
    const removed = all.find((m) => m.body.includes('"type":"removed"'));
    assert.ok(removed);
    const answer = decodeWatchAnswer(removed.body);
    assert.ok(answer.events);
    assert.equal(answer.events[0]!.lease.lease.attrs.publicIP, undefined);
    assert.equal(`${encodeWatchAnswer(answer)}\n`, removed.body);
  });

  it("client requests: POST bodies are v0.7's LeaseAttrs, PUT bodies the lease with its expiration", () => {
    let posts = 0;
    let puts = 0;
    for (const m of all.filter((x) => x.from === "client")) {
      if (m.startLine.startsWith("POST ")) {
        assert.match(m.startLine, /^POST \/v1\/[a-z_]+\/leases HTTP\/1\.1$/);
        assert.equal(header(m, "Content-Type"), "application/json");
        assert.equal(encodeApiAttrs(decodeLeaseAttrs(m.body)), m.body);
        posts++;
      } else if (m.startLine.startsWith("PUT ")) {
        const lease = decodeApiLease(JSON.parse(m.body));
        assert.equal(m.startLine, `PUT /v1/_/leases/${lease.lease.key} HTTP/1.1`);
        assert.equal(encodeApiLease(lease), m.body);
        puts++;
      } else {
        assert.match(
          m.startLine,
          /^GET \/v1\/([a-z_]+\/(config|reservations|leases(\/[0-9.]+-\d+)?)(\?next=\w+)?)?(\?next=\d+)? HTTP\/1\.1$/,
        );
      }
    }
    assert.ok(posts >= 5 && puts >= 2);
  });

  it("GET config: the stored config with v0.7's defaults filled in", () => {
    const cases = [
      ['{"Network":"10.66.0.0/16","Backend":{"Type":"vxlan"}}', "GET /v1/_/config"],
      ['{"Network":"10.60.0.0/16","Backend":{"Type":"vxlan","VNI":6}}', "GET /v1/cyan/config"],
    ] as const;
    for (const [stored, request] of cases) {
      const i = all.findIndex((m) => m.startLine.startsWith(request));
      const answer = all.slice(i).find((m) => m.from === "server" && m.conn === all[i]!.conn);
      assert.ok(answer, request);
      assert.equal(`${encodeApiConfig(parseNetworkConfig(stored))}\n`, answer.body);
    }
  });

  it("errors: 500 text bodies without a newline, as v0.7", () => {
    const errors = all.filter((m) => m.startLine === "HTTP/1.1 500 Internal Server Error");
    const bodies = errors.map((m) => m.body);
    assert.ok(bodies.includes("100: Key not found (/coreos.com/network/nosuch) [1063]"));
    assert.ok(bodies.includes('failed to parse cursor: strconv.ParseUint: parsing "abc": invalid syntax'));
    for (const m of errors) {
      assert.deepEqual(
        m.headers.map(([k]) => k),
        ["Date", "Content-Length", "Content-Type"],
      );
      assert.equal(header(m, "Content-Type"), "text/plain; charset=utf-8");
    }
  });

  it("a lease with Go's zero time is a reservation (never renewed)", () => {
    const reserved = decodeApiLease({
      Subnet: "10.66.5.0/24",
      Attrs: { PublicIP: "172.29.0.9" },
      Expiration: "0001-01-01T00:00:00Z",
    });
    assert.equal(reserved.lease.reservation, true);
    assert.equal(
      decodeApiLease({ Subnet: "10.66.5.0/24", Attrs: {}, Expiration: "2026-12-02T11:15:17.9Z" }).lease
        .reservation,
      false,
    );
  });

  it("times as Go writes them", () => {
    assert.equal(formatGoTime(new Date("2026-12-02T11:15:17.925Z")), "2026-12-02T11:15:17.925Z");
    assert.equal(formatGoTime(new Date("2026-12-02T11:15:17.900Z")), "2026-12-02T11:15:17.9Z");
    assert.equal(formatGoTime(new Date("2026-12-02T11:15:10.000Z")), "2026-12-02T11:15:10Z");
  });
});

function lease(subnet: string, ip: string): ApiLease {
  return decodeApiLease({
    Subnet: subnet,
    Attrs: { PublicIP: ip, BackendType: "vxlan" },
    Expiration: "2026-12-02T00:00:00Z",
  });
}

describe("the server's event log (one etcd watch for every long poll)", () => {
  it("answers a snapshot first, then each event after the cursor, and waits when there is none", () => {
    const log = new LeaseEventLog();
    log.replaceAll([lease("10.66.49.0/24", "172.29.0.1")], 1060n);
    const first = log.answer(undefined);
    assert.deepEqual(
      first?.snapshot?.map((l) => l.lease.key),
      ["10.66.49.0-24"],
    );
    assert.equal(first?.cursor, "1060");
    assert.equal(log.answer(1060n), undefined, "nothing new: the long poll waits");
    let woken = 0;
    const stop = log.onChange(() => woken++);
    log.put(lease("10.66.1.0/24", "172.29.0.2"), 1061n);
    stop();
    assert.equal(woken, 1);
    const next = log.answer(1060n);
    assert.equal(next?.cursor, "1061");
    assert.equal(next?.events?.[0]?.type, "added");
    assert.equal(next?.events?.[0]?.lease.lease.key, "10.66.1.0-24");
    log.remove("10.66.1.0-24", 1064n);
    assert.equal(
      encodeWatchAnswer(log.answer(1061n)!),
      '{"events":[{"type":"removed","lease":{"Subnet":"10.66.1.0/24","Attrs":{"PublicIP":"0.0.0.0"},"Expiration":"0001-01-01T00:00:00Z"}}],"snapshot":null,"cursor":"1064"}',
    );
    // One lease's watch sees only that lease's events.
    assert.equal(log.answer(1060n, "10.66.49.0-24"), undefined);
    assert.equal(log.answer(1060n, "10.66.1.0-24")?.cursor, "1061");
  });

  it("a cursor older than the log (or from the future) gets a fresh snapshot, as v0.7 past etcd's window", () => {
    const log = new LeaseEventLog(2);
    log.replaceAll([], 100n);
    log.put(lease("10.66.1.0/24", "172.29.0.1"), 101n);
    log.put(lease("10.66.2.0/24", "172.29.0.2"), 102n);
    log.put(lease("10.66.3.0/24", "172.29.0.3"), 103n);
    assert.equal(log.answer(101n)?.events?.[0]?.lease.lease.key, "10.66.2.0-24", "still in the log");
    const old = log.answer(5n);
    assert.equal(old?.snapshot?.length, 3);
    assert.equal(old?.cursor, "103");
    assert.equal(log.answer(999n)?.snapshot?.length, 3);
  });

  it("a re-list after a broken watch turns the difference into events at one revision, sent together", () => {
    const log = new LeaseEventLog();
    log.replaceAll([lease("10.66.1.0/24", "172.29.0.1"), lease("10.66.2.0/24", "172.29.0.2")], 10n);
    log.replaceAll([lease("10.66.2.0/24", "172.29.0.2"), lease("10.66.3.0/24", "172.29.0.3")], 20n);
    const answer = log.answer(10n);
    assert.deepEqual(
      answer?.events?.map((e) => `${e.type} ${e.lease.lease.key}`),
      ["removed 10.66.1.0-24", "added 10.66.3.0-24"],
    );
    assert.equal(answer?.cursor, "20");
  });
});

describe("--listen", () => {
  it("takes host:port, [v6]:port, :port and fd:// (systemd's socket, fd 3)", () => {
    assert.deepEqual(parseListenTarget("172.29.0.254:8888", {}), { host: "172.29.0.254", port: 8888 });
    assert.deepEqual(parseListenTarget("[fd00::1]:8888", {}), { host: "fd00::1", port: 8888 });
    assert.deepEqual(parseListenTarget(":8080", {}), { host: "0.0.0.0", port: 8080 });
    assert.deepEqual(parseListenTarget("fd://", { LISTEN_PID: "42", LISTEN_FDS: "1" }, 42), { fd: 3 });
    assert.throws(
      () => parseListenTarget("fd://", { LISTEN_PID: "41", LISTEN_FDS: "1" }, 42),
      /needs a socket from systemd/,
    );
    assert.throws(() => parseListenTarget("nohost", {}), /is not host:port or fd:\/\//);
    assert.throws(() => parseListenTarget("h:99999", {}), /is not host:port/);
  });
});

describe("--remote flags", () => {
  const flagsOf = (values: Record<string, string | number>): StoreFlags => ({
    string: (n) => String(values[n] ?? ""),
    int: (n) => Number(values[n] ?? 60),
    bool: () => false,
  });
  const context = (values: Record<string, string | number>) => ({
    flags: flagsOf(values),
    env: {},
    log: () => undefined,
    logError: () => undefined,
  });

  it("one error naming the flag for a bad address, margin or TLS pair", async () => {
    await assert.rejects(openRemoteStore(context({ remote: "http://10.0.0.1:8888" })), (err: Error) => {
      assert.ok(err instanceof UserError);
      assert.match(err.message, /^--remote=http:\/\/10\.0\.0\.1:8888 is not host:port$/);
      return true;
    });
    await assert.rejects(
      openRemoteStore(context({ remote: "10.0.0.1:8888", "subnet-lease-renew-margin": 0 })),
      /--subnet-lease-renew-margin 0 is out of range/,
    );
    await assert.rejects(
      openRemoteStore(context({ remote: "10.0.0.1:8888", "remote-cafile": "/nonexistent/ca.pem" })),
      /cannot read --remote-cafile \/nonexistent\/ca\.pem/,
    );
    const manager = await openRemoteStore(context({ remote: "10.0.0.1:8888" }), "blue");
    assert.equal(manager.name, "remote");
    await manager.close();
  });
});
