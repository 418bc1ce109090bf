/**
 * The plugin given what a careless runtime or operator can give: a dataDir under /proc, container IDs at
 * and past the 255-byte file-name limit. Each must end quickly in one bounded CNI error, or succeed where
 * upstream's plugin succeeds, and leave no temp file behind.
 */
import assert from "node:assert/strict";
import { execFileSync, spawnSync } from "node:child_process";
import { closeSync, openSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterEach, beforeEach, describe, it } from "node:test";
import { readCniEnv } from "../../src/cni/cni-env.js";
import { requireSupportedVersion, versionAtLeast } from "../../src/cni/cni-version.js";
import { findPlugin } from "../../src/cni/delegate-exec.js";
import { parseConfigDocument, validatedNetworkName } from "../../src/cni/net-conf.js";
import { parseSubnetEnv } from "../../src/cni/subnet-env.js";
import { pluginArgv } from "../helpers/cni-plugin.js";
import { ipv4SubnetEnv, parseError, pluginPath, runFlannel, Sandbox } from "./cni-harness.js";

describe("flannel CNI plugin with hostile input", () => {
  let box: Sandbox;
  beforeEach(() => {
    box = new Sandbox();
    box.writeSubnetEnv(ipv4SubnetEnv);
    box.addRecorder();
  });
  afterEach(() => box.remove());

  it('fails fast on "dataDir":"/proc/x" (Node\'s recursive mkdir spins there forever)', () => {
    const started = Date.now();
    // 10 s is far more than the plugin needs; the old code never finished.
    const run = runFlannel(box.env("ADD"), box.config({ dataDir: "/proc/weft-test/x" }), 10_000);
    assert.equal(run.status, 1, `stdout: ${run.stdout} stderr: ${run.stderr}`);
    const e = parseError(run.stdout);
    assert.equal(e.msg, "mkdir /proc/weft-test: no such file or directory");
    assert.match(e.details ?? "", /dataDir \(\/proc\/weft-test\/x\); it must be writable/);
    assert.ok(Date.now() - started < 10_000);
    assert.deepEqual(box.calls(), [], "the delegate must not run");
  });

  it("a dataDir deeper under /proc fails the same way", () => {
    const run = runFlannel(box.env("ADD"), box.config({ dataDir: "/proc/self/fd/999999/x" }), 10_000);
    assert.equal(run.status, 1, run.stdout);
    assert.match(parseError(run.stdout).msg, /^mkdir \/proc\/self\/fd\/999999(\/x)?: /);
  });

  for (const length of [244, 250, 255]) {
    it(`a container ID of ${length} characters works, as upstream (ADD, then DEL)`, () => {
      const id = `c${"0".repeat(length - 1)}`;
      const add = runFlannel(box.env("ADD", id), box.config());
      assert.equal(add.status, 0, `ADD: ${add.stdout} ${add.stderr}`);
      assert.deepEqual(box.savedFiles(), [id], "only the saved config, no temp file");
      assert.equal(readFileSync(`${box.dataDir}/${id}`, "utf8"), box.recorded("ADD"));
      const del = runFlannel(box.env("DEL", id), box.config());
      assert.equal(del.status, 0, `DEL: ${del.stdout} ${del.stderr}`);
      assert.deepEqual(box.calls(), ["ADD", "DEL"]);
      assert.deepEqual(box.savedFiles(), []);
    });
  }

  for (const length of [256, 5000]) {
    it(`a container ID of ${length} characters: one bounded error for ADD, DEL has nothing to undo`, () => {
      const id = `c${"1".repeat(length - 1)}`;
      const add = runFlannel(box.env("ADD", id), box.config());
      assert.equal(add.status, 1, add.stdout);
      assert.doesNotMatch(add.stdout + add.stderr, /ENAMETOOLONG|\n\s+at /);
      const e = parseError(add.stdout);
      assert.equal(e.code, 5);
      assert.match(
        e.msg,
        new RegExp(`^container ID c1+… \\(${length} characters\\) is ${length} bytes long: `),
      );
      assert.match(e.msg, /a file name can have at most 255 bytes$/);
      assert.ok(add.stdout.length < 600, `bounded: ${add.stdout.length} characters`);
      assert.deepEqual(box.calls(), [], "the delegate must not run");
      assert.deepEqual(readdirSync(box.dataDir), [], "no temp file left behind");

      // Nothing can have been saved under a name that long, so DEL succeeds (the spec: DEL of what is
      // missing succeeds), and the runtime does not retry it forever.
      const del = runFlannel(box.env("DEL", id), box.config());
      assert.equal(del.status, 0, del.stdout);
      assert.equal(del.stdout, "");
    });
  }

  it("a subnetFile that never ends or never answers (/dev/zero, a FIFO, 2 MB) fails at once", () => {
    const fifo = join(box.dir, "fifo");
    execFileSync("mkfifo", [fifo]);
    const big = join(box.dir, "big.env");
    writeFileSync(big, `FLANNEL_MTU=1450\n${"#".repeat(2 * 1024 * 1024)}\n`);
    for (const [subnetFile, reason] of [
      ["/dev/zero", "open /dev/zero: not a regular file"],
      [fifo, `open ${fifo}: not a regular file`],
      [big, `read ${big}: larger than 1048576 bytes`],
    ] as const) {
      const run = runFlannel(box.env("ADD"), box.config({ subnetFile }), 10_000);
      assert.equal(run.status, 1, run.stdout);
      assert.equal(
        parseError(run.stdout).msg,
        `failed to load flannel 'subnet.env' file: ${reason}. Check the flannel pod log for this node.`,
      );
    }
  });

  it("a stdin that never ends (/dev/zero) fails at a limit instead of filling memory", () => {
    const zero = openSync("/dev/zero", "r");
    const [cmd, ...args] = pluginArgv(pluginPath);
    const run = spawnSync(cmd!, args, {
      stdio: [zero, "pipe", "pipe"],
      env: { PATH: process.env["PATH"] ?? "/usr/bin:/bin", ...box.env("ADD") },
      timeout: 20_000,
      encoding: "utf8",
    });
    closeSync(zero);
    assert.equal(run.error, undefined);
    assert.equal(run.status, 1, run.stderr);
    assert.equal(parseError(run.stdout).msg, "the network config on stdin is larger than 16777216 bytes");
  });

  it("every error is bounded and escaped, whatever value it quotes", () => {
    const cases: Record<string, unknown>[] = [
      { cniVersion: `0.3.1\n${"x".repeat(100_000)}` },
      { dataDir: `/proc/${"d".repeat(100_000)}` },
      { subnetFile: `/nonexistent/\n${"s".repeat(100_000)}` },
      { delegate: { type: `a/\u2028${"t".repeat(100_000)}` } },
    ];
    for (const extra of cases) {
      const run = runFlannel(box.env("ADD"), box.config(extra), 10_000);
      assert.equal(run.status, 1, run.stdout.slice(0, 300));
      const e = parseError(run.stdout);
      for (const text of [e.msg, e.details ?? ""]) {
        assert.ok(text.length <= 1000, `${text.length} characters: ${text.slice(0, 200)}`);
        assert.doesNotMatch(text, /[\u0000-\u001f\u007f-\u009f\u2028\u2029]/, "no raw control character");
      }
    }
  });

  it("a network config nested deeper than 1,000 levels is refused, not a stack overflow", () => {
    const deep = `${"[".repeat(5000)}${"]".repeat(5000)}`;
    for (const key of ["ipam", "delegate", "runtimeConfig", "args"]) {
      const stdin = `{"cniVersion":"0.3.1","name":"cbr0","type":"flannel","subnetFile":${JSON.stringify(box.subnetFile)},"dataDir":${JSON.stringify(box.dataDir)},"${key}":{"x":${deep}}}`;
      const run = runFlannel(box.env("ADD"), stdin);
      assert.equal(run.status, 1, run.stdout);
      const e = parseError(run.stdout);
      assert.equal(e.code, 6);
      assert.equal(e.msg, "error unmarshall network config: exceeded max depth");
    }
    const ok = `{"x":${"[".repeat(900)}${"]".repeat(900)}}`;
    const run = runFlannel(box.env("ADD"), box.config({ ipam: JSON.parse(ok) }));
    assert.equal(run.status, 0, run.stdout.slice(0, 300));
  });

  it("an invalid container ID is bounded and escaped in details", () => {
    const run = runFlannel(box.env("ADD", `x\n${"y".repeat(10_000)}`), box.config());
    const e = parseError(run.stdout);
    assert.equal(e.msg, "invalid characters in containerID");
    assert.match(e.details ?? "", /^x\\ny+… \(10002 characters\)$/);
  });
});

describe("subnet.env parsing with hostile values", () => {
  const path = "/run/flannel/subnet.env";
  const failure = (text: string): string => {
    try {
      parseSubnetEnv(text, path);
    } catch (err) {
      return (err as Error).message;
    }
    assert.fail("accepted");
  };
  const env = (line: string) =>
    `FLANNEL_NETWORK=10.250.0.0/16\n${line}\nFLANNEL_MTU=1450\nFLANNEL_IPMASQ=true\n`;

  it("quotes values bounded and escaped, upstream's wording otherwise", () => {
    assert.equal(failure(env("FLANNEL_SUBNET=10.250.3.1/33")), "invalid CIDR address: 10.250.3.1/33");
    const huge = failure(env(`FLANNEL_SUBNET=${"x".repeat(1_000_000)}`));
    assert.match(huge, /^invalid CIDR address: x{100}… \(1000000 characters\)$/);
    assert.equal(
      failure(env("FLANNEL_SUBNET=1.2.3.4/24\u001b[31m")),
      "invalid CIDR address: 1.2.3.4/24\\u001b[31m",
    );
    assert.equal(
      failure(
        "FLANNEL_NETWORK=10.250.0.0/16\nFLANNEL_SUBNET=10.250.3.1/24\nFLANNEL_MTU=12\u2028\nFLANNEL_IPMASQ=true\n",
      ),
      'strconv.ParseUint: parsing "12\\u2028": invalid syntax',
    );
    assert.match(
      failure(
        `FLANNEL_NETWORK=10.250.0.0/16\nFLANNEL_SUBNET=10.250.3.1/24\nFLANNEL_MTU=${"9".repeat(5000)}\nFLANNEL_IPMASQ=true\n`,
      ),
      /^strconv\.ParseUint: parsing "9{64}"… \(5000 characters\): value out of range$/,
    );
  });

  it("drops duplicate networks in a long list in linear time, keeping the first of each", () => {
    const cidrs: string[] = [];
    for (let i = 0; i < 50_000; i++) cidrs.push(`10.${(i >> 8) & 255}.${i & 255}.0/24`);
    const text = `FLANNEL_NETWORK=${cidrs.join(",")},10.0.0.7/24,10.0.1.0/24\nFLANNEL_SUBNET=10.0.0.1/24\nFLANNEL_MTU=1450\nFLANNEL_IPMASQ=true\n`;
    const started = Date.now();
    const parsed = parseSubnetEnv(text, path);
    // A hang guard, not a benchmark: the quadratic version took minutes for this list.
    assert.ok(Date.now() - started < 10_000, `${Date.now() - started} ms`);
    assert.equal(parsed.networks.length, 50_000, "10.0.0.7/24 is 10.0.0.0/24 again; 10.0.1.0/24 too");
    assert.deepEqual(parsed.networks[1]?.prefix, 24);
  });
});

describe("plugin errors are bounded where they are made, not only when printed", () => {
  const bounded = (fn: () => unknown) => {
    try {
      fn();
    } catch (err) {
      const e = err as { message: string; details?: string };
      for (const text of [e.message, e.details ?? ""]) {
        assert.ok(text.length <= 1000, `${text.length} characters`);
        assert.doesNotMatch(text, /[\u0000-\u001f\u007f-\u009f\u2028\u2029]/);
      }
      return e;
    }
    assert.fail("no error");
  };
  const hostile = `x\n\u2028${"y".repeat(100_000)}`;

  it("versions, plugin names, network names, CNI_COMMAND", () => {
    assert.match(
      bounded(() => versionAtLeast(hostile, "0.4.0")).message,
      /^unable to parse version "x\\n\\u2028y+"… \(100003 characters\)$/,
    );
    assert.match(bounded(() => requireSupportedVersion(hostile)).details ?? "", /^config is "x\\n/);
    assert.equal(
      bounded(() => requireSupportedVersion("9.9.9")).details,
      'config is "9.9.9", plugin supports ["0.1.0" "0.2.0" "0.3.0" "0.3.1" "0.4.0" "1.0.0" "1.1.0"]',
    );
    bounded(() => findPlugin(`a/${hostile}`, "/nonexistent"));
    assert.equal(
      bounded(() => findPlugin("bridge", "/nonexistent/a:/nonexistent/b")).message,
      'failed to find plugin "bridge" in path [/nonexistent/a /nonexistent/b]',
    );
    bounded(() => findPlugin(hostile, `/nonexistent/${hostile}`));
    bounded(() => validatedNetworkName({ name: hostile }));
    bounded(() => parseConfigDocument(`{"name":${hostile}`));
    bounded(() => readCniEnv({ CNI_COMMAND: hostile }));
  });
});
