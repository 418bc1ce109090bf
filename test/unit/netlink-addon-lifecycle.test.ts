// The native addon's life cycle, each case in a child process (a failure aborts that process, not the
// test runner): a worker thread that ends with sockets open and polled must leave nothing behind and
// not abort Node (the environment cleanup hook), and a thread that cannot return to its own network
// namespace must abort the process rather than go on in the wrong one (setns is made to fail by an
// LD_PRELOAD shim built here with gcc). Nothing here changes any namespace: the only namespace entered
// is the test process's own.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, test } from "node:test";

const ADDON = join(process.cwd(), "build", "Release", "weft_netlink.node");
const dir = mkdtempSync(join(tmpdir(), "weft-addon-"));

function runChild(script: string, env: NodeJS.ProcessEnv = {}) {
  return spawnSync(process.execPath, ["-e", script], {
    env: { PATH: process.env.PATH, ADDON, ...env },
    encoding: "utf8",
    timeout: 20_000,
  });
}

/**
 * A worker opens two sockets (one polled) and then ends by `how`; the parent then reports which of the
 * worker's sockets (by inode) any of its fds still holds.
 */
const workerScript = (how: "exit" | "terminate") => `
const { Worker } = require("node:worker_threads");
const { readdirSync, readlinkSync } = require("node:fs");
const links = () => readdirSync("/proc/self/fd").map((fd) => { try { return readlinkSync("/proc/self/fd/" + fd); } catch { return ""; } });
let opened = [];
const worker = new Worker(\`
  const { parentPort } = require("node:worker_threads");
  const { readlinkSync } = require("node:fs");
  const addon = require(process.env.ADDON);
  const polled = addon.open(0, 1, null);
  const plain = addon.open(0, 0, null);
  addon.poll(polled, () => {});
  parentPort.postMessage([polled, plain].map((fd) => readlinkSync("/proc/self/fd/" + fd)));
  ${how === "exit" ? "setTimeout(() => process.exit(0), 20);" : ""}
\`, { eval: true });
worker.on("message", (sockets) => { opened = sockets; ${how === "terminate" ? "void worker.terminate();" : ""} });
worker.on("exit", () => setTimeout(() => {
  const now = links();
  console.log(JSON.stringify({ opened, stillOpen: opened.filter((s) => now.includes(s)) }));
}, 100));
`;

describe("native addon life cycle", () => {
  after(() => rmSync(dir, { recursive: true, force: true }));

  for (const how of ["exit", "terminate"] as const) {
    test(`a worker that ends (${how}) with sockets open and polled closes them and does not abort Node`, () => {
      const child = runChild(workerScript(how));
      assert.equal(child.signal, null, child.stderr);
      assert.equal(child.status, 0, child.stderr);
      const { opened, stillOpen } = JSON.parse(child.stdout.trim()) as {
        opened: string[];
        stillOpen: string[];
      };
      assert.equal(opened.length, 2);
      for (const socket of opened) assert.match(socket, /^socket:\[\d+\]$/);
      assert.deepEqual(stillOpen, [], "every socket the worker opened is closed");
    });
  }

  test("failing to return to the original network namespace aborts the process", () => {
    const shim = join(dir, "fail-setns-back.c");
    writeFileSync(
      shim,
      `#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <sched.h>
static int calls;
int setns(int fd, int nstype) {
  int (*real)(int, int) = (int (*)(int, int))dlsym(RTLD_NEXT, "setns");
  if (++calls == 2) { errno = EPERM; return -1; }
  return real(fd, nstype);
}
`,
    );
    const lib = join(dir, "fail-setns-back.so");
    const cc = spawnSync("gcc", ["-shared", "-fPIC", "-o", lib, shim, "-ldl"], { encoding: "utf8" });
    assert.equal(cc.status, 0, cc.stderr);
    // Without the shim the same call works (the namespace is our own), so the shim is what fails it.
    const plain = runChild(`require(process.env.ADDON).open(0, 0, "/proc/self/ns/net"); console.log("ok")`);
    assert.equal(plain.stdout.trim(), "ok", plain.stderr);
    const child = runChild(
      `require(process.env.ADDON).open(0, 0, "/proc/self/ns/net"); console.log("went on")`,
      { LD_PRELOAD: lib },
    );
    assert.equal(child.signal, "SIGABRT", `${child.status} ${child.stdout} ${child.stderr}`);
    assert.doesNotMatch(child.stdout, /went on/);
    assert.match(
      child.stderr,
      /cannot return to the original network namespace after \/proc\/self\/ns\/net: Operation not permitted; aborting/,
    );
  });
});
