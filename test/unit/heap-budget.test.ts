import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { HEAP_RAM_BYTES, HEAP_RAM_OPTION, reexecArguments } from "../../src/runtime/heap-budget.js";

describe("weftd's heap budget", () => {
  const env = { PATH: "/usr/bin", FLANNELD_IFACE: "eth0" };

  it("re-executes a compiled weftd with its own arguments and the option added", () => {
    const run = reexecArguments(
      ["bun", "/$bunfs/root/weftd-main", "--iface=eth0", "-v=2"],
      [],
      "/opt/weft/bin/weftd",
      env,
      true,
    );
    assert.deepEqual(run, {
      file: "/opt/weft/bin/weftd",
      args: ["/opt/weft/bin/weftd", "--iface=eth0", "-v=2"],
      env: { ...env, [HEAP_RAM_OPTION]: HEAP_RAM_BYTES },
    });
  });

  it("gives `bun script.js` its runtime flags and script again", () => {
    const run = reexecArguments(
      ["/usr/bin/bun", "/w/dist/src/daemon/weftd-main.js", "--ip-masq"],
      ["--preload", "/tmp/p.ts"],
      "/usr/bin/bun",
      env,
      true,
    );
    assert.deepEqual(run?.args, [
      "/usr/bin/bun",
      "--preload",
      "/tmp/p.ts",
      "/w/dist/src/daemon/weftd-main.js",
      "--ip-masq",
    ]);
  });

  it("does nothing on Node, when the option is set (an operator's, or after the re-exec), or under socket activation", () => {
    const argv = ["bun", "/$bunfs/root/weftd-main"];
    assert.equal(reexecArguments(argv, [], "/usr/bin/node", env, false), undefined);
    assert.equal(
      reexecArguments(argv, [], "/opt/weft/bin/weftd", { [HEAP_RAM_OPTION]: "50000000" }, true),
      undefined,
    );
    // The socket systemd passes would not survive Bun's execve.
    assert.equal(reexecArguments(argv, [], "/opt/weft/bin/weftd", { LISTEN_FDS: "1" }, true), undefined);
  });
});
