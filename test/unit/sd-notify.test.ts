/** systemd's notify protocol against a real unix datagram socket (test/helpers/notify-receiver.py). */
import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { systemdNotifier, watchdogIntervalMs } from "../../src/daemon/sd-notify.js";
import { notifyMessages, notifyReceiverScript, withAssignment } from "../helpers/notify-receiver.js";

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const dir = mkdtempSync(join(tmpdir(), "weft-sd-notify-"));
const receivers: ChildProcess[] = [];
after(() => {
  for (const r of receivers) if (r.exitCode === null) r.kill("SIGTERM");
  rmSync(dir, { recursive: true, force: true });
});

/** Starts a receiver on `socket`; resolves once it is bound. Its output accumulates in `out()`. */
async function receiver(socket: string): Promise<{ out: () => string }> {
  const child = spawn("python3", [notifyReceiverScript, socket, "60"], {
    stdio: ["ignore", "pipe", "inherit"],
  });
  receivers.push(child);
  let text = "";
  child.stdout!.setEncoding("utf8").on("data", (chunk: string) => {
    text += chunk;
  });
  for (let i = 0; i < 100 && !text.includes('"listening"'); i++) await sleep(50);
  assert.ok(text.includes('"listening"'), `the receiver did not bind ${socket}`);
  return { out: () => text };
}

async function until(what: string, check: () => boolean, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

describe("systemd notify", () => {
  it("sends READY=1 once, with a status, then STOPPING=1, from this process's pid (socket path)", async () => {
    const socket = join(dir, "notify.sock");
    const r = await receiver(socket);
    const warnings: string[] = [];
    const notifier = systemdNotifier({ env: { NOTIFY_SOCKET: socket }, warn: (m) => warnings.push(m) });
    await sleep(100);
    assert.deepEqual(notifyMessages(r.out()), [], "nothing is sent before ready()");
    notifier.ready("datapath programmed for 2 peer(s)");
    notifier.ready("again");
    notifier.stopping();
    await until("READY and STOPPING", () => notifyMessages(r.out()).length >= 2);
    await sleep(100);
    const got = notifyMessages(r.out());
    assert.deepEqual(
      got.map((m) => m.message),
      ["READY=1\nSTATUS=datapath programmed for 2 peer(s)", "STOPPING=1"],
    );
    for (const m of got) assert.equal(m.pid, process.pid, "the daemon itself sends (NotifyAccess=main)");
    assert.deepEqual(warnings, []);
  });

  it("reaches an abstract socket name (@...)", async () => {
    const socket = `@weft-sd-notify-${process.pid}`;
    const r = await receiver(socket);
    systemdNotifier({ env: { NOTIFY_SOCKET: socket }, warn: assert.fail }).ready("up");
    await until("READY=1", () => withAssignment(notifyMessages(r.out()), "READY=1").length === 1);
  });

  it("pings WATCHDOG=1 every WATCHDOG_USEC/2 until stopped", async () => {
    const socket = join(dir, "watchdog.sock");
    const r = await receiver(socket);
    const notifier = systemdNotifier({
      env: { NOTIFY_SOCKET: socket, WATCHDOG_USEC: "200000", WATCHDOG_PID: String(process.pid) },
      warn: assert.fail,
    });
    await until("5 watchdog pings", () => withAssignment(notifyMessages(r.out()), "WATCHDOG=1").length >= 5);
    notifier.stopping();
    await until("STOPPING=1", () => withAssignment(notifyMessages(r.out()), "STOPPING=1").length === 1);
    const pings = withAssignment(notifyMessages(r.out()), "WATCHDOG=1");
    const gaps = pings.slice(1).map((p, i) => p.ms - pings[i]!.ms);
    // 100 ms apart on a timer: never a burst, and typically well inside the 200 ms systemd would allow.
    for (const gap of gaps) assert.ok(gap > 50, `ping gap ${gap} ms`);
    const median = [...gaps].sort((a, b) => a - b)[Math.floor(gaps.length / 2)]!;
    assert.ok(median < 200, `median ping gap ${median} ms`);
    await sleep(300);
    assert.equal(
      withAssignment(notifyMessages(r.out()), "WATCHDOG=1").length,
      pings.length,
      "no ping after STOPPING",
    );
  });

  it("does not ping a watchdog meant for another process", async () => {
    const socket = join(dir, "other.sock");
    const r = await receiver(socket);
    const notifier = systemdNotifier({
      env: { NOTIFY_SOCKET: socket, WATCHDOG_USEC: "100000", WATCHDOG_PID: String(process.pid + 1) },
      warn: assert.fail,
    });
    notifier.ready("up");
    await until("READY=1", () => notifyMessages(r.out()).length === 1);
    await sleep(300);
    notifier.close();
    assert.deepEqual(withAssignment(notifyMessages(r.out()), "WATCHDOG=1"), []);
  });

  it("does nothing outside systemd, and names a bad NOTIFY_SOCKET or WATCHDOG_USEC once", () => {
    const warnings: string[] = [];
    const warn = (m: string) => warnings.push(m);
    const sent: string[] = [];
    const send = (_s: string, m: string) => sent.push(m);
    systemdNotifier({ env: {}, warn, send }).ready("up");
    systemdNotifier({ env: { NOTIFY_SOCKET: "" }, warn, send }).stopping();
    assert.deepEqual([sent, warnings], [[], []]);
    systemdNotifier({ env: { NOTIFY_SOCKET: "run/notify" }, warn, send }).ready("up");
    assert.deepEqual(sent, []);
    assert.equal(warnings.length, 1);
    assert.match(
      warnings[0]!,
      /NOTIFY_SOCKET="run\/notify" is neither an absolute path nor an @abstract name/,
    );
    systemdNotifier({ env: { NOTIFY_SOCKET: "/x", WATCHDOG_USEC: "5s" }, warn, send }).close();
    assert.match(warnings[1]!, /WATCHDOG_USEC="5s" is not a number of microseconds/);
  });

  it("warns once per distinct failure when systemd's socket is gone, never throws", async () => {
    const warnings: string[] = [];
    const notifier = systemdNotifier({
      env: { NOTIFY_SOCKET: join(dir, "nobody.sock"), WATCHDOG_USEC: "40000" },
      warn: (m) => warnings.push(m),
    });
    await sleep(200);
    notifier.ready("up");
    notifier.stopping();
    assert.equal(warnings.length, 1, warnings.join("\n"));
    assert.match(warnings[0]!, /cannot notify systemd at .*nobody\.sock \(WATCHDOG=1\): .*no such file/i);
  });

  it("computes the watchdog interval from WATCHDOG_USEC and WATCHDOG_PID", () => {
    assert.equal(watchdogIntervalMs({}, 7), undefined);
    assert.equal(watchdogIntervalMs({ WATCHDOG_USEC: "30000000" }, 7), 15_000);
    assert.equal(watchdogIntervalMs({ WATCHDOG_USEC: "30000000", WATCHDOG_PID: "7" }, 7), 15_000);
    assert.equal(watchdogIntervalMs({ WATCHDOG_USEC: "30000000", WATCHDOG_PID: "8" }, 7), undefined);
    assert.equal(watchdogIntervalMs({ WATCHDOG_USEC: "1" }, 7), 1);
    assert.ok(Number.isNaN(watchdogIntervalMs({ WATCHDOG_USEC: "-5" }, 7)));
  });
});
