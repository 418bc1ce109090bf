/**
 * The flannel plugin with the real reference plugins (bridge + host-local) on this kernel. The plugin runs
 * inside a "host" network namespace made for the test, so the bridge it creates and every address and
 * route stay out of the machine's root namespace; each pod is a further namespace. Needs root.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { pluginArgv, pluginPath } from "../helpers/cni-plugin.js";

const cniBin = "/usr/lib/cni";
const skip =
  process.getuid?.() !== 0
    ? "needs root (network namespaces)"
    : !existsSync(join(cniBin, "bridge")) || !existsSync(join(cniBin, "host-local"))
      ? `needs ${cniBin}/bridge and host-local (apt-get install containernetworking-plugins)`
      : false;

const hostNs = `weft-cni-host-${process.pid}`;
const network = `weftlab${process.pid}`;
let podCount = 0;
const namespaces: string[] = [];

function sh(
  cmd: string,
  args: string[],
  input?: string,
): { status: number | null; stdout: string; stderr: string } {
  const run = spawnSync(cmd, args, { input: input ?? "", encoding: "utf8", timeout: 30_000 });
  if (run.error) throw run.error;
  return { status: run.status, stdout: run.stdout, stderr: run.stderr };
}

function mustSh(cmd: string, args: string[]): string {
  const run = sh(cmd, args);
  assert.equal(run.status, 0, `${cmd} ${args.join(" ")}: ${run.stderr}`);
  return run.stdout;
}

function addNamespace(name: string): void {
  mustSh("ip", ["netns", "add", name]);
  namespaces.push(name);
  mustSh("ip", ["-n", name, "link", "set", "lo", "up"]);
}

function newPod(): { ns: string; id: string } {
  podCount++;
  const ns = `weft-cni-${process.pid}-${podCount}`;
  addNamespace(ns);
  return { ns, id: `weftlab-${process.pid}-${podCount}` };
}

interface Addr {
  ifname: string;
  mtu: number;
  addr_info: { family: string; local: string; prefixlen: number }[];
}

function podLinks(ns: string): Addr[] {
  return JSON.parse(mustSh("ip", ["-n", ns, "-j", "addr", "show"])) as Addr[];
}

function podRoutes(ns: string, family: "-4" | "-6"): { dst: string; gateway?: string }[] {
  return JSON.parse(mustSh("ip", ["-n", ns, family, "-j", "route", "show"])) as {
    dst: string;
    gateway?: string;
  }[];
}

describe("flannel CNI plugin with bridge and host-local", { skip }, () => {
  let dir = "";
  let subnetFile = "";
  let dataDir = "";

  before(() => {
    dir = mkdtempSync(join(tmpdir(), "weft-cni-lab-"));
    subnetFile = join(dir, "subnet.env");
    dataDir = join(dir, "flannel");
    addNamespace(hostNs);
  });

  after(() => {
    for (const ns of namespaces.reverse()) sh("ip", ["netns", "del", ns]);
    rmSync(dir, { recursive: true, force: true });
    rmSync(`/var/lib/cni/networks/${network}`, { recursive: true, force: true });
  });

  function config(cniVersion: string, extra: Record<string, unknown> = {}): string {
    return JSON.stringify({
      cniVersion,
      name: network,
      type: "flannel",
      subnetFile,
      dataDir,
      // host-local keeps its leases here instead of /var/lib/cni/networks.
      ipam: { dataDir: join(dir, "ipam") },
      ...extra,
    });
  }

  function flannel(command: string, podNs: string, id: string, stdin: string) {
    return sh(
      "ip",
      [
        "netns",
        "exec",
        hostNs,
        "env",
        `CNI_COMMAND=${command}`,
        `CNI_CONTAINERID=${id}`,
        `CNI_NETNS=/run/netns/${podNs}`,
        "CNI_IFNAME=eth0",
        `CNI_PATH=${cniBin}`,
        ...pluginArgv(pluginPath),
      ],
      stdin,
    );
  }

  it("ADD gives the pod an address in FLANNEL_SUBNET, FLANNEL_MTU and a route to FLANNEL_NETWORK; CHECK, DEL, DEL", () => {
    writeFileSync(
      subnetFile,
      "FLANNEL_NETWORK=10.251.0.0/16\nFLANNEL_SUBNET=10.251.7.1/24\nFLANNEL_MTU=1400\nFLANNEL_IPMASQ=true\n",
    );
    const pod = newPod();
    const add = flannel("ADD", pod.ns, pod.id, config("1.0.0"));
    assert.equal(add.status, 0, `ADD: ${add.stdout} ${add.stderr}`);
    const result = JSON.parse(add.stdout) as {
      cniVersion: string;
      ips: { address: string; gateway: string }[];
    };
    assert.equal(result.cniVersion, "1.0.0");
    assert.match(result.ips[0]!.address, /^10\.251\.7\.\d+\/24$/);
    assert.equal(result.ips[0]!.gateway, "10.251.7.1");

    const eth0 = podLinks(pod.ns).find((l) => l.ifname === "eth0");
    assert.ok(eth0, "eth0 in the pod namespace");
    assert.equal(eth0.mtu, 1400);
    const v4 = eth0.addr_info.find((a) => a.family === "inet");
    assert.ok(
      v4 && /^10\.251\.7\.\d+$/.test(v4.local) && v4.prefixlen === 24,
      JSON.stringify(eth0.addr_info),
    );
    assert.ok(
      podRoutes(pod.ns, "-4").some((r) => r.dst === "10.251.0.0/16" && r.gateway === "10.251.7.1"),
      "route to FLANNEL_NETWORK via the bridge",
    );
    // The bridge lives in the host namespace made for the test, never in the root namespace.
    const bridge = JSON.parse(mustSh("ip", ["-n", hostNs, "-j", "addr", "show", "cni0"])) as Addr[];
    assert.ok(
      bridge[0]?.addr_info.some((a) => a.local === "10.251.7.1"),
      "cni0 is the gateway",
    );
    assert.ok(existsSync(join(dataDir, pod.id)));

    const check = flannel("CHECK", pod.ns, pod.id, config("1.0.0", { prevResult: result }));
    assert.equal(check.status, 0, `CHECK: ${check.stdout} ${check.stderr}`);

    const del = flannel("DEL", pod.ns, pod.id, config("1.0.0"));
    assert.equal(del.status, 0, `DEL: ${del.stdout} ${del.stderr}`);
    assert.equal(
      podLinks(pod.ns).some((l) => l.ifname === "eth0"),
      false,
      "DEL removes the pod's veth",
    );
    assert.equal(existsSync(join(dataDir, pod.id)), false, "DEL removes the saved config");
    const again = flannel("DEL", pod.ns, pod.id, config("1.0.0"));
    assert.equal(again.status, 0, `second DEL: ${again.stdout}`);
  });

  it("CHECK fails once the pod's interface is gone", () => {
    const pod = newPod();
    const add = flannel("ADD", pod.ns, pod.id, config("0.4.0"));
    assert.equal(add.status, 0, add.stdout);
    mustSh("ip", ["-n", pod.ns, "link", "del", "eth0"]);
    const check = flannel("CHECK", pod.ns, pod.id, config("0.4.0", { prevResult: JSON.parse(add.stdout) }));
    assert.equal(check.status, 1, "CHECK must notice");
    assert.equal(flannel("DEL", pod.ns, pod.id, config("0.4.0")).status, 0);
  });

  it("a dual-stack subnet.env gives the pod both families", () => {
    writeFileSync(
      subnetFile,
      "FLANNEL_NETWORK=10.251.0.0/16\nFLANNEL_SUBNET=10.251.7.1/24\nFLANNEL_IPV6_NETWORK=fd51::/56\n" +
        "FLANNEL_IPV6_SUBNET=fd51:0:0:7::1/64\nFLANNEL_MTU=1400\nFLANNEL_IPMASQ=false\n",
    );
    const pod = newPod();
    const add = flannel("ADD", pod.ns, pod.id, config("0.3.1"));
    assert.equal(add.status, 0, `ADD: ${add.stdout} ${add.stderr}`);
    const eth0 = podLinks(pod.ns).find((l) => l.ifname === "eth0");
    assert.ok(eth0);
    assert.ok(eth0.addr_info.some((a) => a.family === "inet" && a.local.startsWith("10.251.7.")));
    assert.ok(
      eth0.addr_info.some(
        (a) => a.family === "inet6" && a.local.startsWith("fd51:0:0:7:") && a.prefixlen === 64,
      ),
      JSON.stringify(eth0.addr_info),
    );
    assert.ok(
      podRoutes(pod.ns, "-6").some((r) => r.dst === "fd51::/56"),
      "route to FLANNEL_IPV6_NETWORK",
    );
    assert.equal(flannel("DEL", pod.ns, pod.id, config("0.3.1")).status, 0);
    assert.equal(
      podLinks(pod.ns).some((l) => l.ifname === "eth0"),
      false,
    );
  });
});
