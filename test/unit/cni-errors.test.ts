/** Every way the flannel plugin can fail: a CNI error JSON on stdout, exit status 1, never a stack trace. */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { chmodSync, existsSync, mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterEach, beforeEach, describe, it } from "node:test";
import { ipv4SubnetEnv, type PluginRun, parseError, runFlannel, Sandbox } from "./cni-harness.js";

function assertCniError(run: PluginRun, code: number, msg: string | RegExp): { details?: string } {
  assert.equal(run.status, 1, `exit status; stdout: ${run.stdout}`);
  assert.doesNotMatch(run.stdout + run.stderr, /\n\s+at /, "no stack trace");
  assert.match(run.stdout, /^\{\n {4}"code": /, "indented like upstream");
  const e = parseError(run.stdout);
  assert.equal(e.code, code, run.stdout);
  if (typeof msg === "string") assert.equal(e.msg, msg);
  else assert.match(e.msg, msg);
  return e;
}

describe("flannel CNI plugin errors", () => {
  let box: Sandbox;
  beforeEach(() => {
    box = new Sandbox();
    box.writeSubnetEnv(ipv4SubnetEnv);
    box.addRecorder();
  });
  afterEach(() => box.remove());

  it("malformed stdin JSON", () => {
    const e = assertCniError(
      runFlannel(box.env("ADD"), "{not json"),
      6,
      /^error unmarshall network config: /,
    );
    assert.match(e.details ?? "", /network configuration/);
  });

  it("empty stdin", () => {
    assertCniError(
      runFlannel(box.env("ADD"), ""),
      6,
      "error unmarshall network config: unexpected end of JSON input",
    );
  });

  it("stdin that is not an object", () => {
    assertCniError(runFlannel(box.env("ADD"), "[1,2]"), 6, /cannot unmarshal array/);
  });

  it("missing network name", () => {
    assertCniError(runFlannel(box.env("ADD"), box.config({ name: "" })), 7, "missing network name");
  });

  it("invalid network name", () => {
    const e = assertCniError(
      runFlannel(box.env("ADD"), box.config({ name: "a b" })),
      7,
      "invalid characters found in network name",
    );
    assert.equal(e.details, "a b");
  });

  it("a field of the wrong type", () => {
    assertCniError(
      runFlannel(box.env("ADD"), box.config({ dataDir: 5 })),
      999,
      "loadFlannelNetConf failed: failed to load netconf: json: cannot unmarshal number into Go struct field NetConf.dataDir of type string",
    );
  });

  it("delegate with ipam", () => {
    assertCniError(
      runFlannel(box.env("ADD"), box.config({ delegate: { ipam: { type: "static" } } })),
      999,
      "'delegate' dictionary must not have 'ipam' field, it'll be set by flannel",
    );
    assert.deepEqual(box.calls(), []);
    assert.deepEqual(box.savedFiles(), []);
  });

  it("delegate with a non-string type", () => {
    assertCniError(
      runFlannel(box.env("ADD"), box.config({ delegate: { type: 7 } })),
      999,
      "'delegate' dictionary, if present, must have (string) 'type' field",
    );
  });

  it("missing delegate binary in CNI_PATH", () => {
    const empty = join(box.dir, "empty");
    mkdirSync(empty);
    const run = runFlannel(box.env("ADD", "ctr1", { CNI_PATH: `${empty}:/nonexistent` }), box.config());
    const e = assertCniError(
      run,
      999,
      `failed to delegate add: failed to find plugin "bridge" in path [${empty} /nonexistent]`,
    );
    assert.match(e.details ?? "", /containernetworking-plugins/);
    assert.deepEqual(box.savedFiles(), [], "no half state: the saved config is removed");
  });

  it("a delegate type that is a path", () => {
    const run = runFlannel(box.env("ADD"), box.config({ delegate: { type: "../../bin/sh" } }));
    assertCniError(run, 999, /invalid plugin name: \.\.\/\.\.\/bin\/sh/);
    assert.deepEqual(box.savedFiles(), []);
  });

  it("missing subnet.env names the file and where to look, and asks whether weftd runs", () => {
    const missing = join(box.dir, "nope.env");
    const run = runFlannel(box.env("ADD"), box.config({ subnetFile: missing }));
    const e = assertCniError(
      run,
      999,
      `failed to load flannel 'subnet.env' file: open ${missing}: no such file or directory. Check the flannel pod log for this node.`,
    );
    // The hint rides in details, which upstream leaves empty, so upstream's code and msg stay as they are.
    assert.match(e.details ?? "", /is weftd running on this node/);
  });

  it("subnet.env that is a directory", () => {
    const run = runFlannel(box.env("ADD"), box.config({ subnetFile: box.dir }));
    const e = assertCniError(
      run,
      999,
      `failed to load flannel 'subnet.env' file: read ${box.dir}: is a directory. Check the flannel pod log for this node.`,
    );
    assert.match(e.details ?? "", /is weftd running on this node/);
  });

  const corrupt: [string, string[], string][] = [
    [
      "a bad subnet",
      [
        "FLANNEL_NETWORK=10.250.0.0/16",
        "FLANNEL_SUBNET=10.250.3.1/33",
        "FLANNEL_MTU=1450",
        "FLANNEL_IPMASQ=true",
      ],
      "invalid CIDR address: 10.250.3.1/33",
    ],
    [
      "a bad network in a list",
      [
        "FLANNEL_NETWORK=10.250.0.0/16,10.999.0.0/16",
        "FLANNEL_SUBNET=10.250.3.1/24",
        "FLANNEL_MTU=1450",
        "FLANNEL_IPMASQ=true",
      ],
      "invalid CIDR address: 10.999.0.0/16",
    ],
    [
      "a leading zero",
      [
        "FLANNEL_NETWORK=010.250.0.0/16",
        "FLANNEL_SUBNET=10.250.3.1/24",
        "FLANNEL_MTU=1450",
        "FLANNEL_IPMASQ=true",
      ],
      "invalid CIDR address: 010.250.0.0/16",
    ],
    [
      "a bad MTU",
      [
        "FLANNEL_NETWORK=10.250.0.0/16",
        "FLANNEL_SUBNET=10.250.3.1/24",
        "FLANNEL_MTU=fast",
        "FLANNEL_IPMASQ=true",
      ],
      'strconv.ParseUint: parsing "fast": invalid syntax',
    ],
    [
      "an MTU out of range",
      [
        "FLANNEL_NETWORK=10.250.0.0/16",
        "FLANNEL_SUBNET=10.250.3.1/24",
        "FLANNEL_MTU=99999999999",
        "FLANNEL_IPMASQ=true",
      ],
      'strconv.ParseUint: parsing "99999999999": value out of range',
    ],
    [
      "missing keys",
      ["FLANNEL_NETWORK=10.250.0.0/16", "FLANNEL_SUBNET=10.250.3.1/24"],
      "SUBNETFILE is missing FLANNEL_MTU, FLANNEL_IPMASQ",
    ],
    [
      "no networks",
      ["FLANNEL_MTU=1450", "FLANNEL_IPMASQ=true"],
      "SUBNETFILE is missing FLANNEL_NETWORK, FLANNEL_IPV6_NETWORK, FLANNEL_SUBNET, FLANNEL_IPV6_SUBNET",
    ],
    [
      "a key without =",
      ["FLANNEL_NETWORK=10.250.0.0/16", "FLANNEL_SUBNET", "FLANNEL_MTU=1450", "FLANNEL_IPMASQ=true"],
      'SUBNETFILE: line 2: FLANNEL_SUBNET has no "=value"',
    ],
  ];
  for (const [what, lines, why] of corrupt) {
    it(`corrupt subnet.env: ${what}`, () => {
      box.writeSubnetEnv(lines);
      const run = runFlannel(box.env("ADD"), box.config());
      const msg = `failed to load flannel 'subnet.env' file: ${why.replace("SUBNETFILE", box.subnetFile)}. Check the flannel pod log for this node.`;
      const e = assertCniError(run, 999, msg);
      assert.match(e.details ?? "", /weftd/);
      assert.deepEqual(box.calls(), []);
      assert.deepEqual(box.savedFiles(), []);
    });
  }

  it("VERSION needs neither subnet.env nor stdin", () => {
    const run = runFlannel({ CNI_COMMAND: "VERSION" }, undefined);
    assert.equal(run.status, 0);
    assert.equal(
      run.stdout,
      '{"cniVersion":"1.1.0","supportedVersions":["0.1.0","0.2.0","0.3.0","0.3.1","0.4.0","1.0.0","1.1.0"]}\n',
    );
  });

  it("unknown command", () => {
    assertCniError(runFlannel(box.env("FROB"), box.config()), 4, "unknown CNI_COMMAND: FROB");
  });

  it("missing CNI_COMMAND", () => {
    const run = runFlannel({}, box.config());
    assertCniError(run, 4, "required env variables [CNI_COMMAND] missing");
    assert.match(run.stderr, /CNI protocol versions supported: 0\.1\.0/);
  });

  it("missing variables are all named", () => {
    const run = runFlannel({ CNI_COMMAND: "ADD", CNI_IFNAME: "eth0" }, box.config());
    assertCniError(run, 4, "required env variables [CNI_CONTAINERID,CNI_NETNS,CNI_PATH] missing");
  });

  it("DEL does not need CNI_NETNS", () => {
    const env = box.env("DEL");
    delete env["CNI_NETNS"];
    assert.equal(runFlannel(env, box.config()).status, 0);
  });

  it("a container ID that would escape dataDir", () => {
    const e = assertCniError(
      runFlannel(box.env("ADD", "../evil"), box.config()),
      4,
      "invalid characters in containerID",
    );
    assert.equal(e.details, "../evil");
  });

  it("an interface name too long", () => {
    const run = runFlannel(box.env("ADD", "ctr1", { CNI_IFNAME: "a-very-long-ifname0" }), box.config());
    assertCniError(run, 4, "interface name is too long");
  });

  it("an unsupported cniVersion", () => {
    const e = assertCniError(
      runFlannel(box.env("ADD"), box.config({ cniVersion: "9.9.9" })),
      1,
      "incompatible CNI versions",
    );
    assert.equal(
      e.details,
      'config is "9.9.9", plugin supports ["0.1.0" "0.2.0" "0.3.0" "0.3.1" "0.4.0" "1.0.0" "1.1.0"]',
    );
  });

  it("CHECK before 0.4.0", () => {
    assertCniError(runFlannel(box.env("CHECK"), box.config()), 1, "config version does not allow CHECK");
  });

  it("STATUS before 1.1.0", () => {
    assertCniError(
      runFlannel(box.env("STATUS"), box.config({ cniVersion: "1.0.0" })),
      1,
      "config version does not allow STATUS",
    );
  });

  it("CNI_NETNS that is the plugin's own namespace", () => {
    const run = runFlannel(box.env("ADD", "ctr1", { CNI_NETNS: "/proc/self/ns/net" }), box.config());
    assertCniError(run, 8, "plugin's netns and netns from CNI_NETNS should not be the same");
    assert.deepEqual(box.calls(), []);
  });

  it("the delegate's own CNI error is passed on, and the saved config removed", () => {
    box.addRecorder("bridge", { stdout: '{"code":11,"msg":"busy","details":"try later"}', exitCode: 1 });
    const e = assertCniError(runFlannel(box.env("ADD"), box.config()), 11, "busy");
    assert.equal(e.details, "try later");
    assert.deepEqual(box.savedFiles(), []);
  });

  it("a delegate failing without a CNI error", () => {
    box.addRecorder("bridge", { stdout: "", stderr: "kaboom", exitCode: 2 });
    assertCniError(
      runFlannel(box.env("ADD"), box.config()),
      999,
      'failed to delegate add: netplugin failed: "kaboom"',
    );
    assert.deepEqual(box.savedFiles(), []);
  });

  it("a delegate that exits non-zero and prints nothing", () => {
    box.addRecorder("bridge", { stdout: "", exitCode: 3 });
    assertCniError(
      runFlannel(box.env("ADD"), box.config()),
      999,
      "failed to delegate add: netplugin failed with no error message: exit status 3",
    );
  });

  it("a delegate killed by a signal", () => {
    writeFileSync(join(box.binDir, "bridge"), "#!/bin/sh\ncat >/dev/null\nkill -9 $$\n", { mode: 0o755 });
    assertCniError(
      runFlannel(box.env("ADD"), box.config()),
      999,
      "failed to delegate add: netplugin failed with no error message: signal: SIGKILL",
    );
    assert.deepEqual(box.savedFiles(), []);
  });

  it("a delegate that is not executable", () => {
    const path = join(box.binDir, "bridge");
    chmodSync(path, 0o644);
    const e = assertCniError(
      runFlannel(box.env("ADD"), box.config()),
      999,
      `failed to delegate add: cannot run ${path}: permission denied (is it executable?)`,
    );
    assert.match(e.details ?? "", /install the CNI reference plugins/);
  });

  it("a delegate whose #! interpreter is missing", () => {
    writeFileSync(join(box.binDir, "bridge"), "#!/nonexistent/sh\n", { mode: 0o755 });
    const path = join(box.binDir, "bridge");
    assertCniError(
      runFlannel(box.env("ADD"), box.config()),
      999,
      `failed to delegate add: cannot run ${path}: spawnSync ${path} ENOENT`,
    );
  });

  it("a delegate's stderr is passed on, its stdout is the result", () => {
    box.addRecorder("bridge", { stderr: "note from bridge" });
    const run = runFlannel(box.env("ADD"), box.config());
    assert.equal(run.status, 0, run.stdout);
    assert.equal(run.stderr, "note from bridge\n");
    assert.equal(JSON.parse(run.stdout).ips[0].address, "10.250.3.2/24");
  });

  it("a delegate being replaced (text file busy) is retried a second later", async () => {
    // A writer holds the delegate open for 1.5 s: exec fails with ETXTBSY until it lets go.
    const path = join(box.binDir, "bridge");
    const holder = spawn("sh", ["-c", `exec 3>>'${path}'; echo open; sleep 1.5`], { stdio: "pipe" });
    await new Promise<void>((done) => holder.stdout.once("data", () => done()));
    const run = runFlannel(box.env("ADD"), box.config());
    holder.kill();
    assert.equal(run.status, 0, run.stdout);
    assert.deepEqual(box.calls(), ["ADD"]);
  });

  it("a delegate printing a result that is not JSON", () => {
    box.addRecorder("bridge", { stdout: "hello" });
    assertCniError(
      runFlannel(box.env("ADD"), box.config()),
      6,
      /^failed to delegate add: the delegate's result is not JSON/,
    );
    assert.deepEqual(box.savedFiles(), []);
  });

  it("a repeated ADD that fails keeps the config an earlier ADD saved", () => {
    assert.equal(runFlannel(box.env("ADD"), box.config()).status, 0);
    const first = box.recorded("ADD");
    box.addRecorder("bridge", { stdout: '{"code":7,"msg":"already exists"}', exitCode: 1 });
    box.writeSubnetEnv(ipv4SubnetEnv.map((l) => l.replace("1450", "1400")));
    assertCniError(runFlannel(box.env("ADD"), box.config()), 7, "already exists");
    box.addRecorder("bridge");
    assert.equal(runFlannel(box.env("DEL"), box.config()).status, 0);
    assert.equal(box.recorded("DEL"), first, "DEL replays the first, successful ADD");
  });

  it("DEL whose delegate fails keeps the saved config for the retry", () => {
    assert.equal(runFlannel(box.env("ADD"), box.config()).status, 0);
    box.addRecorder("bridge", { stdout: '{"code":5,"msg":"io"}', exitCode: 1 });
    assertCniError(runFlannel(box.env("DEL"), box.config()), 5, "io");
    assert.deepEqual(box.savedFiles(), ["ctr1"]);
  });

  it("DEL with an unreadable saved config succeeds and drops it", () => {
    mkdirSync(box.dataDir, { recursive: true });
    writeFileSync(join(box.dataDir, "ctr1"), "garbage");
    const run = runFlannel(box.env("DEL"), box.config());
    assert.equal(run.status, 0, run.stdout);
    assert.equal(existsSync(join(box.dataDir, "ctr1")), false);
    assert.deepEqual(box.calls(), []);
  });

  it("an unwritable dataDir", () => {
    writeFileSync(join(box.dir, "file"), "");
    const run = runFlannel(box.env("ADD"), box.config({ dataDir: join(box.dir, "file", "sub") }));
    assertCniError(run, 5, /not a directory|file exists/);
    assert.deepEqual(box.calls(), []);
  });

  it("bad ipam.routes", () => {
    const run = runFlannel(box.env("ADD"), box.config({ ipam: { routes: [{ dst: "1.2.3.4/40" }] } }));
    assertCniError(
      run,
      999,
      "failed to assemble Delegate IPAM: failed to read IPAM routes: failed to parse ipam.routes: invalid CIDR address: 1.2.3.4/40",
    );
  });
});
