// The defects the fuzz suite found outside the lease and config parsers, each pinned by one example.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { createBackend } from "../../src/backend/registry.js";
import { parseVxlanConfig } from "../../src/backend/vxlan/vxlan-config.js";
import { ConfigError } from "../../src/config/network-config.js";
import { UserError } from "../../src/user-error.js";

const deep = JSON.parse("[".repeat(5000) + "]".repeat(5000)) as unknown;

describe("errors about untrusted values stay short and on one line", () => {
  it("a backend key of the wrong type: deep nesting is described, not stringified", () => {
    assert.throws(
      () => parseVxlanConfig({ VNI: deep }),
      (err: unknown) =>
        err instanceof ConfigError &&
        err.message ===
          "invalid network config: Backend.VNI of the vxlan backend must be a whole number from 0 to 16777215, not an array of 1",
    );
    assert.throws(
      () => parseVxlanConfig({ GBP: "x\n".repeat(100_000) }),
      (err: unknown) => err instanceof ConfigError && err.message.length < 200 && !err.message.includes("\n"),
    );
  });

  it("an unknown Backend.Type is quoted bounded, with control characters escaped", () => {
    assert.throws(
      () => createBackend(`vx\nlan${"x".repeat(1_000_000)}`, {} as never, {} as never),
      (err: unknown) =>
        err instanceof UserError &&
        err.message.startsWith('unknown backend type "vx\\nlan') &&
        err.message.includes("… (1000006 characters)") &&
        err.message.length < 200,
    );
    assert.throws(
      () => createBackend("carrier-pigeon", {} as never, {} as never),
      /^UserError: unknown backend type "carrier-pigeon" in Backend\.Type$/,
    );
  });
});
