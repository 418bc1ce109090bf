/**
 * weft's container image, really built (deploy/build-image.sh: mmdebstrap's Debian 12, npm's Node binary,
 * podman; cached by a hash of its inputs) and run as deploy/kube-weft.yml runs it: the init containers install
 * the plugin and the conflist into host directories, and weftd runs in the host network of a lab host
 * (podman --network ns:, NET_ADMIN and NET_RAW, /run/flannel mounted), programs that host and carries pod
 * traffic to a host running weftd natively.
 */
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { parseDocument } from "yaml";
import { repoRoot } from "../helpers/reference.js";
import { DEFAULT_WEFT_TOKEN } from "../kube-api/identities.js";
import { startLabApi } from "../kube-api/lab-api.js";
import { withLab } from "./lab.js";
import { runCommand } from "./lab-command.js";
import {
  addPods,
  assertFullMeshPing,
  readLease,
  waitFor,
  waitForFullMesh,
  waitForLeases,
} from "./weft-cluster.js";

/** The image cache: kept between runs on purpose, so a second run does not build again. */
const STORE = process.env.WEFT_IMAGE_STORE ?? "/var/tmp/weft-image-test";
const skip = process.getuid?.() !== 0 ? "needs root (podman, network namespaces)" : false;

interface Container {
  readonly name: string;
  readonly securityContext?: { capabilities?: { add?: string[] } };
  readonly image: string;
  readonly command?: string[];
  readonly args?: string[];
  readonly volumeMounts?: Array<{ name: string; mountPath: string }>;
}

interface ManifestObject {
  readonly kind?: string;
  readonly data?: Record<string, string>;
  readonly spec?: { template: { spec: { containers: Container[]; initContainers: Container[] } } };
}

/** The DaemonSet and ConfigMap of the manifest, as the cluster would read them. */
function manifest(): {
  containers: Container[];
  initContainers: Container[];
  cniConf: string;
  netConf: string;
} {
  const text = readFileSync(join(repoRoot, "deploy", "kube-weft.yml"), "utf8");
  const docs = text.split(/^---$/m).map((d) => parseDocument(d).toJS() as ManifestObject | null);
  const ds = docs.find((d) => d?.kind === "DaemonSet")!;
  const cm = docs.find((d) => d?.kind === "ConfigMap")!;
  return {
    containers: ds.spec!.template.spec.containers,
    initContainers: ds.spec!.template.spec.initContainers,
    cniConf: cm.data!["cni-conf.json"]!,
    netConf: cm.data!["net-conf.json"]!,
  };
}

describe("the container image", { skip, timeout: 900_000 }, () => {
  let image = "";
  let dir = "";
  const env: Record<string, string> = {};
  const started: string[] = [];

  const podman = async (args: string[], timeoutMs = 120_000) => {
    const result = await runCommand(["podman", "--log-level=error", ...args], { env, timeoutMs });
    return result;
  };
  const podmanOk = async (args: string[], timeoutMs?: number) => {
    const result = await podman(args, timeoutMs);
    assert.equal(result.code, 0, `podman ${args.join(" ")}: ${result.stderr}`);
    return result.stdout;
  };

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), "weft-image-"));
    // As the cni-podman test: this machine refuses podman's default rlimits; cgroupfs, no systemd.
    writeFileSync(
      join(dir, "containers.conf"),
      [
        "[containers]",
        'default_ulimits = ["nofile=1024:1024", "nproc=4096:4096"]',
        "[engine]",
        'runtime = "runc"',
        'cgroup_manager = "cgroupfs"',
        'events_logger = "file"',
        "",
      ].join("\n"),
    );
    env.CONTAINERS_CONF = join(dir, "containers.conf");
    const build = await runCommand([join(repoRoot, "deploy", "build-image.sh"), "--store", STORE], {
      env,
      timeoutMs: 840_000,
    });
    assert.equal(build.code, 0, `deploy/build-image.sh failed:\n${build.stderr}`);
    image = build.stdout.trim().split("\n").pop()!;
    assert.match(image, /^localhost\/weft:\d+\.\d+\.\d+-[0-9a-f]{16}$/);
    env.CONTAINERS_STORAGE_CONF = join(STORE, "storage.conf");
  });

  after(async () => {
    for (const name of started) await podman(["rm", "--force", "--time", "0", name]).catch(() => undefined);
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it("is cached: a second build with the same inputs builds nothing and names the same image", async () => {
    const again = await runCommand([join(repoRoot, "deploy", "build-image.sh"), "--store", STORE], {
      env,
      timeoutMs: 120_000,
    });
    assert.equal(again.code, 0, again.stderr);
    assert.equal(again.stdout.trim().split("\n").pop(), image);
    assert.doesNotMatch(again.stderr, /building/, "nothing was rebuilt");
    // The manifest's name for it points at the same image.
    const ids = await podmanOk(["image", "inspect", "--format", "{{.Id}}", image, "localhost/weft:0.1.0"]);
    const [a, b] = ids.trim().split("\n");
    assert.equal(a, b);
  });

  it("ships the three executables and no Node", async () => {
    // Inside the image: /opt/weft/bin holds exactly weftd, weft and flannel, each the one the build made,
    // and no `node` is anywhere on the PATH.
    const listing = await podmanOk([
      "run",
      "--rm",
      "--network=none",
      "--entrypoint",
      "sh",
      image,
      "-c",
      'ls /opt/weft/bin; for f in /opt/weft/bin/*; do sha256sum "$f"; done; command -v node || echo "no node"',
    ]);
    const lines = listing.trim().split("\n");
    assert.deepEqual(lines.slice(0, 3), ["flannel", "weft", "weftd"]);
    const built = ["dist/cni/flannel", "dist/bin/weft", "dist/bin/weftd"].map((f) => join(repoRoot, f));
    const sums = await runCommand(["sha256sum", ...built]);
    const hashes = (text: string) =>
      text
        .trim()
        .split("\n")
        .map((l) => l.split(/\s+/)[0]);
    assert.deepEqual(hashes(lines.slice(3, 6).join("\n")), hashes(sums.stdout));
    assert.equal(lines[6], "no node");
  });

  it("installs the plugin and the conflist as the manifest's init containers do", async () => {
    const m = manifest();
    const hostBin = join(dir, "opt-cni-bin");
    const hostNetD = join(dir, "etc-cni-net.d");
    const cfg = join(dir, "kube-flannel-cfg");
    for (const d of [hostBin, hostNetD, cfg]) mkdirSync(d);
    // What an earlier image installed (Node and a launcher's target), which the new plugin replaces.
    mkdirSync(join(hostBin, "weft"));
    writeFileSync(join(hostBin, "weft", "node"), "");
    writeFileSync(join(cfg, "cni-conf.json"), m.cniConf);
    writeFileSync(join(cfg, "net-conf.json"), m.netConf);
    const volumes: Record<string, string> = { "cni-plugin": hostBin, cni: hostNetD, "flannel-cfg": cfg };
    assert.deepEqual(
      m.initContainers.map((c) => c.name),
      ["install-cni-plugin", "install-cni"],
    );
    for (const c of m.initContainers) {
      assert.equal(c.image, "localhost/weft:0.1.0");
      const mounts = (c.volumeMounts ?? []).flatMap((v) => ["-v", `${volumes[v.name]}:${v.mountPath}`]);
      await podmanOk([
        "run",
        "--rm",
        "--network=none",
        ...mounts,
        "--entrypoint",
        c.command![0]!,
        c.image,
        ...c.command!.slice(1),
        ...(c.args ?? []),
      ]);
    }
    assert.equal(readFileSync(join(hostNetD, "10-flannel.conflist"), "utf8"), m.cniConf);
    // The installed plugin is the shipped executable alone (the old weft/ is gone), and runs as it is.
    assert.deepEqual(readdirSync(hostBin), ["flannel"]);
    assert.ok(
      readFileSync(join(hostBin, "flannel")).equals(readFileSync(join(repoRoot, "dist/cni/flannel"))),
      "/opt/cni/bin/flannel is dist/cni/flannel",
    );
    const version = await runCommand([join(hostBin, "flannel")], {
      env: { CNI_COMMAND: "VERSION" },
      input: "{}",
    });
    assert.equal(version.code, 0, version.stderr);
    const answer = JSON.parse(version.stdout) as { supportedVersions: string[] };
    assert.ok(answer.supportedVersions.includes("1.0.0"), version.stdout);
  });

  it("runs weftd as the DaemonSet does on a lab host, programs it, and carries pod traffic to a native weftd", async () => {
    const m = manifest();
    const daemon = m.containers.find((c) => c.name === "kube-flannel")!;
    await withLab({ hosts: 2, tag: "image" }, async (lab) => {
      const [h1, h2] = [lab.host(1), lab.host(2)];
      const api = await startLabApi(lab);
      await api.createNode("node1", ["10.244.1.0/24"], h1.ip);
      await api.createNode("node2", ["10.244.2.0/24"], h2.ip);
      const netConf = JSON.parse(m.netConf) as object;
      const native = await lab.startWeftd(h2, api.weftdArgs(h2, netConf, ["--ip-masq"]), {
        NODE_NAME: "node2",
      });

      // What the kubelet gives the pod: its service account (token, CA) and the API's address, the
      // ConfigMap at /etc/kube-flannel/, the host's /run/flannel (here host 1's lab dir, so weftd in the
      // container writes lab.subnetFile(h1)), NODE_NAME from the downward API.
      const account = join(dir, "serviceaccount");
      const cfg = join(dir, "daemon-cfg");
      for (const d of [account, cfg]) mkdirSync(d);
      writeFileSync(join(account, "token"), DEFAULT_WEFT_TOKEN);
      writeFileSync(join(account, "ca.crt"), readFileSync(api.caFile));
      writeFileSync(join(account, "namespace"), "kube-flannel");
      writeFileSync(join(cfg, "cni-conf.json"), m.cniConf);
      writeFileSync(join(cfg, "net-conf.json"), m.netConf);
      const name = `weft-image-${process.pid}`;
      started.push(name);
      const caps = daemon.securityContext?.capabilities?.add ?? [];
      assert.deepEqual(caps, ["NET_ADMIN", "NET_RAW"]);
      await podmanOk([
        "run",
        "--detach",
        "--name",
        name,
        `--network=ns:${h1.netnsPath}`,
        ...caps.map((c) => `--cap-add=${c}`),
        "-v",
        `${lab.hostDir(h1)}:/run/flannel`,
        "-v",
        `${cfg}:/etc/kube-flannel:ro`,
        "-v",
        `${account}:/var/run/secrets/kubernetes.io/serviceaccount:ro`,
        "-e",
        "NODE_NAME=node1",
        "-e",
        `KUBERNETES_SERVICE_HOST=${lab.fabricIp}`,
        "-e",
        "KUBERNETES_SERVICE_PORT=6443",
        "--entrypoint",
        daemon.command![0]!,
        image,
        ...(daemon.args ?? []),
      ]);
      const logs = async () => {
        const out = await podman(["logs", name]);
        return out.stdout + out.stderr;
      };
      const explain = async (err: Error) => {
        throw new Error(`${err.message}\ncontainer log:\n${await logs()}\nnative weftd:\n${native.output()}`);
      };
      await waitFor(
        "subnet.env from weftd in the container",
        async () => (await readLease(lab, h1)) !== undefined,
        60_000,
        200,
      ).catch(explain);
      const [nativeLease] = await waitForLeases(lab, [native], 30_000, [h2]);
      const leases = [(await readLease(lab, h1))!, nativeLease!];
      assert.deepEqual(
        leases.map((l) => l.subnet),
        ["10.244.1.0/24", "10.244.2.0/24"],
      );
      await waitForFullMesh(lab, leases, 30_000).catch(explain);
      // The container programmed host 1: its vxlan device and its traffic rules are in host 1's namespace,
      // and its readiness probe (the manifest's /readyz on 127.0.0.1:10256) answers there.
      const link = JSON.parse(await lab.run(h1, ["ip", "-d", "-json", "link", "show", "flannel.1"]))[0];
      assert.equal(link.linkinfo.info_kind, "vxlan");
      assert.match(await lab.run(h1, ["iptables-save", "-t", "nat"]), /-A FLANNEL-POSTRTG /);
      await waitFor(
        "/readyz",
        async () => (await lab.exec(h1, ["curl", "-sf", "http://127.0.0.1:10256/readyz"])).code === 0,
        30_000,
        200,
      ).catch(explain);
      const node1 = await api.getNode("node1");
      assert.equal(node1.metadata.annotations["flannel.alpha.coreos.com/public-ip"], h1.ip);
      const pods = await addPods(lab, leases);
      await assertFullMeshPing(lab, pods);

      // podman stop sends SIGTERM, as the kubelet does: weftd exits cleanly and leaves the datapath.
      await podmanOk(["stop", "--time", "15", name], 60_000);
      const exit = await podmanOk(["inspect", "--format", "{{.State.ExitCode}}", name]);
      assert.equal(exit.trim(), "0", await logs());
      assert.ok((await lab.run(h1, ["ip", "link", "show", "flannel.1"])).includes("flannel.1"));
    });
  });
});
