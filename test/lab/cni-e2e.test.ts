/**
 * The real thing end to end: weftd on 3 lab hosts (vxlan, then host-gw, both with --ip-masq) and two pods
 * per host made by the `flannel` plugin exactly as a runtime does it (the plugin runs in the host's
 * namespace, each pod is a fresh netns, the delegate is the reference bridge + host-local). Every pod
 * reaches every other, iperf3 runs between hosts, egress to the fabric is masqueraded and pod-to-pod
 * traffic is not; DEL undoes everything. Needs root, /usr/lib/cni, iperf3 and etcd.
 */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { existsSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { pluginArgv, pluginPath } from "../helpers/cni-plugin.js";
import { Lab, type LabHost, type LabProcess } from "./lab.js";
import { type Cluster, HOST_GW, startCluster, VXLAN } from "./weft-cluster.js";

const cniBin = "/usr/lib/cni";

function missingPrerequisite(): string | false {
  if (process.getuid?.() !== 0) return "needs root (network namespaces)";
  for (const p of ["bridge", "host-local"]) {
    if (!existsSync(join(cniBin, p)))
      return `needs ${cniBin}/${p} (apt-get install containernetworking-plugins)`;
  }
  for (const p of ["/usr/bin/etcd", "/usr/bin/iperf3"]) {
    if (!existsSync(p)) return `needs ${p} (scripts/setup.sh installs it)`;
  }
  return false;
}

const skip = missingPrerequisite();
const POD_CIDR = /^10\.244\.(\d+)\.(\d+)\/24$/;
const ECHO_PORT = 18_090;
const IPERF_PORT = 18_091;

/**
 * Pod namespaces are made with `ip netns add`, outside the lab's own list; every one ever made is
 * deleted at exit too, so a failed or interrupted run leaves none behind.
 */
const livePodNamespaces = new Set<string>();
process.on("exit", () => {
  for (const ns of livePodNamespaces) {
    try {
      execFileSync("ip", ["netns", "del", ns], { stdio: "ignore", timeout: 5_000 });
    } catch {
      // already gone
    }
  }
});

interface Pod {
  readonly host: LabHost;
  /** The pod's netns name (also its CNI_CONTAINERID). */
  readonly ns: string;
  /** e.g. "10.244.7.2", once ADD succeeded. */
  ip: string;
  /** ADD's result: CHECK gets it back as prevResult, as a runtime does. */
  result: unknown;
  added: boolean;
}

/** Tiny TCP server: answers every connection with the peer address it sees, then closes it. */
const echoServer = `
const server = require("node:net").createServer((s) => s.end(s.remoteAddress + "\\n"));
server.listen(${ECHO_PORT}, "0.0.0.0", () => console.log("listening"));
`;

/** Connects and prints what the server answered; bounded by its own timer. */
const echoClient = `
const [host, port] = process.argv.slice(1);
const s = require("node:net").connect(Number(port), host);
let out = "";
s.setEncoding("utf8").on("data", (d) => { out += d; });
s.on("end", () => { process.stdout.write(out); process.exit(0); });
s.on("error", (e) => { console.error(e.message); process.exit(1); });
setTimeout(() => { console.error("timed out"); process.exit(2); }, 5000);
`;

for (const [backend, config] of [
  ["vxlan", VXLAN],
  ["host-gw", HOST_GW],
] as const) {
  describe(`flannel CNI plugin end to end: weftd ${backend} --ip-masq, 3 hosts x 2 pods`, {
    skip,
    timeout: 180_000,
  }, () => {
    let lab: Lab;
    let cluster: Cluster;
    let plugin: string;
    let network: string;
    const pods: Pod[] = [];

    const dataDir = (host: LabHost) => join(lab.hostDir(host), "cni-flannel");
    const ipamDir = (host: LabHost) => join(lab.hostDir(host), "cni-ipam");

    /** kube-flannel's cni-conf.json entry, pointed at this host's subnet.env and private state dirs. */
    function netConf(host: LabHost, extra: Record<string, unknown> = {}): string {
      return JSON.stringify({
        cniVersion: "1.0.0",
        name: network,
        type: "flannel",
        subnetFile: lab.subnetFile(host),
        dataDir: dataDir(host),
        // host-local keeps its leases here instead of /var/lib/cni/networks/<name>.
        ipam: { dataDir: ipamDir(host) },
        delegate: { hairpinMode: true, isDefaultGateway: true },
        ...extra,
      });
    }

    /** Runs the plugin in the pod's host namespace, as kubelet's runtime would on that node. */
    function runPlugin(command: "ADD" | "DEL" | "CHECK", pod: Pod) {
      return lab.exec(pod.host, pluginArgv(plugin), {
        env: {
          CNI_COMMAND: command,
          CNI_CONTAINERID: pod.ns,
          CNI_NETNS: `/run/netns/${pod.ns}`,
          CNI_IFNAME: "eth0",
          CNI_PATH: cniBin,
        },
        input: netConf(pod.host, command === "CHECK" ? { prevResult: pod.result } : {}),
        timeoutMs: 30_000,
      });
    }

    /** Runs argv inside a pod: `ip netns exec` from the pod's host (the lab runs only in its own namespaces). */
    const inPod = (pod: Pod, argv: readonly string[]) => ["ip", "netns", "exec", pod.ns, ...argv];

    /**
     * A server in a pod. `timeout` stays in the host's namespace as its parent (lab.spawn checks that the
     * pid it returns is in the host's), bounds its life and passes stop()'s SIGTERM on to it.
     */
    const spawnInPod = (pod: Pod, argv: readonly string[]) =>
      lab.spawn(pod.host, ["timeout", "60", ...inPod(pod, argv)]);

    async function addPod(host: LabHost, n: number): Promise<Pod> {
      const pod: Pod = {
        host,
        ns: `${lab.name}-h${host.index}p${n}`,
        ip: "",
        result: undefined,
        added: false,
      };
      execFileSync("ip", ["netns", "add", pod.ns], { timeout: 10_000 });
      livePodNamespaces.add(pod.ns);
      pods.push(pod);
      execFileSync("ip", ["-n", pod.ns, "link", "set", "lo", "up"], { timeout: 10_000 });
      const add = await runPlugin("ADD", pod);
      assert.equal(add.code, 0, `ADD ${pod.ns}: ${add.stdout} ${add.stderr}`);
      pod.added = true;
      const result = JSON.parse(add.stdout) as { ips?: { address: string }[] };
      pod.result = result;
      const address = result.ips?.[0]?.address ?? "";
      assert.match(address, POD_CIDR, `ADD result for ${pod.ns}: ${add.stdout}`);
      pod.ip = address.split("/")[0]!;
      return pod;
    }

    async function echoFrom(pod: Pod, where: LabHost | string, serverIp: string): Promise<string> {
      const argv = inPod(pod, [process.execPath, "-e", echoClient, serverIp, String(ECHO_PORT)]);
      const run = await lab.exec(pod.host, argv, { timeoutMs: 15_000 });
      assert.equal(run.code, 0, `echo from ${pod.ns} (${pod.ip}) to ${serverIp} in ${where}: ${run.stderr}`);
      return run.stdout.trim();
    }

    before(async () => {
      plugin = pluginPath;
      if (!existsSync(plugin)) throw new Error(`the flannel plugin is not built: ${plugin} (npm run build)`);
      lab = await Lab.create({ hosts: 3, tag: `cni${backend.replace("-", "")}` });
      network = `cbr0-${lab.name}`;
      cluster = await startCluster(lab, config, ["--ip-masq"]);
      for (const host of lab.hosts) for (const n of [1, 2]) await addPod(host, n);
    });

    after(async () => {
      // Best effort: DEL what is still added (the bridge's veths go with the netns anyway), then the netns.
      for (const pod of pods) if (pod.added && lab) await runPlugin("DEL", pod).catch(() => {});
      for (const pod of pods) {
        try {
          execFileSync("ip", ["netns", "del", pod.ns], { stdio: "ignore", timeout: 10_000 });
        } catch {
          // already gone
        }
        livePodNamespaces.delete(pod.ns);
      }
      // In case a delegate config ever lacks our ipam dataDir: host-local's default place.
      if (network) rmSync(`/var/lib/cni/networks/${network}`, { recursive: true, force: true });
      await lab?.destroy();
    });

    it("gives every pod an address from its host's lease, with a saved delegate config and CHECK passing", async () => {
      for (const pod of pods) {
        const lease = cluster.leases[pod.host.index - 1]!;
        assert.equal(
          pod.ip.split(".").slice(0, 3).join("."),
          lease.base,
          `${pod.ns} ${pod.ip} vs ${lease.subnet}`,
        );
        const saved = JSON.parse(readFileSync(join(dataDir(pod.host), pod.ns), "utf8")) as {
          ipMasq?: boolean;
          ipam?: { ranges?: { subnet: string }[][] };
        };
        // weftd masquerades (--ip-masq), so the bridge must not as well.
        assert.equal(saved.ipMasq, false);
        assert.equal(saved.ipam?.ranges?.[0]?.[0]?.subnet, lease.subnet);
        const check = await runPlugin("CHECK", pod);
        assert.equal(check.code, 0, `CHECK ${pod.ns}: ${check.stdout} ${check.stderr}`);
      }
      assert.equal(new Set(pods.map((p) => p.ip)).size, pods.length, "pod addresses are unique");
    });

    it("lets every pod reach every other pod, on its own host and across hosts", async () => {
      const failures: string[] = [];
      for (const from of pods) {
        for (const to of pods) {
          if (from === to) continue;
          const argv = inPod(from, ["ping", "-q", "-c", "2", "-i", "0.1", "-W", "1", "-w", "4", to.ip]);
          const run = await lab.exec(from.host, argv, { timeoutMs: 15_000 });
          const received = Number(/(\d+) (?:packets )?received/.exec(run.stdout)?.[1] ?? 0);
          if (received === 0) {
            failures.push(
              `${from.ns} (${from.ip}) -> ${to.ns} (${to.ip}): ${(run.stdout + run.stderr).trim().split("\n").pop()}`,
            );
          }
        }
      }
      assert.deepEqual(failures, [], "pods that could not reach each other");
    });

    it("carries an iperf3 run between pods on different hosts", async () => {
      const server = pods.find((p) => p.host.index === 2)!;
      const client = pods.find((p) => p.host.index === 1)!;
      const iperf = await spawnInPod(server, [
        "iperf3",
        "-s",
        "-1",
        "--forceflush",
        "-B",
        server.ip,
        "-p",
        String(IPERF_PORT),
      ]);
      try {
        await iperf.waitForOutput(/Server listening/, 10_000);
        const argv = [
          "iperf3",
          "-c",
          server.ip,
          "-p",
          String(IPERF_PORT),
          "-t",
          "2",
          "-J",
          "--connect-timeout",
          "3000",
        ];
        const run = await lab.exec(client.host, inPod(client, argv), { timeoutMs: 20_000 });
        const report = JSON.parse(run.stdout) as {
          error?: string;
          start?: { connected?: { local_host: string }[] };
          end?: { sum_received?: { bits_per_second?: number } };
        };
        assert.equal(report.error, undefined, `iperf3 ${client.ip} -> ${server.ip}: ${report.error}`);
        assert.equal(report.start?.connected?.[0]?.local_host, client.ip);
        const bps = report.end?.sum_received?.bits_per_second ?? 0;
        assert.ok(bps > 10e6, `throughput ${bps} bit/s is implausibly low`);
      } finally {
        await iperf.stop("SIGTERM", 2_000);
      }
    });

    it("masquerades pod egress to the fabric as the host's address, but not pod-to-pod traffic", async () => {
      const fabricEcho = await lab.spawn(lab.fabric, [process.execPath, "-e", echoServer]);
      const target = pods.find((p) => p.host.index === 2)!;
      let podEcho: LabProcess | undefined;
      try {
        await fabricEcho.waitForOutput(/listening/, 10_000);
        for (const pod of pods) {
          assert.equal(
            await echoFrom(pod, lab.fabric, lab.fabricIp),
            pod.host.ip,
            `${pod.ns} (${pod.ip}) seen by the fabric`,
          );
        }
        podEcho = await spawnInPod(target, [process.execPath, "-e", echoServer]);
        await podEcho.waitForOutput(/listening/, 10_000);
        for (const pod of pods) {
          if (pod === target) continue;
          assert.equal(await echoFrom(pod, target.ns, target.ip), pod.ip, `${pod.ns} seen by ${target.ns}`);
        }
      } finally {
        await fabricEcho.stop("SIGTERM", 2_000);
        await podEcho?.stop("SIGTERM", 2_000);
      }
    });

    it("DEL removes every pod's interface and saved config; a second DEL succeeds", async () => {
      for (const pod of pods) {
        const del = await runPlugin("DEL", pod);
        assert.equal(del.code, 0, `DEL ${pod.ns}: ${del.stdout} ${del.stderr}`);
        pod.added = false;
        const links = execFileSync("ip", ["-n", pod.ns, "-o", "link", "show"], { encoding: "utf8" });
        assert.doesNotMatch(links, /eth0/, `${pod.ns} still has eth0`);
        const again = await runPlugin("DEL", pod);
        assert.equal(again.code, 0, `second DEL ${pod.ns}: ${again.stdout} ${again.stderr}`);
      }
      for (const host of lab.hosts) {
        assert.deepEqual(readdirSync(dataDir(host)), [], `${dataDir(host)} is empty`);
        // host-local released every address (only its lock and last-reserved bookkeeping remain).
        const leases = readdirSync(join(ipamDir(host), network)).filter((f) =>
          /^\d+\.\d+\.\d+\.\d+$/.test(f),
        );
        assert.deepEqual(leases, [], `host-local leases left on ${host.name}`);
      }
    });
  });
}
