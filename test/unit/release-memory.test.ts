import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { chmodSync, copyFileSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { MemoryRelease } from "../../src/runtime/release-memory.js";

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe("releasing memory after bursts", () => {
  it("releases once per burst, only after the burst has been quiet", async () => {
    let releases = 0;
    const memory = new MemoryRelease(() => releases++, 40);
    for (let i = 0; i < 5; i++) {
      memory.afterBurst();
      await sleep(10);
    }
    assert.equal(releases, 0, "never in the middle of a burst");
    await sleep(80);
    assert.equal(releases, 1);
    memory.afterBurst();
    memory.close();
    await sleep(80);
    assert.equal(releases, 1, "close cancels a pending release");
  });

  it("hands the runtime's clean code pages back to the kernel", () => {
    // The kernel leaves pages another process maps (the test runner shares this runtime's binary), so a
    // child runs a private copy of the runtime, as weftd's executable is its own.
    const dir = mkdtempSync(join(tmpdir(), "weft-pageout-"));
    try {
      const runtime = join(dir, "runtime");
      copyFileSync(process.execPath, runtime);
      chmodSync(runtime, 0o755);
      const addon = fileURLToPath(new URL("../../../build/Release/weft_netlink.node", import.meta.url));
      const script = `const fs = require("fs");
        const rss = () => Number(/RssFile:\\s+(\\d+)/.exec(fs.readFileSync("/proc/self/status", "utf8"))[1]);
        const addon = require(${JSON.stringify(addon)});
        const before = rss(); const advised = addon.pageOutCode(); const after = rss();
        console.log(JSON.stringify({ before, advised, after }));`;
      const child = spawnSync(runtime, ["-e", script], { encoding: "utf8", timeout: 30_000 });
      assert.equal(child.status, 0, child.stderr);
      const { before, advised, after } = JSON.parse(child.stdout) as Record<string, number>;
      // The runtime's executable alone is tens of MB of private file mappings.
      assert.ok(advised! > 10 * 1024 * 1024, `advised ${advised} bytes`);
      assert.ok(after! < before! / 2, `file-backed RSS ${before} kB -> ${after} kB`);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
