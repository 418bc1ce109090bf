// Whose labs the stale sweep may delete: only those whose owner (a node or bun test runner) is dead.
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { once } from "node:events";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { isLiveOwner } from "./lab-cleanup.js";

const BUN = join(
  fileURLToPath(new URL("../../../", import.meta.url)),
  "node_modules/@oven/bun-linux-x64/bin/bun",
);

/** Runs argv (sleeping), asks isLiveOwner about it while it runs and once it has exited. */
async function ownerWhileAliveAndDead(argv: string[]): Promise<[boolean, boolean]> {
  const child = spawn(argv[0]!, argv.slice(1), { stdio: "ignore" });
  await once(child, "spawn"); // after the exec: /proc/<pid>/exe is argv[0]'s
  const alive = isLiveOwner(child.pid!);
  child.kill("SIGKILL");
  await once(child, "exit");
  return [alive, isLiveOwner(child.pid!)];
}

test("a running node process owns its labs, and a dead one does not", async () => {
  const [alive, dead] = await ownerWhileAliveAndDead(["node", "-e", "setTimeout(() => {}, 30000)"]);
  assert.equal(alive, true);
  assert.equal(dead, false);
});

test("a running bun process (bun test) owns its labs, and a dead one does not", async () => {
  assert.ok(existsSync(BUN), `${BUN} is missing (npm ci)`);
  const [alive, dead] = await ownerWhileAliveAndDead([BUN, "-e", "setTimeout(() => {}, 30000)"]);
  assert.equal(alive, true);
  assert.equal(dead, false);
});

test("a live process that is no test runner owns no lab (a reused pid)", async () => {
  const [alive] = await ownerWhileAliveAndDead(["sleep", "30"]);
  assert.equal(alive, false);
});
