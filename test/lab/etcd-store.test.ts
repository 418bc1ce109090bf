/**
 * EtcdStore against a real etcd in the lab. The store runs in the fabric namespace (where etcd listens)
 * through etcd-store-driver.js, which prints one JSON line per step and per watch event.
 */
import assert from "node:assert/strict";
import { writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import type { EtcdConnectionOptions } from "../../src/subnet/etcd/etcd-store.js";
import type { DriverInput, DriverLine, DriverStep } from "./etcd-store-driver.js";
import { type Lab, withLab } from "./lab.js";
import { makePki, TLS_ETCD_URL, tlsEtcdArgv, tlsEtcdctlFlags } from "./lab-pki.js";
import { waitFor } from "./weft-cluster.js";

const DRIVER = join(dirname(fileURLToPath(import.meta.url)), "etcd-store-driver.js");
const ETCD = "http://172.31.0.254:2379";

function connectOptions(
  endpoints: string[],
  extra: Partial<EtcdConnectionOptions> = {},
): EtcdConnectionOptions {
  return {
    endpoints,
    caFile: undefined,
    certFile: undefined,
    keyFile: undefined,
    username: undefined,
    password: undefined,
    callTimeoutMs: 3000,
    ...extra,
  };
}

function parseLines(stdout: string): DriverLine[] {
  return stdout
    .split("\n")
    .filter((l) => l.trim() !== "")
    .map((l) => JSON.parse(l) as DriverLine);
}

/** Runs the driver to its end in the fabric; fails with its output if it did not exit 0. */
async function drive(lab: Lab, connect: EtcdConnectionOptions, steps: DriverStep[]): Promise<DriverLine[]> {
  const input: DriverInput = { connect, steps };
  const result = await lab.exec(lab.fabric, [process.execPath, DRIVER, JSON.stringify(input)], {
    timeoutMs: 60_000,
  });
  assert.equal(result.code, 0, `driver failed:\n${result.stdout}\n${result.stderr}`);
  return parseLines(result.stdout);
}

/** The result of step i, failing with every line if that step failed. */
function resultOf(lines: DriverLine[], step: number): unknown {
  const line = lines.find((l) => "step" in l && l.step === step);
  assert.ok(line && "step" in line, `no line for step ${step}:\n${JSON.stringify(lines, null, 1)}`);
  assert.ok(!("error" in line), `step ${step} (${line.op}) failed: ${"error" in line ? line.error : ""}`);
  return (line as { result: unknown }).result;
}

function errorOf(lines: DriverLine[], step: number): string {
  const line = lines.find((l) => "step" in l && l.step === step);
  assert.ok(line && "error" in line, `step ${step} did not fail:\n${JSON.stringify(line)}`);
  return line.error;
}

const watchLines = (lines: DriverLine[]) => lines.filter((l) => "watch" in l);

describe("EtcdStore against etcd 3.4", { timeout: 180_000 }, () => {
  it("puts, gets and lists with the revision; leases; create-if-absent; delete", async () => {
    await withLab({ hosts: 1, tag: "store" }, async (lab) => {
      await lab.startEtcd();
      const lines = await drive(lab, connectOptions([ETCD]), [
        /* 0 */ { op: "put", key: "/p/a", value: "välue a", lease: "0" },
        /* 1 */ { op: "get", key: "/p/a" },
        /* 2 */ { op: "get", key: "/p/missing" },
        /* 3 */ { op: "grant", ttl: 600 },
        /* 4 */ { op: "create", key: "/p/b", value: "b", lease: "$lease" },
        /* 5 */ { op: "create", key: "/p/b", value: "other", lease: "0" },
        /* 6 */ { op: "put", key: "/p0", value: "outside the prefix", lease: "0" },
        /* 7 */ { op: "put", key: "/p/empty", value: "", lease: "0" },
        /* 8 */ { op: "list", prefix: "/p/" },
        /* 9 */ { op: "delete", key: "/p/a" },
        /* 10 */ { op: "get", key: "/p/a" },
        /* 11 */ { op: "list", prefix: "/p/" },
        /* 12 */ { op: "list", prefix: "/nothing/" },
        /* 13 */ { op: "putIfValue", key: "/p/b", expected: "b", value: "b2", lease: "$lease" },
        /* 14 */ { op: "putIfValue", key: "/p/b", expected: "b", value: "b3", lease: "0" },
        /* 15 */ { op: "putIfValue", key: "/p/a", expected: "", value: "a2", lease: "0" },
        /* 16 */ { op: "getStored", key: "/p/b" },
        /* 17 */ { op: "getStored", key: "/p/a" },
      ]);
      assert.equal(resultOf(lines, 1), "välue a");
      assert.equal(resultOf(lines, 2), null);
      const lease = resultOf(lines, 3) as string;
      assert.match(lease, /^[1-9]\d*$/, "a lease ID as a decimal string");
      assert.equal(resultOf(lines, 4), true, "created when absent");
      assert.equal(resultOf(lines, 5), false, "not created when present");
      assert.deepEqual(resultOf(lines, 8), {
        values: [
          { key: "/p/a", value: "välue a", modRevision: "2", createRevision: "2", leaseId: "0" },
          { key: "/p/b", value: "b", modRevision: "3", createRevision: "3", leaseId: lease },
          { key: "/p/empty", value: "", modRevision: "5", createRevision: "5", leaseId: "0" },
        ],
        revision: "5",
      });
      assert.equal(resultOf(lines, 10), null, "deleted");
      assert.deepEqual(
        (resultOf(lines, 11) as { values: { key: string }[] }).values.map((v) => v.key),
        ["/p/b", "/p/empty"],
      );
      assert.deepEqual(resultOf(lines, 12), { values: [], revision: "6" });
      assert.equal(resultOf(lines, 13), true, "put while the value is as expected");
      assert.equal(resultOf(lines, 14), false, "not put once the value changed");
      assert.equal(resultOf(lines, 15), false, "not put when the key is gone");
      // An update keeps the create revision: the older of two claims to a subnet is the one created first.
      assert.deepEqual(resultOf(lines, 16), {
        key: "/p/b",
        value: "b2",
        modRevision: "7",
        createRevision: "3",
        leaseId: lease,
      });
      assert.equal(resultOf(lines, 17), null);
      // The lease ID is exact (they are above 2^53) and etcd attached it to the key.
      // etcdctl prints the lease as a bare JSON number, which JSON.parse would round: read the digits.
      const json = await lab.etcdctl(["get", "/p/b", "-w", "json"]);
      assert.equal(/"lease":(\d+)/.exec(json)?.[1], lease);
      const ttl = await lab.etcdctl(["lease", "timetolive", BigInt(lease).toString(16)]);
      assert.match(ttl, /remaining\(\d+s\)/, ttl);
    });
  });

  it("watches from a revision: puts and deletes in order; a compacted revision breaks it once", async () => {
    await withLab({ hosts: 1, tag: "storew" }, async (lab) => {
      await lab.startEtcd();
      await lab.etcdctl(["put", "/w/before", "1"]);
      const lines = await drive(lab, connectOptions([ETCD]), [
        /* 0 */ { op: "list", prefix: "/w/" },
        /* 1 */ { op: "watch", prefix: "/w/", from: "$next" },
        /* 2 */ { op: "etcdctl", endpoint: ETCD, args: ["put", "/w/x", "x1"] },
        /* 3 */ { op: "put", key: "/w/y", value: "y1", lease: "0" },
        /* 4 */ { op: "etcdctl", endpoint: ETCD, args: ["del", "/w/x"] },
        /* 5 */ { op: "etcdctl", endpoint: ETCD, args: ["put", "/wx", "not under the prefix"] },
        /* 6 */ { op: "etcdctl", endpoint: ETCD, args: ["put", "/w/y", "y2"] },
        /* 7 */ { op: "waitWatch", count: 4, timeoutMs: 5000 },
        /* 8 */ { op: "closeWatch" },
        /* 9 */ { op: "etcdctl", endpoint: ETCD, args: ["compact", "4"] },
        /* 10 */ { op: "watch", prefix: "/w/", from: "2" },
        /* 11 */ { op: "waitWatch", count: 5, timeoutMs: 5000 },
        /* 12 */ { op: "sleep", ms: 500 },
      ]);
      for (let step = 0; step <= 12; step++) resultOf(lines, step);
      assert.deepEqual(watchLines(lines), [
        { watch: "put", key: "/w/x", value: "x1", modRevision: "3", leaseId: "0" },
        { watch: "put", key: "/w/y", value: "y1", modRevision: "4", leaseId: "0" },
        { watch: "delete", key: "/w/x", revision: "5" },
        { watch: "put", key: "/w/y", value: "y2", modRevision: "7", leaseId: "0" },
        {
          watch: "broken",
          reason: `etcd at ${ETCD}: watch canceled: the revision asked for is compacted (compact revision 4)`,
        },
      ]);
    });
  });

  it("breaks a watch once when etcd stops, and fails calls at once while it is down", async () => {
    await withLab({ hosts: 1, tag: "storestop" }, async (lab) => {
      await lab.startEtcd();
      const input: DriverInput = {
        connect: connectOptions([ETCD]),
        steps: [
          /* 0 */ { op: "list", prefix: "/s/" },
          /* 1 */ { op: "watch", prefix: "/s/", from: "$next" },
          /* 2 */ { op: "say", text: "watching" },
          /* 3 */ { op: "waitWatch", count: 1, timeoutMs: 30_000 },
          // Nothing more may come from the broken watch.
          /* 4 */ { op: "sleep", ms: 1000 },
          /* 5 */ { op: "get", key: "/s/a" },
        ],
      };
      const driver = await lab.spawn(lab.fabric, [process.execPath, DRIVER, JSON.stringify(input)]);
      await driver.waitForOutput(/"say":"watching"/, 10_000);
      const stoppedAt = Date.now();
      await lab.stopEtcd();
      await driver.waitForOutput(/"watch":"broken"/, 10_000);
      const detectMs = Date.now() - stoppedAt;
      const status = await driver.exited;
      assert.equal(status.code, 0, driver.output());
      const lines = parseLines(driver.output());
      const broken = watchLines(lines);
      assert.equal(broken.length, 1, `exactly one break:\n${driver.output()}`);
      assert.match(
        (broken[0] as { reason: string }).reason,
        /^etcd at http:\/\/172\.31\.0\.254:2379: (the connection closed|the watch stream ended|connection reset|etcd closed the connection)/,
      );
      assert.ok(detectMs < 10_000, `noticed after ${detectMs} ms`);
      assert.equal(errorOf(lines, 5), "etcd at http://172.31.0.254:2379: connection refused");
    });
  });

  it("breaks a watch once within ~15 s when etcd stops answering (HTTP/2 PING), then reconnects", async () => {
    await withLab({ hosts: 1, tag: "storehang" }, async (lab) => {
      const etcd = await lab.startEtcd();
      const resumed = join(lab.tempDir, "resumed");
      const input: DriverInput = {
        connect: connectOptions([ETCD]),
        steps: [
          /* 0 */ { op: "list", prefix: "/h/" },
          /* 1 */ { op: "watch", prefix: "/h/", from: "$next" },
          /* 2 */ { op: "say", text: "watching" },
          /* 3 */ { op: "waitWatch", count: 1, timeoutMs: 30_000 },
          /* 4 */ { op: "say", text: "broken" },
          // etcd answers again: the dead session was dropped, so calls connect anew.
          /* 5 */ { op: "waitFile", path: resumed, timeoutMs: 30_000 },
          /* 6 */ { op: "put", key: "/h/a", value: "1", lease: "0" },
          /* 7 */ { op: "get", key: "/h/a" },
        ],
      };
      const driver = await lab.spawn(lab.fabric, [process.execPath, DRIVER, JSON.stringify(input)]);
      await driver.waitForOutput(/"say":"watching"/, 10_000);
      // A stopped process keeps its sockets: the kernel still acknowledges, nothing answers.
      process.kill(etcd.pid, "SIGSTOP");
      const stoppedAt = Date.now();
      try {
        await driver.waitForOutput(/"say":"broken"/, 25_000);
      } finally {
        process.kill(etcd.pid, "SIGCONT");
      }
      const detectMs = Date.now() - stoppedAt;
      await writeFile(resumed, "");
      const status = await driver.exited;
      assert.equal(status.code, 0, driver.output());
      const lines = parseLines(driver.output());
      const broken = watchLines(lines);
      assert.equal(broken.length, 1, `exactly one break:\n${driver.output()}`);
      assert.match(
        (broken[0] as { reason: string }).reason,
        /^etcd at http:\/\/172\.31\.0\.254:2379: no answer to an HTTP\/2 PING within 7 s$/,
      );
      assert.ok(detectMs < 17_000, `noticed after ${detectMs} ms`);
      assert.equal(resultOf(lines, 7), "1");
    });
  });

  it("fails a call at the deadline when nobody answers, and moves on to the next endpoint", async () => {
    await withLab({ hosts: 1, tag: "storedl" }, async (lab) => {
      await lab.startEtcd();
      // 172.31.0.200 is on the bridge's subnet but nobody has it: ARP gets no answer, so no error comes fast.
      const started = Date.now();
      const lines = await drive(lab, connectOptions(["http://172.31.0.200:2379"], { callTimeoutMs: 1000 }), [
        { op: "get", key: "/x" },
      ]);
      assert.equal(
        errorOf(lines, 0),
        "etcd at http://172.31.0.200:2379: no answer to KV/Range within 1000 ms",
      );
      assert.ok(Date.now() - started < 8000);
      const failover = await drive(lab, connectOptions(["http://172.31.0.254:2999", ETCD]), [
        { op: "put", key: "/f", value: "1", lease: "0" },
        { op: "get", key: "/f" },
      ]);
      assert.equal(resultOf(failover, 1), "1");
      // A username for an etcd without auth is no error (as with clientv3).
      const noAuth = await drive(lab, connectOptions([ETCD], { username: "root", password: "x" }), [
        { op: "get", key: "/f" },
      ]);
      assert.equal(resultOf(noAuth, 0), "1");
    });
  });

  it("talks TLS with a client certificate with a Common Name and a password, and authenticates again when the token expires", async () => {
    await withLab({ hosts: 1, tag: "storetls" }, async (lab) => {
      const pki = await makePki(lab.tempDir);
      const url = TLS_ETCD_URL;
      // Tokens die after 1 s unused: the store must authenticate again by itself.
      const etcd = await lab.spawn(lab.fabric, tlsEtcdArgv(pki, ["--auth-token-ttl=1"]));
      const tls = tlsEtcdctlFlags(pki);
      const ctl = (args: string[]) =>
        lab.run(lab.fabric, ["etcdctl", ...tls, ...args], { env: { ETCDCTL_API: "3" } });
      await waitFor(
        "etcd with TLS",
        async () => {
          const result = await lab.exec(lab.fabric, ["etcdctl", ...tls, "endpoint", "health"], {
            env: { ETCDCTL_API: "3" },
          });
          return result.code === 0;
        },
        15_000,
        200,
      ).catch((err: Error) => {
        throw new Error(`${err.message}\n${etcd.output()}`);
      });
      await ctl(["user", "add", "root:s3cret"]);
      await ctl(["auth", "enable"]);
      const secure = (extra: Partial<EtcdConnectionOptions>) =>
        connectOptions(["https://172.31.0.254:2399", url], {
          caFile: pki.ca,
          certFile: pki.clientCert,
          keyFile: pki.clientKey,
          username: "root",
          password: "s3cret",
          ...extra,
        });
      const lines = await drive(lab, secure({}), [
        /* 0 */ { op: "grant", ttl: 600 },
        /* 1 */ { op: "create", key: "/t/a", value: "a", lease: "$lease" },
        /* 2 */ { op: "list", prefix: "/t/" },
        /* 3 */ { op: "watch", prefix: "/t/", from: "$next" },
        /* 4 */ { op: "sleep", ms: 2500 },
        /* 5 */ { op: "put", key: "/t/b", value: "b", lease: "0" },
        /* 6 */ { op: "waitWatch", count: 1, timeoutMs: 5000 },
        /* 7 */ { op: "sleep", ms: 2500 },
        /* 8 */ { op: "get", key: "/t/b" },
        /* 9 */ { op: "closeWatch" },
        /* 10 */ { op: "sleep", ms: 2500 },
        /* 11 */ { op: "watch", prefix: "/t/", from: "$next" },
        /* 12 */ { op: "waitWatch", count: 2, timeoutMs: 5000 },
      ]);
      for (let step = 0; step <= 12; step++) resultOf(lines, step);
      assert.equal(resultOf(lines, 1), true);
      assert.equal(resultOf(lines, 8), "b");
      assert.deepEqual(watchLines(lines)[0], {
        watch: "put",
        key: "/t/b",
        value: "b",
        modRevision: (BigInt((resultOf(lines, 2) as { revision: string }).revision) + 1n).toString(),
        leaseId: "0",
      });
      assert.equal(watchLines(lines)[1]?.watch, "put", "a watch opened with an expired token sees history");
      assert.match(await ctl(["--user=root:s3cret", "get", "/t/a"]), /^\/t\/a\na$/m);

      const wrong = await drive(lab, secure({ password: "wrong" }), [{ op: "get", key: "/t/a" }]);
      assert.match(
        errorOf(wrong, 0),
        /^etcd at https:\/\/172\.31\.0\.254:2389: authenticating as "root": etcdserver: authentication failed, invalid user ID or password/,
      );
      const noCert = await drive(lab, secure({ certFile: undefined, keyFile: undefined }), [
        { op: "get", key: "/t/a" },
      ]);
      assert.match(errorOf(noCert, 0), /etcd at https:\/\/172\.31\.0\.254:2389: /);
      // Without a username, etcd takes the certificate's Common Name as the user (as for flanneld).
      await ctl(["--user=root:s3cret", "user", "add", "client:unused"]);
      await ctl(["--user=root:s3cret", "role", "add", "weft"]);
      await ctl([
        "--user=root:s3cret",
        "role",
        "grant-permission",
        "weft",
        "readwrite",
        "/t/",
        "--prefix=true",
      ]);
      await ctl(["--user=root:s3cret", "user", "grant-role", "client", "weft"]);
      const byCn = await drive(lab, secure({ username: undefined, password: undefined }), [
        /* 0 */ { op: "get", key: "/t/a" },
        /* 1 */ { op: "put", key: "/t/c", value: "c", lease: "0" },
        /* 2 */ { op: "get", key: "/outside" },
      ]);
      assert.equal(resultOf(byCn, 0), "a");
      resultOf(byCn, 1);
      assert.match(errorOf(byCn, 2), /KV\/Range: etcdserver: permission denied \(PERMISSION_DENIED\)$/);
      await etcd.stop();
    });
  });
});
