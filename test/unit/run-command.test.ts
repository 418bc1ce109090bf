/** The one way weftd runs iptables and nft: output, stdin, a failure's stderr, a missing tool (on Bun and Node). */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { CommandFailed, isNotInstalled, runCommand } from "../../src/firewall/run-command.js";

describe("running a firewall tool", () => {
  it("resolves with stdout and feeds stdin", async () => {
    assert.equal(await runCommand("sh", ["-c", "echo out"], "dash"), "out\n");
    assert.equal(await runCommand("cat", [], "coreutils", "*nat\nCOMMIT\n"), "*nat\nCOMMIT\n");
  });

  it("rejects with the tool's stderr when it fails", async () => {
    const err = await runCommand("sh", ["-c", "echo 'table not found' >&2; exit 3"], "dash").catch((e) => e);
    assert.ok(err instanceof CommandFailed, String(err));
    assert.equal(err.message, "sh -c echo 'table not found' >&2; exit 3 failed: table not found");
    assert.equal(err.stderr, "table not found\n");
    assert.equal(isNotInstalled(err), false);
  });

  it("names the package to install when the tool is missing", async () => {
    const err = await runCommand("weft-no-such-tool", ["-S"], "iptables").catch((e) => e);
    assert.equal(isNotInstalled(err), true, String(err));
    assert.equal(err.message, "weft-no-such-tool is not installed");
    assert.equal(err.hint, "install the iptables package");
  });
});
