/**
 * A plain clone of the repo must pass its tests: nothing in it may read the observations from a folder beside the
 * clone; they live in test/fixtures/reference/ and are reached through test/helpers/reference.ts only.
 */
import assert from "node:assert/strict";
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { join, relative } from "node:path";
import { describe, it } from "node:test";
import { referenceDir, referenceFiles, repoRoot } from "../helpers/reference.js";

// Built from pieces so this file does not match itself.
const outside = new RegExp(["\\.\\./", "shared", "|/work/", "shared|", "shared", "/reference"].join(""));
const scanned = ["src", "test", "scripts", "bench", "demo", "deploy", "docs", "README.md", "package.json"];
const textFile = /\.(ts|js|cjs|mjs|sh|md|json|yml|yaml|c|gyp)$|Containerfile$/;

function filesUnder(path: string): string[] {
  if (!existsSync(path)) return [];
  if (!statSync(path).isDirectory()) return [path];
  return readdirSync(path).flatMap((name) => filesUnder(join(path, name)));
}

describe("the repo stands on its own", () => {
  it("keeps the reference observations inside the repo", () => {
    assert.equal(relative(repoRoot, referenceDir), join("test", "fixtures", "reference"));
    assert.ok(existsSync(join(referenceDir, "README.md")), "the reference keeps its README");
    for (const folder of ["flanneld-v0.20.2", "flanneld-v0.7.0", "flannel-cni-v1.9.1"])
      assert.ok(referenceFiles(folder).length >= 5, `${folder} has its observation files`);
  });

  it("has no file that reads from a folder beside the clone", () => {
    const offenders: string[] = [];
    for (const top of scanned)
      for (const file of filesUnder(join(repoRoot, top))) {
        if (!textFile.test(file) || file.startsWith(referenceDir)) continue;
        const lines = readFileSync(file, "utf8").split("\n");
        lines.forEach((line, i) => {
          if (outside.test(line)) offenders.push(`${relative(repoRoot, file)}:${i + 1}: ${line.trim()}`);
        });
      }
    assert.deepEqual(offenders, [], "read the reference through test/helpers/reference.ts instead");
  });

  it("reads the reference through the one helper", () => {
    const direct = filesUnder(join(repoRoot, "test"))
      .filter((f) => f.endsWith(".ts") && !f.startsWith(referenceDir) && !f.endsWith("helpers/reference.ts"))
      .filter((f) =>
        /fixtures\/reference/.test(readFileSync(f, "utf8").replace(/^\s*(\/\/|\*|\/\*\*).*$/gm, "")),
      );
    assert.deepEqual(
      direct.map((f) => relative(repoRoot, f)),
      [],
    );
  });
});
