import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { Backoff, retry } from "../../src/retry/backoff.js";
import { boundText, describeValue } from "../../src/text/untrusted-text.js";

describe("untrusted text", () => {
  it("escapes control characters so a value cannot forge a log line", () => {
    assert.equal(boundText("a\nE1201 forged"), "a\\nE1201 forged");
    assert.equal(boundText("\u0007\u2028"), "\\u0007\\u2028");
  });
  it("bounds a huge value and says how long it was", () => {
    const text = boundText("x".repeat(1_000_000), 10);
    assert.equal(text, "xxxxxxxxxx… (1000000 characters)");
  });
  it("describes nested values without walking them", () => {
    let deep: unknown = [];
    for (let i = 0; i < 100_000; i++) deep = [deep];
    assert.equal(describeValue(deep), "an array of 1");
    assert.equal(describeValue({ a: 1, b: 2 }), "an object with 2 key(s)");
    assert.equal(describeValue('a"b'), '"a"b"');
    assert.equal(describeValue(7), "7");
  });
});

describe("backoff", () => {
  it("grows to the maximum and resets", () => {
    const b = new Backoff({ minMs: 100, maxMs: 350, jitter: 0 });
    assert.deepEqual([b.next(), b.next(), b.next(), b.next()], [100, 200, 350, 350]);
    b.reset();
    assert.equal(b.next(), 100);
  });
  it("retries until success and reports each failure", async () => {
    let calls = 0;
    const seen: number[] = [];
    const value = await retry(
      async () => {
        calls++;
        if (calls < 3) throw new Error(`fail ${calls}`);
        return "ok";
      },
      { backoff: { minMs: 1, maxMs: 2 }, onFailure: (_e, _d, attempt) => seen.push(attempt) },
    );
    assert.equal(value, "ok");
    assert.deepEqual(seen, [1, 2]);
  });
  it("throws fatal errors at once and stops after the attempt limit", async () => {
    let calls = 0;
    await assert.rejects(
      retry(
        async () => {
          calls++;
          throw new Error("fatal");
        },
        { backoff: { minMs: 1, maxMs: 1 }, isFatal: () => true },
      ),
      /fatal/,
    );
    assert.equal(calls, 1);
    await assert.rejects(
      retry(
        async () => {
          throw new Error("again");
        },
        { backoff: { minMs: 1, maxMs: 1 }, attempts: 3 },
      ),
      /again/,
    );
  });
});
