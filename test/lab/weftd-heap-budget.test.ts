/**
 * The shipped weftd re-executes itself once with JSC's heap budget (src/runtime/heap-budget.ts): the
 * process the service manager started keeps its pid and arguments, runs with the option set, and works.
 */
import assert from "node:assert/strict";
import { readFileSync, readlinkSync, realpathSync } from "node:fs";
import { describe, it } from "node:test";
import { HEAP_RAM_BYTES, HEAP_RAM_OPTION } from "../../src/runtime/heap-budget.js";
import { weftdCommand, withLab } from "./lab.js";
import { PREFIX, VXLAN, waitForLeases } from "./weft-cluster.js";

const environOf = (pid: number) => readFileSync(`/proc/${pid}/environ`, "utf8").split("\0");
const argvOf = (pid: number) => readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0").filter(Boolean);

describe("weftd's heap budget", { timeout: 60_000 }, () => {
  it("runs under the pid it was started with, with its arguments and the budget set", async () => {
    await withLab({ hosts: 1, tag: "heapbudget" }, async (lab) => {
      await lab.startEtcd();
      await lab.etcdctl(["put", `${PREFIX}/config`, VXLAN]);
      const weftd = await lab.startWeftd(lab.hosts[0]!, ["--ip-masq"]);
      await waitForLeases(lab, [weftd], 10_000);
      await weftd.waitForOutput(/datapath programmed/, 10_000);
      assert.equal(weftd.exitStatus, undefined, "still running");
      // The lab starts `ip netns exec <ns> weftd ...`, which becomes weftd, which became weftd again.
      assert.equal(readlinkSync(`/proc/${weftd.pid}/exe`), realpathSync(weftdCommand()[0]!));
      assert.ok(environOf(weftd.pid).includes(`${HEAP_RAM_OPTION}=${HEAP_RAM_BYTES}`), "the budget is set");
      const argv = argvOf(weftd.pid);
      assert.ok(
        argv.includes("--ip-masq") && argv.includes("--iface=eth0"),
        `arguments kept: ${argv.join(" ")}`,
      );
      assert.equal(argv.filter((a) => a.startsWith("/$bunfs/")).length, 0, "no embedded path as an argument");
    });
  });
});
