/**
 * The plugin the package ships (its `flannel` bin) is one executable that needs no Node: it is an ELF
 * file linked against no libnode, and it makes a real pod (bridge + host-local) and removes it again with a
 * clean environment (`env -i`, PATH an empty directory) while every `node` on the machine is hidden by a
 * bind mount in a mount namespace of the test's own. The plugin runs in a network namespace made for the
 * test, the pod in another. Needs root.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import {
  closeSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { isScriptPlugin, pluginPath } from "../helpers/cni-plugin.js";

const cniBin = "/usr/lib/cni";
const skip =
  process.getuid?.() !== 0
    ? "needs root (network and mount namespaces)"
    : !existsSync(join(cniBin, "bridge")) || !existsSync(join(cniBin, "host-local"))
      ? `needs ${cniBin}/bridge and host-local (apt-get install containernetworking-plugins)`
      : isScriptPlugin(pluginPath)
        ? `WEFT_CNI_PLUGIN=${pluginPath} is a script build, not the executable`
        : false;

const tag = process.pid;
const hostNs = `weft-cni-exe-h${tag}`;
const podNs = `weft-cni-exe-p${tag}`;
const network = `weftexe${tag}`;

function run(
  cmd: string,
  args: string[],
  input = "",
): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(cmd, args, { input, encoding: "utf8", timeout: 30_000 });
  if (r.error) throw r.error;
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

function mustRun(cmd: string, args: string[]): string {
  const r = run(cmd, args);
  assert.equal(r.status, 0, `${cmd} ${args.join(" ")}: ${r.stderr}`);
  return r.stdout;
}

/** Every `node` a PATH lookup could find on this machine, by its real path (/bin may be /usr/bin). */
function nodesOnMachine(): string[] {
  const found = run("sh", ["-c", "which -a node nodejs 2>/dev/null; true"])
    .stdout.split("\n")
    .filter(Boolean);
  const real = found.map((p) => mustRun("readlink", ["-f", p]).trim());
  return [...new Set([...found, ...real])].filter((p) => statSync(p).isFile());
}

/**
 * Hides every node (bind-mounts /dev/null over it, in a mount namespace of this run only), checks that
 * none runs any more, then runs the plugin as a runtime does: only the CNI variables, PATH an empty dir.
 */
const hiddenNodeScript = `
set -eu
empty=$1; plugin=$2; shift 2
for n in "$@"; do mount --bind /dev/null "$n"; done
for n in "$@"; do if "$n" -e 0 2>/dev/null; then echo "$n still runs" >&2; exit 90; fi; done
if PATH=$empty command -v node >/dev/null; then echo "node is on PATH" >&2; exit 91; fi
exec /usr/bin/env -i CNI_COMMAND="$CNI_COMMAND" CNI_CONTAINERID="$CNI_CONTAINERID" CNI_NETNS="$CNI_NETNS" \\
  CNI_IFNAME=eth0 CNI_PATH=${cniBin} PATH="$empty" "$plugin"
`;

describe("the shipped flannel plugin is one executable that needs no Node", { skip }, () => {
  let dir = "";
  let emptyDir = "";
  const nodes = skip ? [] : nodesOnMachine();

  before(() => {
    dir = mkdtempSync(join(tmpdir(), "weft-cni-exe-"));
    emptyDir = join(dir, "empty-path");
    mkdirSync(emptyDir);
    writeFileSync(
      join(dir, "subnet.env"),
      "FLANNEL_NETWORK=10.249.0.0/16\nFLANNEL_SUBNET=10.249.5.1/24\nFLANNEL_MTU=1400\nFLANNEL_IPMASQ=true\n",
    );
    for (const ns of [hostNs, podNs]) {
      mustRun("ip", ["netns", "add", ns]);
      mustRun("ip", ["-n", ns, "link", "set", "lo", "up"]);
    }
  });

  after(() => {
    for (const ns of [podNs, hostNs]) run("ip", ["netns", "del", ns]);
    rmSync(dir, { recursive: true, force: true });
  });

  it("is an ELF executable, not a script, and links no libnode", () => {
    const head = Buffer.alloc(4);
    const fd = openSync(pluginPath, "r");
    readSync(fd, head, 0, 4, 0);
    closeSync(fd);
    assert.deepEqual([...head], [0x7f, 0x45, 0x4c, 0x46], `${pluginPath} starts with \\x7fELF`);
    assert.ok((statSync(pluginPath).mode & 0o111) !== 0, "executable");
    const ldd = mustRun("ldd", [pluginPath]);
    assert.match(ldd, /libc\.so/, ldd);
    assert.doesNotMatch(ldd, /node|not found/i, ldd);
  });

  function flannel(command: "ADD" | "DEL") {
    const conf = JSON.stringify({
      cniVersion: "1.0.0",
      name: network,
      type: "flannel",
      subnetFile: join(dir, "subnet.env"),
      dataDir: join(dir, "flannel"),
      ipam: { dataDir: join(dir, "ipam") },
      delegate: { isDefaultGateway: true },
    });
    // The variables reach the script through `env`; the script passes only the CNI ones on.
    return run(
      "ip",
      [
        "netns",
        "exec",
        hostNs,
        "env",
        `CNI_COMMAND=${command}`,
        `CNI_CONTAINERID=${podNs}`,
        `CNI_NETNS=/run/netns/${podNs}`,
        "unshare",
        "--mount",
        "--propagation",
        "private",
        "sh",
        "-c",
        hiddenNodeScript,
        "sh",
        emptyDir,
        pluginPath,
        ...nodes,
      ],
      conf,
    );
  }

  it("ADD and DEL make and remove a real pod with env -i and no node anywhere", () => {
    assert.ok(nodes.length > 0, "this machine has a node to hide (the tests run on one)");
    const add = flannel("ADD");
    assert.equal(add.status, 0, `ADD: ${add.stdout} ${add.stderr}`);
    assert.equal(add.stderr, "");
    const result = JSON.parse(add.stdout) as { ips: { address: string; gateway: string }[] };
    assert.match(result.ips[0]!.address, /^10\.249\.5\.\d+\/24$/);
    assert.equal(result.ips[0]!.gateway, "10.249.5.1");
    const eth0 = JSON.parse(mustRun("ip", ["-n", podNs, "-j", "addr", "show", "eth0"])) as {
      mtu: number;
      addr_info: { family: string; local: string }[];
    }[];
    assert.equal(eth0[0]?.mtu, 1400);
    assert.equal(
      eth0[0]?.addr_info.find((a) => a.family === "inet")?.local,
      result.ips[0]!.address.split("/")[0],
    );
    assert.ok(existsSync(join(dir, "flannel", podNs)), "the delegate config is saved for DEL");

    const del = flannel("DEL");
    assert.equal(del.status, 0, `DEL: ${del.stdout} ${del.stderr}`);
    assert.equal(del.stdout, "");
    assert.equal(run("ip", ["-n", podNs, "link", "show", "eth0"]).status, 1, "DEL removed the pod's eth0");
    assert.equal(existsSync(join(dir, "flannel", podNs)), false, "DEL removed the saved config");
  });
});
