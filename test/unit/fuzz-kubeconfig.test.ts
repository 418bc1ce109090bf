// Fuzz: the YAML subset weft reads kubeconfig files with: any text gives a value or one YamlError.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import { parseYamlSubset, YamlError } from "../../src/kube/yaml-subset.js";
import { checkProperty, onlyOwnErrors } from "./fuzz-harness.js";
import { hostileString, mutatedText, smallHostileString } from "./fuzz-inputs.js";

const scalar = fc.oneof(
  fc.constantFrom(
    "https://10.0.0.1:6443",
    "default",
    "",
    "~",
    "null",
    "'single'",
    '"dou\\"ble"',
    "{}",
    "[]",
    "a: b",
  ),
  fc.string({ maxLength: 12 }).filter((s) => !s.includes("\n")),
);
const key = fc.constantFrom(
  "apiVersion",
  "clusters",
  "cluster",
  "server",
  "users",
  "user",
  "token",
  "name",
  "contexts",
);

/** Kubeconfig-shaped YAML: nested mappings and "- " sequences at random indents. */
const yamlLines = fc
  .array(
    fc.tuple(
      fc.integer({ min: 0, max: 8 }),
      fc.oneof(
        fc.tuple(key, scalar).map(([k, v]) => `${k}: ${v}`),
        key.map((k) => `${k}:`),
        scalar.map((v) => `- ${v}`),
        fc.tuple(key, scalar).map(([k, v]) => `- ${k}: ${v}`),
        fc.constantFrom("# comment", "---", "\t- tab", "key: 'unterminated", 'key: "bad \\q"'),
      ),
    ),
    { maxLength: 25 },
  )
  .map((lines) => lines.map(([indent, text]) => " ".repeat(indent) + text).join("\n"));

const source = fc.oneof(
  yamlLines,
  mutatedText(yamlLines),
  fc.jsonValue({ maxDepth: 4 }).map((v) => JSON.stringify(v)),
  fc.integer({ min: 1, max: 3000 }).map((n) => `${"- ".repeat(n)}x`),
  fc
    .integer({ min: 1, max: 300 })
    .map((n) => Array.from({ length: n }, (_, i) => `${" ".repeat(i)}k:`).join("\n")),
  hostileString,
  smallHostileString,
);

describe("fuzz: kubeconfig YAML", () => {
  it("parseYamlSubset gives a value or one YamlError for any text", (t) => {
    checkProperty(t, { runs: 3000 }, source, (text) => {
      const value = onlyOwnErrors([YamlError], () => parseYamlSubset(text));
      if (value !== undefined) JSON.stringify(value);
    });
  });

  it("a mapping it reads gives back its keys and plain values", (t) => {
    const entries = fc.uniqueArray(fc.tuple(key, fc.stringMatching(/^[a-z0-9.:/-]{1,20}$/)), {
      selector: ([k]) => k,
      maxLength: 6,
    });
    checkProperty(t, { runs: 1000 }, entries, (list) => {
      const text = list.map(([k, v]) => `${k}: ${v}`).join("\n");
      const value = parseYamlSubset(text);
      if (list.length === 0) return assert.equal(value, null);
      assert.deepEqual(value, Object.fromEntries(list));
    });
  });
});
