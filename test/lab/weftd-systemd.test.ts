/**
 * weftd under systemd's notify protocol, with a real unix datagram socket standing in for systemd: READY=1 only
 * once the datapath is programmed (not while the store is unreachable), from weftd's own pid as NotifyAccess=main
 * needs; WATCHDOG=1 repeating meanwhile; STOPPING=1 on SIGTERM.
 */
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { describe, it } from "node:test";
import { notifyMessages, notifyReceiverScript, withAssignment } from "../helpers/notify-receiver.js";
import { withLab } from "./lab.js";
import {
  PREFIX,
  readLease,
  routeDestinations,
  sleep,
  VXLAN,
  waitFor,
  waitForLeases,
} from "./weft-cluster.js";

describe("weftd and systemd", { timeout: 90_000 }, () => {
  it("says READY=1 after programming the peers, pings the watchdog, says STOPPING=1 on SIGTERM", async () => {
    await withLab({ hosts: 2, tag: "sdnotify" }, async (lab) => {
      const [h1, h2] = [lab.host(1), lab.host(2)];
      await lab.startEtcd();
      await lab.etcdctl(["put", `${PREFIX}/config`, VXLAN]);
      const peer = await lab.startWeftd(h2);
      const [peerLease] = await waitForLeases(lab, [peer], 15_000, [h2]);

      // Abstract names are per network namespace: the receiver sits in host 1's, as systemd would on that host.
      const socket = `@${lab.name}-notify`;
      const receiver = await lab.spawn(h1, ["python3", notifyReceiverScript, socket, "60"]);
      await receiver.waitForOutput(/"listening"/, 10_000);

      // The store is down: weftd cannot get a lease, so it must not claim to be ready.
      await lab.stopEtcd();
      const weftd = await lab.startWeftd(h1, [], {
        NOTIFY_SOCKET: socket,
        WATCHDOG_USEC: "1000000",
      });
      await weftd.waitForOutput(/acquiring a subnet lease|waiting for a valid network config|etcd/i, 20_000);
      await sleep(2_000);
      const early = notifyMessages(receiver.output());
      assert.deepEqual(
        withAssignment(early, "READY=1"),
        [],
        `no READY=1 without a lease:\n${weftd.output()}`,
      );
      assert.ok(withAssignment(early, "WATCHDOG=1").length >= 2, "the watchdog is pinged while starting");

      await lab.startEtcd();
      await waitFor(
        "READY=1",
        async () => withAssignment(notifyMessages(receiver.output()), "READY=1").length > 0,
        30_000,
      ).catch((err: Error) => {
        throw new Error(`${err.message}\nweftd:\n${weftd.output()}`);
      });
      // What READY=1 promises is already true when it arrives: subnet.env, the peer's route, the log line.
      assert.ok(existsSync(lab.subnetFile(h1)), "subnet.env is written before READY=1");
      assert.ok((await readLease(lab, h1)) !== undefined);
      assert.ok(
        (await routeDestinations(lab, h1)).includes(peerLease!.subnet),
        `the route to the peer ${peerLease!.subnet} is programmed before READY=1`,
      );
      assert.match(weftd.output(), /datapath programmed for 1 peer\(s\)/);
      const [ready] = withAssignment(notifyMessages(receiver.output()), "READY=1");
      assert.equal(ready!.message, "READY=1\nSTATUS=datapath programmed for 1 peer(s)");
      assert.equal(ready!.pid, weftd.pid, "weftd's own pid sends, as NotifyAccess=main requires");

      const status = await weftd.stop("SIGTERM", 10_000);
      assert.equal(status.code, 0, weftd.output());
      await waitFor(
        "STOPPING=1",
        async () => withAssignment(notifyMessages(receiver.output()), "STOPPING=1").length > 0,
        5_000,
      );
      const all = notifyMessages(receiver.output());
      for (const m of all) assert.equal(m.pid, weftd.pid);
      assert.equal(withAssignment(all, "READY=1").length, 1, "READY=1 is sent once");
      const pings = withAssignment(all, "WATCHDOG=1");
      assert.ok(pings.length >= 4, `WATCHDOG=1 repeats (${pings.length} pings)`);
      const stopping = all.findIndex((m) => m.message === "STOPPING=1");
      assert.equal(stopping, all.length - 1, "nothing after STOPPING=1");
    });
  });
});
