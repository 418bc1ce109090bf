/** The flannel plugin's commands and its delegate config generation, with a recorder as the delegate. */
import assert from "node:assert/strict";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterEach, beforeEach, describe, it } from "node:test";
import { ipv4SubnetEnv, parseError, runFlannel, Sandbox } from "./cni-harness.js";

describe("flannel CNI plugin commands", () => {
  let box: Sandbox;
  beforeEach(() => {
    box = new Sandbox();
    box.writeSubnetEnv(ipv4SubnetEnv);
    box.addRecorder();
  });
  afterEach(() => box.remove());

  function addAndRecord(config: Record<string, unknown>): Record<string, unknown> {
    const run = runFlannel(box.env("ADD"), box.config(config));
    assert.equal(run.status, 0, run.stdout + run.stderr);
    return JSON.parse(box.recorded("ADD")!) as Record<string, unknown>;
  }

  it("passes runtimeConfig to the delegate and keeps the delegate's own mtu, ipMasq and isGateway", () => {
    const d = addAndRecord({
      runtimeConfig: { portMappings: [{ hostPort: 8080, containerPort: 80, protocol: "tcp" }] },
      delegate: { mtu: 1200, ipMasq: true, isGateway: false },
    });
    assert.deepEqual(d["runtimeConfig"], {
      portMappings: [{ containerPort: 80, hostPort: 8080, protocol: "tcp" }],
    });
    assert.equal(d["mtu"], 1200);
    assert.equal(d["ipMasq"], true);
    assert.equal(d["isGateway"], false);
  });

  it("does not force isGateway on other delegate types", () => {
    box.addRecorder("ipvlan");
    const d = addAndRecord({ delegate: { type: "ipvlan", master: "eth0" } });
    assert.equal(d["type"], "ipvlan");
    assert.equal("isGateway" in d, false);
    assert.deepEqual(box.calls(), ["ADD"]);
  });

  it("merges ipam: keeps its keys and type, normalises base routes, appends every flannel network once", () => {
    box.writeSubnetEnv([
      "FLANNEL_NETWORK=10.250.0.0/16,10.251.0.0/16,10.250.0.0/16",
      "FLANNEL_SUBNET=10.250.3.1/24",
      "FLANNEL_IPV6_NETWORK=FD44:0:0::/56",
      "FLANNEL_IPV6_SUBNET=fd44:0:0:3c::1/64",
      "FLANNEL_MTU=1450",
      "FLANNEL_IPMASQ=false",
    ]);
    const run = runFlannel(
      box.env("ADD"),
      box.config({
        ipam: {
          type: "host-local",
          dataDir: "/run/ipam",
          routes: [
            { dst: "0.0.0.0/0", gw: "10.250.3.1", extra: 1 },
            { dst: "192.168.1.5/16", priority: 5 },
          ],
        },
      }),
    );
    assert.equal(run.status, 0, run.stdout);
    assert.equal(
      box.recorded("ADD"),
      '{"cniVersion":"0.3.1","ipMasq":true,"ipam":{"dataDir":"/run/ipam","ranges":[[{"subnet":"10.250.3.0/24"}],' +
        '[{"subnet":"fd44:0:0:3c::/64"}]],"routes":[{"dst":"0.0.0.0/0","gw":"10.250.3.1"},' +
        '{"dst":"192.168.1.5/16","priority":5},{"dst":"10.250.0.0/16"},{"dst":"10.251.0.0/16"},{"dst":"fd44::/56"}],' +
        '"type":"host-local"},"isGateway":true,"mtu":1450,"name":"cbr0","type":"bridge"}',
    );
  });

  it("escapes and sorts like Go's encoding/json", () => {
    addAndRecord({ delegate: { zeta: "<a&b>", Alpha: "\u2028", bridge: "cni0" } });
    const bytes = box.recorded("ADD")!;
    assert.match(bytes, /^\{"Alpha":"\\u2028","bridge":"cni0","cniVersion"/);
    assert.match(bytes, /"zeta":"\\u003ca\\u0026b\\u003e"\}$/);
  });

  it("leaves cniVersion out of the delegate config when the network config has none", () => {
    const d = addAndRecord({ cniVersion: undefined });
    assert.equal("cniVersion" in d, false);
  });

  it("matches config fields case-insensitively, as Go does", () => {
    const other = join(box.dir, "other-data");
    const run = runFlannel(box.env("ADD"), box.config({ dataDir: undefined, DataDir: other }));
    assert.equal(run.status, 0, run.stdout);
    assert.equal(readFileSync(join(other, "ctr1"), "utf8"), box.recorded("ADD"));
  });

  it("converts a delegate result in another version to the requested one", () => {
    box.addRecorder("bridge", {
      stdout:
        '{"cniVersion":"1.0.0","interfaces":[{"name":"eth0"}],"ips":[{"interface":0,"address":"10.250.3.2/24",' +
        '"gateway":"10.250.3.1"},{"address":"fd44::2/64"}],"routes":[{"dst":"10.250.0.0/16"}],"dns":{}}',
    });
    const run = runFlannel(box.env("ADD"), box.config({ cniVersion: "0.4.0" }));
    assert.equal(run.status, 0, run.stdout);
    const result = JSON.parse(run.stdout) as { cniVersion: string; ips: { version: string }[] };
    assert.equal(result.cniVersion, "0.4.0");
    assert.deepEqual(
      result.ips.map((ip) => ip.version),
      ["4", "6"],
    );
  });

  it("passes a same-version result through", () => {
    const run = runFlannel(box.env("ADD"), box.config({ cniVersion: "1.0.0" }));
    assert.equal(run.status, 0, run.stdout);
    const result = JSON.parse(run.stdout) as Record<string, unknown>;
    assert.equal(result["cniVersion"], "1.0.0");
    assert.deepEqual(result["interfaces"], [{ name: "eth0", sandbox: "/var/run/netns/x" }]);
  });

  it("CHECK hands the saved config, prevResult and runtimeConfig to the delegate", () => {
    const add = runFlannel(box.env("ADD"), box.config({ cniVersion: "1.0.0" }));
    assert.equal(add.status, 0);
    const prevResult = JSON.parse(add.stdout) as Record<string, unknown>;
    const check = runFlannel(
      box.env("CHECK"),
      box.config({ cniVersion: "1.0.0", prevResult, runtimeConfig: { bandwidth: { ingressRate: 1 } } }),
    );
    assert.equal(check.status, 0, check.stdout);
    assert.equal(check.stdout, "");
    const sent = JSON.parse(box.recorded("CHECK")!) as Record<string, unknown>;
    assert.deepEqual(sent["prevResult"], prevResult);
    assert.deepEqual(sent["runtimeConfig"], { bandwidth: { ingressRate: 1 } });
    assert.equal(sent["mtu"], 1450);
  });

  it("CHECK of a container flannel never added", () => {
    const run = runFlannel(box.env("CHECK", "ghost"), box.config({ cniVersion: "1.0.0", prevResult: {} }));
    assert.equal(run.status, 1);
    assert.equal(parseError(run.stdout).code, 3);
  });

  it("CHECK reports a delegate's failed check", () => {
    assert.equal(runFlannel(box.env("ADD"), box.config({ cniVersion: "1.0.0" })).status, 0);
    box.addRecorder("bridge", { stdout: '{"code":999,"msg":"eth0 is missing"}', exitCode: 1 });
    const run = runFlannel(box.env("CHECK"), box.config({ cniVersion: "1.0.0", prevResult: {} }));
    assert.equal(run.status, 1);
    assert.equal(parseError(run.stdout).msg, "eth0 is missing");
  });

  it("STATUS is OK while subnet.env is readable and the delegate installed", () => {
    const run = runFlannel(box.env("STATUS"), box.config({ cniVersion: "1.1.0" }));
    assert.equal(run.status, 0, run.stdout);
    assert.equal(run.stdout, "");
  });

  it("STATUS without subnet.env: plugin not available", () => {
    const missing = join(box.dir, "absent.env");
    const run = runFlannel(
      { CNI_COMMAND: "STATUS" },
      box.config({ cniVersion: "1.1.0", subnetFile: missing }),
    );
    assert.equal(run.status, 1);
    const e = parseError(run.stdout);
    assert.equal(e.code, 50);
    assert.match(
      e.msg,
      new RegExp(`^plugin not available: failed to load flannel 'subnet.env' file: open ${missing}`),
    );
    assert.match(e.details ?? "", /is weftd running on this node/);
  });

  it("STATUS without the delegate binary: plugin not available", () => {
    const run = runFlannel(
      box.env("STATUS", "", { CNI_PATH: join(box.dir, "nowhere") }),
      box.config({ cniVersion: "1.1.0" }),
    );
    assert.equal(run.status, 1);
    assert.equal(parseError(run.stdout).code, 50);
  });

  it("GC removes saved configs of this network's stale attachments only", () => {
    for (const id of ["keep", "stale"]) {
      assert.equal(runFlannel(box.env("ADD", id), box.config()).status, 0);
    }
    writeFileSync(join(box.dataDir, "other-net"), '{"name":"othernet","type":"bridge"}');
    writeFileSync(join(box.dataDir, "corrupt"), "{");
    mkdirSync(join(box.dataDir, "a-directory"));
    const run = runFlannel(
      { CNI_COMMAND: "GC", CNI_PATH: box.binDir },
      box.config({
        cniVersion: "1.1.0",
        "cni.dev/valid-attachments": [{ containerID: "keep", ifname: "eth0" }],
      }),
    );
    assert.equal(run.status, 0, run.stdout);
    assert.deepEqual(box.savedFiles(), ["a-directory", "keep", "other-net"]);
  });

  it("GC without valid-attachments removes nothing", () => {
    assert.equal(runFlannel(box.env("ADD"), box.config()).status, 0);
    const run = runFlannel({ CNI_COMMAND: "GC" }, box.config({ cniVersion: "1.1.0" }));
    assert.equal(run.status, 1);
    assert.equal(parseError(run.stdout).code, 7);
    assert.deepEqual(box.savedFiles(), ["ctr1"]);
  });

  it("DEL replays the saved config even after subnet.env is gone", () => {
    assert.equal(runFlannel(box.env("ADD"), box.config()).status, 0);
    const saved = box.recorded("ADD");
    box.writeSubnetEnv([]);
    const run = runFlannel(box.env("DEL"), box.config({ delegate: { bridge: "changed" } }));
    assert.equal(run.status, 0, run.stdout);
    assert.equal(box.recorded("DEL"), saved);
    assert.deepEqual(box.savedFiles(), []);
  });
});
