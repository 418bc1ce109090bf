/**
 * The reconciler's error paths on a real kernel: a peer route the kernel refuses (its gateway is in a
 * network the interface has an address in, but no route to) fails alone while the other peer is routed;
 * the failure is counted in /metrics and logged once, retried with backoff, and /readyz stays 503 until a
 * run is clean, which it is as soon as the bad lease goes.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { type Lab, type LabHost, withLab } from "./lab.js";
import { PREFIX, routeDestinations, sleep, waitFor } from "./weft-cluster.js";

const SUBNETS = `${PREFIX}/subnets/`;
const HEALTH_PORT = 9911;

const hostGwLease = (publicIP: string) =>
  JSON.stringify({ PublicIP: publicIP, PublicIPv6: null, BackendType: "host-gw", BackendData: null });

async function http(lab: Lab, host: LabHost, path: string): Promise<{ status: string; body: string }> {
  const out = await lab.run(host, [
    "curl",
    "-sS",
    "--max-time",
    "3",
    "-w",
    "\n%{http_code}",
    `http://127.0.0.1:${HEALTH_PORT}${path}`,
  ]);
  const at = out.lastIndexOf("\n");
  return { body: out.slice(0, at), status: out.slice(at + 1) };
}

describe("weftd reconcile errors", () => {
  it("applies the others when the kernel refuses one entry, counts and logs it once, and is ready only after a clean run", async () => {
    await withLab({ hosts: 1, tag: "recerr" }, async (lab) => {
      const h1 = lab.host(1);
      // weftd sees 192.0.2.0/24 (TEST-NET-1) as on its link (an address of eth0), but the kernel has no route there.
      await lab.run(h1, ["ip", "addr", "add", "192.0.2.1/24", "dev", "eth0", "noprefixroute"]);
      await lab.startEtcd();
      await lab.etcdctl([
        "put",
        `${PREFIX}/config`,
        '{"Network":"10.244.0.0/16","SubnetMin":"10.244.60.0","Backend":{"Type":"host-gw"}}',
      ]);
      await lab.etcdctl(["put", `${SUBNETS}10.244.50.0-24`, hostGwLease("172.31.0.50")]);
      await lab.etcdctl(["put", `${SUBNETS}10.244.51.0-24`, hostGwLease("192.0.2.5")]);
      const weftd = await lab.startWeftd(h1, [`--healthz-port=${HEALTH_PORT}`]);

      await waitFor(
        "the good peer's route",
        async () => (await routeDestinations(lab, h1)).includes("10.244.50.0/24"),
        15_000,
      );
      await weftd.waitForOutput(
        /cannot put routes: ENETUNREACH \(network is unreachable\): Nexthop has invalid gateway/,
        5000,
      );
      // Long enough for a few retries (1 s, 2 s, ...), each of which fails the same way.
      await waitFor(
        "three failed runs",
        async () => {
          const m = (await http(lab, h1, "/metrics")).body.match(/^weft_reconcile_failed_runs_total (\d+)$/m);
          return Number(m?.[1] ?? 0) >= 3;
        },
        15_000,
      );
      assert.ok(!(await routeDestinations(lab, h1)).includes("10.244.51.0/24"));
      const metrics = (await http(lab, h1, "/metrics")).body;
      assert.match(metrics, /^weft_state_change_failures_total\{kind="route"\} ([3-9]|\d\d+)$/m);
      assert.equal((await http(lab, h1, "/readyz")).status, "503", "not ready while a run fails");
      const lines = weftd
        .output()
        .split("\n")
        .filter((l) => l.includes("cannot put routes"));
      assert.equal(lines.length, 1, `one line for the cause, not one per retry:\n${lines.join("\n")}`);
      assert.match(lines[0]!, /\(1 entry, e\.g\. route 10\.244\.51\.0\/24 via 192\.0\.2\.5 dev eth0\)/);

      await lab.etcdctl(["del", `${SUBNETS}10.244.51.0-24`]);
      await waitFor(
        "/readyz to turn ready",
        async () => (await http(lab, h1, "/readyz")).status === "200",
        15_000,
      );
      await weftd.waitForOutput(/datapath programmed for \d+ peer\(s\)/, 1000);
      assert.ok((await routeDestinations(lab, h1)).includes("10.244.50.0/24"));
      await sleep(200);
      assert.ok(weftd.running);
    });
  });
});
