/**
 * A real container runtime using the flannel plugin: Debian's podman (CNI network backend) runs a busybox
 * container on a flannel + portmap network. Podman runs inside a network namespace made for the test
 * (nsenter --net, so podman's own bind mounts under /run/netns stay visible between its invocations), so
 * the bridge, addresses, routes and portmap's iptables chains never touch the root namespace.
 * Storage, state and network configs are private to a temp dir. Needs root.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import {
  chmodSync,
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmdirSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { isScriptPlugin, pluginPath } from "../helpers/cni-plugin.js";

const cniBin = "/usr/lib/cni";
const busybox = "/bin/busybox";

function which(cmd: string): boolean {
  return spawnSync("sh", ["-c", `command -v ${cmd}`], { timeout: 5000 }).status === 0;
}

function missingPrerequisite(): string | false {
  if (process.getuid?.() !== 0) return "needs root (network namespaces, podman as root)";
  for (const cmd of ["podman", "runc", "conmon", "nsenter", "ip", "iptables"]) {
    if (!which(cmd)) return `needs ${cmd} (apt-get install podman runc iproute2 iptables util-linux)`;
  }
  if (!existsSync(busybox)) return `needs ${busybox} (apt-get install busybox-static)`;
  for (const p of ["bridge", "host-local", "portmap"]) {
    if (!existsSync(join(cniBin, p)))
      return `needs ${cniBin}/${p} (apt-get install containernetworking-plugins)`;
  }
  return false;
}

const skip = missingPrerequisite();
const tag = `${process.pid}`;
const hostNs = `weft-cni-pm-${tag}`;
const network = `weftpod${tag}`;
const container = `weftc${tag}`;
const token = `weft-ok-${tag}`;
const hostPort = 18080;
const subnet = "10.252.9";

interface Run {
  status: number | null;
  stdout: string;
  stderr: string;
}

function run(cmd: string, args: string[], env?: NodeJS.ProcessEnv, input?: string, timeout = 60_000): Run {
  const r = spawnSync(cmd, args, { encoding: "utf8", timeout, env: env ?? process.env, input: input ?? "" });
  return { status: r.status, stdout: r.stdout ?? "", stderr: r.stderr ?? (r.error ? String(r.error) : "") };
}

function sleep(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

/** Global paths podman or libcni may create even with private storage; removed after if the test made them. */
const globalPaths = ["/var/lib/cni/results", "/var/lib/cni"];

describe("podman runs a container on a flannel network", { skip, timeout: 240_000 }, () => {
  let dir = "";
  let podmanEnv: NodeJS.ProcessEnv = {};
  const preexisting = new Set(globalPaths.filter((p) => existsSync(p)));
  let nsCreated = false;

  function podman(args: string[], timeout = 90_000): Run {
    return run(
      "nsenter",
      [`--net=/run/netns/${hostNs}`, "podman", "--log-level=error", ...args],
      podmanEnv,
      "",
      timeout,
    );
  }

  function inHostNs(args: string[], input?: string): Run {
    return run("nsenter", [`--net=/run/netns/${hostNs}`, ...args], process.env, input, 15_000);
  }

  before(() => {
    dir = mkdtempSync(join(tmpdir(), "weft-cni-podman-"));
    const rootfs = join(dir, "rootfs");
    for (const d of ["bin", "www", "tmp", "proc", "sys", "dev", "etc"])
      mkdirSync(join(rootfs, d), { recursive: true });
    copyFileSync(busybox, join(rootfs, "bin/busybox"));
    chmodSync(join(rootfs, "bin/busybox"), 0o755);
    for (const applet of ["sh", "httpd", "ping", "ip", "sleep", "cat"])
      symlinkSync("busybox", join(rootfs, "bin", applet));
    writeFileSync(join(rootfs, "www/index.html"), token);

    const cniDir = join(dir, "cni-bin");
    mkdirSync(cniDir);
    // Installed as on a node: the executable itself is /opt/cni/bin/flannel (a script build gets a launcher).
    if (isScriptPlugin(pluginPath))
      writeFileSync(join(cniDir, "flannel"), `#!/bin/sh\nexec ${process.execPath} ${pluginPath}\n`);
    else copyFileSync(pluginPath, join(cniDir, "flannel"));
    chmodSync(join(cniDir, "flannel"), 0o755);

    const netDir = join(dir, "net.d");
    mkdirSync(netDir);
    writeFileSync(
      join(dir, "subnet.env"),
      `FLANNEL_NETWORK=10.252.0.0/16\nFLANNEL_SUBNET=${subnet}.1/24\nFLANNEL_MTU=1400\nFLANNEL_IPMASQ=true\n`,
    );
    writeFileSync(
      join(netDir, `${network}.conflist`),
      JSON.stringify({
        cniVersion: "0.4.0",
        name: network,
        plugins: [
          {
            type: "flannel",
            subnetFile: join(dir, "subnet.env"),
            dataDir: join(dir, "flannel"),
            ipam: { dataDir: join(dir, "ipam") },
            delegate: { hairpinMode: true, isDefaultGateway: true },
          },
          { type: "portmap", capabilities: { portMappings: true } },
        ],
      }),
    );
    writeFileSync(
      join(dir, "containers.conf"),
      [
        "[containers]",
        'default_ulimits = ["nofile=1024:1024", "nproc=4096:4096"]',
        "[engine]",
        'runtime = "runc"',
        'cgroup_manager = "cgroupfs"',
        'events_logger = "file"',
        `tmp_dir = "${join(dir, "libpod-tmp")}"`,
        "[network]",
        'network_backend = "cni"',
        `cni_plugin_dirs = ["${cniDir}", "${cniBin}"]`,
        `network_config_dir = "${netDir}"`,
        "",
      ].join("\n"),
    );
    writeFileSync(
      join(dir, "storage.conf"),
      `[storage]\ndriver = "vfs"\ngraphroot = "${join(dir, "storage")}"\nrunroot = "${join(dir, "run")}"\n`,
    );
    podmanEnv = {
      ...process.env,
      CONTAINERS_CONF: join(dir, "containers.conf"),
      CONTAINERS_STORAGE_CONF: join(dir, "storage.conf"),
    };
    const add = run("ip", ["netns", "add", hostNs]);
    assert.equal(add.status, 0, add.stderr);
    nsCreated = true;
    run("ip", ["-n", hostNs, "link", "set", "lo", "up"]);
  });

  after(() => {
    if (nsCreated) {
      podman(["rm", "--all", "--force", "--time", "0"]);
      run("ip", ["netns", "del", hostNs]);
    }
    // Nothing of podman's may stay mounted under the temp dir before it goes.
    const mounts = readFileSync("/proc/self/mounts", "utf8")
      .split("\n")
      .map((l) => l.split(" ")[1] ?? "")
      .filter((m) => dir !== "" && m.startsWith(dir))
      .sort()
      .reverse();
    for (const m of mounts) run("umount", ["-l", m]);
    if (dir !== "") rmSync(dir, { recursive: true, force: true });
    for (const p of globalPaths) {
      if (preexisting.has(p) || !existsSync(p)) continue;
      try {
        if (readdirSync(p).length === 0) rmdirSync(p);
      } catch {
        // Someone else's now: leave it.
      }
    }
  });

  it("uses podman's CNI network backend with the test's private config", () => {
    const info = podman([
      "info",
      "--format",
      "{{.Host.NetworkBackend}} {{.Host.OCIRuntime.Name}} {{.Store.GraphRoot}}",
    ]);
    assert.equal(info.status, 0, info.stderr);
    assert.equal(info.stdout.trim(), `cni runc ${join(dir, "storage")}`);
    const nets = podman(["network", "ls", "--format", "{{.Name}} {{.Driver}}"]);
    assert.match(nets.stdout, new RegExp(`^${network} flannel$`, "m"));
  });

  it("runs a container: address from the subnet, pings the gateway, serves a published port, cleans up on --rm", () => {
    const started = podman([
      "run",
      "-d",
      "--rm",
      "--name",
      container,
      "--network",
      network,
      "-p",
      `${hostPort}:8080`,
      "--rootfs",
      join(dir, "rootfs"),
      "/bin/httpd",
      "-f",
      "-p",
      "8080",
      "-h",
      "/www",
    ]);
    assert.equal(started.status, 0, `podman run: ${started.stderr}`);
    const id = started.stdout.trim();
    assert.match(id, /^[0-9a-f]{64}$/);
    assert.ok(existsSync(join(dir, "flannel", id)), "flannel saved the delegate config for the container");

    const addr = podman(["exec", container, "ip", "-4", "-o", "addr", "show", "eth0"]);
    assert.equal(addr.status, 0, addr.stderr);
    assert.match(addr.stdout, new RegExp(`inet ${subnet.replace(/\./g, "\\.")}\\.\\d+/24`));
    const link = podman(["exec", container, "ip", "-o", "link", "show", "eth0"]);
    assert.match(link.stdout, /mtu 1400 /);

    const ping = podman(["exec", container, "ping", "-c", "1", "-W", "2", `${subnet}.1`]);
    assert.equal(ping.status, 0, `ping the bridge gateway: ${ping.stdout} ${ping.stderr}`);

    // The bridge and its address are in the test's namespace, not in the root namespace.
    assert.match(
      run("ip", ["-n", hostNs, "-4", "-o", "addr", "show", "cni0"]).stdout,
      new RegExp(`inet ${subnet}\\.1/24`),
    );
    assert.equal(run("ip", ["-4", "-o", "route", "show", `${subnet}.0/24`]).stdout.trim(), "");

    // httpd may need a moment; try for up to 5 s.
    let body = "";
    for (let attempt = 0; attempt < 20 && !body.includes(token); attempt++) {
      if (attempt > 0) sleep(250);
      const get = inHostNs(
        ["busybox", "nc", `${subnet}.1`, `${hostPort}`],
        "GET /index.html HTTP/1.0\r\n\r\n",
      );
      body = get.stdout;
    }
    assert.match(body, new RegExp(token), "the published port answers through portmap's DNAT");

    const stop = podman(["stop", "--time", "1", container]);
    assert.equal(stop.status, 0, stop.stderr);
    let gone = false;
    for (let attempt = 0; attempt < 40 && !gone; attempt++) {
      if (attempt > 0) sleep(250);
      gone = podman(["ps", "-a", "-q", "--filter", `name=^${container}$`]).stdout.trim() === "";
    }
    assert.ok(gone, "--rm removed the container");
    assert.equal(existsSync(join(dir, "flannel", id)), false, "flannel's DEL removed the saved config");
    assert.deepEqual(
      readdirSync(join(dir, "ipam", network)).filter((f) => /^\d/.test(f)),
      [],
      "IP released",
    );
  });
});
