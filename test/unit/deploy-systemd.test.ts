/**
 * deploy/weftd.service, its /etc/default/weftd and the docker drop-in: systemd's own verifier accepts them, the
 * unit waits for weftd's READY=1 from its main PID, every FLANNELD_* setting is a weftd flag, and the drop-in's
 * variables are the ones weftd writes into subnet.env.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { chmodSync, cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { parseFlags, usage } from "../../src/daemon/flags.js";
import { parseCIDR } from "../../src/ip/ip-network.js";
import { writeSubnetEnv } from "../../src/lease/subnet-env.js";
import { repoRoot } from "../helpers/reference.js";

const deploy = (name: string) => readFileSync(join(repoRoot, "deploy", name), "utf8");
const tmp = mkdtempSync(join(tmpdir(), "weft-systemd-"));
after(() => rmSync(tmp, { recursive: true, force: true }));

/** key -> values of one [section] of a unit file (a key may repeat, e.g. ExecStart). */
function unitSection(text: string, section: string): Map<string, string[]> {
  const out = new Map<string, string[]>();
  let current = "";
  for (const raw of text.split("\n")) {
    const line = raw.trim();
    if (line === "" || line.startsWith("#")) continue;
    const header = /^\[(.+)\]$/.exec(line);
    if (header) current = header[1]!;
    else if (current === section) {
      const eq = line.indexOf("=");
      const key = line.slice(0, eq);
      out.set(key, [...(out.get(key) ?? []), line.slice(eq + 1)]);
    }
  }
  return out;
}

/** KEY=VALUE lines as systemd's EnvironmentFile reads the simple cases (no quotes are used in these files). */
function environmentFile(text: string): Record<string, string> {
  const env: Record<string, string> = {};
  for (const line of text.split("\n")) {
    const m = /^([A-Za-z_][A-Za-z0-9_]*)=(.*)$/.exec(line.trim());
    if (m) env[m[1]!] = m[2]!;
  }
  return env;
}

describe("systemd units in deploy/", () => {
  it("pass systemd-analyze verify", () => {
    // A throw-away root with the system's units, the two files installed where they go, and the programs
    // their ExecStart names (systemd checks those exist and are executable).
    const root = join(tmp, "root");
    mkdirSync(join(root, "usr/lib/systemd"), { recursive: true });
    cpSync("/usr/lib/systemd/system", join(root, "usr/lib/systemd/system"), {
      recursive: true,
      verbatimSymlinks: true,
    });
    const etc = join(root, "etc/systemd/system");
    mkdirSync(join(etc, "docker.service.d"), { recursive: true });
    writeFileSync(join(etc, "weftd.service"), deploy("weftd.service"));
    writeFileSync(join(etc, "docker.service.d/flannel.conf"), deploy("docker-flannel.conf"));
    // docker's own unit is not installed here; a minimal one stands in for the drop-in to apply to.
    writeFileSync(
      join(etc, "docker.service"),
      "[Unit]\nDescription=Docker\n[Service]\nExecStart=/usr/bin/dockerd\n",
    );
    for (const program of ["usr/local/bin/weftd", "usr/bin/dockerd"]) {
      mkdirSync(join(root, program, ".."), { recursive: true });
      writeFileSync(join(root, program), "#!/bin/sh\n");
      chmodSync(join(root, program), 0o755);
    }
    const verify = spawnSync(
      "systemd-analyze",
      [
        "verify",
        "--man=no",
        `--root=${root}`,
        "/etc/systemd/system/weftd.service",
        "/etc/systemd/system/docker.service",
      ],
      { encoding: "utf8" },
    );
    assert.equal(verify.status, 0, verify.stderr);
    assert.equal(verify.stderr.trim(), "", "no warnings (unknown keys, bad values)");
  });

  it("runs weftd as a notify service with a watchdog and its FLANNELD_* settings", () => {
    const service = unitSection(deploy("weftd.service"), "Service");
    assert.deepEqual(service.get("Type"), ["notify"]);
    // The addon sends from weftd's own pid, so systemd needs to accept only the main process.
    assert.deepEqual(service.get("NotifyAccess"), ["main"]);
    assert.deepEqual(service.get("EnvironmentFile"), ["-/etc/default/weftd"]);
    assert.match(service.get("WatchdogSec")?.[0] ?? "", /^\d+s$/);
    assert.deepEqual(service.get("ExecStart"), ["/usr/local/bin/weftd $WEFTD_OPTS"]);
  });

  it("sets only real weftd flags in /etc/default/weftd, and weftd reads them", () => {
    const text = deploy("weftd.default");
    const known = new Set([...usage("weftd").matchAll(/^ {2}-([a-z0-9-]+)/gm)].map((m) => m[1]!));
    const named = [...text.matchAll(/^#?(FLANNELD_[A-Z0-9_]+)=/gm)].map((m) => m[1]!);
    assert.ok(named.length >= 8);
    for (const name of named) {
      const flag = name.slice("FLANNELD_".length).toLowerCase().replace(/_/g, "-");
      assert.ok(known.has(flag), `${name} is not a weftd flag`);
    }
    const flags = parseFlags([], environmentFile(text));
    assert.equal(flags.string("etcd-endpoints"), "http://127.0.0.1:2379");
    assert.equal(flags.bool("ip-masq"), true);
    assert.equal(flags.string("subnet-file"), "/run/flannel/subnet.env");
  });

  it("starts docker after weftd with --bip and --mtu from the subnet.env weftd writes", async () => {
    const dropIn = deploy("docker-flannel.conf");
    const unit = unitSection(dropIn, "Unit");
    assert.deepEqual(unit.get("After"), ["weftd.service"]);
    const service = unitSection(dropIn, "Service");
    assert.deepEqual(service.get("EnvironmentFile"), ["/run/flannel/subnet.env"]);
    const exec = service.get("ExecStart")!;
    assert.equal(exec[0], "", "the drop-in first clears docker's own ExecStart");
    assert.match(exec[1]!, /^\/usr\/bin\/dockerd --bip=\$\{FLANNEL_SUBNET\} --mtu=\$\{FLANNEL_MTU\} /);

    const file = join(tmp, "subnet.env");
    await writeSubnetEnv(file, {
      network: parseCIDR("10.244.0.0/16")!,
      subnet: parseCIDR("10.244.63.0/24")!,
      ipv6Network: undefined,
      ipv6Subnet: undefined,
      mtu: 1450,
      ipMasq: true,
    });
    const env = environmentFile(readFileSync(file, "utf8"));
    const expanded = exec[1]!.replace(/\$\{([A-Z_]+)\}/g, (_, name: string) => {
      assert.ok(name in env, `subnet.env defines ${name}`);
      return env[name]!;
    });
    assert.match(expanded, / --bip=10\.244\.63\.1\/24 --mtu=1450 /);
  });
});
