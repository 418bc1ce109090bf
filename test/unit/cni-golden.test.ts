/**
 * The plugin against upstream flannel-cni-plugin v1.9.1's recorded behaviour: for every reference case the
 * delegate stdin, the dataDir file, the exit code and the error JSON must match byte for byte.
 */
import assert from "node:assert/strict";
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { basename, join } from "node:path";
import { after, describe, it } from "node:test";
import { goldenDir, runFlannel, Sandbox } from "./cni-harness.js";

interface GoldenCase {
  readonly subnetEnv: string[];
  readonly command: string;
  readonly containerID: string;
  readonly stdin: string;
  readonly exitCode: number;
  readonly delegateStdin: string | undefined;
  readonly dataDirFile: string | undefined;
  readonly errorStdout: string | undefined;
  readonly secondDelExitCode: number | undefined;
}

function parseGolden(text: string): GoldenCase {
  const sections = new Map<string, string[]>();
  let current: string[] | undefined;
  for (const line of text.replace(/\n$/, "").split("\n")) {
    if (line.startsWith("### ")) {
      current = [];
      sections.set(line.slice(4), current);
    } else {
      assert.ok(current, `text before the first ### header: ${line}`);
      current.push(line);
    }
  }
  const find = (prefix: string): [string, string[]] | undefined => {
    for (const [header, lines] of sections) if (header.startsWith(prefix)) return [header, lines];
    return undefined;
  };
  const stdinSection = find("stdin given to the flannel plugin");
  assert.ok(stdinSection, "no stdin section");
  const env = /CNI_COMMAND=(\w+), CNI_CONTAINERID=([\w.-]+)/.exec(stdinSection[0]);
  assert.ok(env, `cannot read the command from: ${stdinSection[0]}`);
  const exit = find("exit code: ");
  assert.ok(exit);
  const afterDel = find("after DEL:");
  const secondDel = afterDel ? /exit code: (\d+)/.exec(afterDel[0]) : null;
  return {
    subnetEnv: find("subnet.env")?.[1] ?? [],
    command: env[1]!,
    containerID: env[2]!,
    stdin: stdinSection[1].join("\n"),
    exitCode: Number(exit[0].slice("exit code: ".length)),
    delegateStdin: find("stdin passed to the delegate plugin")?.[1].join("\n"),
    dataDirFile: find("file written to dataDir/")?.[1].join("\n"),
    errorStdout: find("stdout (error)")?.[1].join("\n"),
    secondDelExitCode: secondDel ? Number(secondDel[1]) : undefined,
  };
}

/**
 * Our error with a "details" line taken out when upstream's has none: weft may add a hint there (runtimes
 * show "<msg>; <details>", so upstream's message stays a prefix), but code, msg and layout must be upstream's.
 */
function withoutAddedDetails(ours: string, upstream: string): string {
  if (upstream.includes('"details"')) return ours;
  return ours.replace(/,\n {4}"details": "(?:[^"\\]|\\.)*"\n\}$/, "\n}");
}

const files = readdirSync(goldenDir).filter((f) => f.endsWith(".txt"));

describe("flannel CNI plugin matches upstream v1.9.1", () => {
  const sandboxes: Sandbox[] = [];
  after(() => {
    for (const s of sandboxes) s.remove();
  });

  it("has the reference files", () => {
    assert.ok(files.length >= 6, `expected the reference cases in ${goldenDir}`);
  });

  for (const file of files) {
    it(file, () => {
      const golden = parseGolden(readFileSync(join(goldenDir, file), "utf8"));
      const box = new Sandbox();
      sandboxes.push(box);
      box.addRecorder("bridge");

      // Same config, but subnetFile and dataDir in the sandbox.
      const doc = JSON.parse(golden.stdin) as Record<string, unknown>;
      const originalSubnetFile = String(doc["subnetFile"]);
      const subnetFile = join(box.dir, basename(originalSubnetFile));
      doc["subnetFile"] = subnetFile;
      doc["dataDir"] = box.dataDir;
      if (golden.subnetEnv.length > 0) box.writeSubnetEnv(golden.subnetEnv, subnetFile);
      const env = box.env(golden.command, golden.containerID);
      const add = runFlannel(env, JSON.stringify(doc));
      assert.equal(add.status, golden.exitCode, `exit code; stdout: ${add.stdout}; stderr: ${add.stderr}`);

      if (golden.errorStdout !== undefined) {
        const expected = golden.errorStdout.split(originalSubnetFile).join(subnetFile);
        assert.equal(withoutAddedDetails(add.stdout, expected), expected);
        assert.deepEqual(box.calls(), [], "the delegate must not run");
        assert.deepEqual(box.savedFiles(), [], "no dataDir file on error");
        return;
      }

      assert.equal(box.recorded("ADD"), golden.delegateStdin, "delegate stdin");
      const saved = join(box.dataDir, golden.containerID);
      assert.equal(readFileSync(saved, "utf8"), golden.dataDirFile, "dataDir file");
      assert.equal(statSync(saved).mode & 0o777, 0o600, "dataDir file mode");
      const result = JSON.parse(add.stdout) as { cniVersion: string };
      assert.equal(result.cniVersion, doc["cniVersion"], "result in the config's cniVersion");

      const del = runFlannel(box.env("DEL", golden.containerID), JSON.stringify(doc));
      assert.equal(del.status, 0, `DEL: ${del.stdout} ${del.stderr}`);
      assert.equal(del.stdout, "");
      assert.equal(box.recorded("DEL"), golden.dataDirFile, "DEL replays the saved config");
      assert.equal(existsSync(saved), false, "DEL removes the dataDir file");

      const again = runFlannel(box.env("DEL", golden.containerID), JSON.stringify(doc));
      assert.equal(again.status, golden.secondDelExitCode ?? 0, `second DEL: ${again.stdout}`);
      assert.deepEqual(box.calls(), ["ADD", "DEL"], "the second DEL has nothing to replay");
    });
  }
});
