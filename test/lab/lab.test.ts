// Self-test of the lab: the underlay works, etcd works and survives a restart, processes stop by pid,
// and destroy() leaves nothing behind.
import assert from "node:assert/strict";
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { existsSync, readFileSync, readlinkSync, statSync } from "node:fs";
import { after, before, describe, test } from "node:test";
import { Lab, mergeFlags, withLab } from "./lab.js";

function rootLinkNames(): string[] {
  const links = JSON.parse(execFileSync("ip", ["-json", "link"], { encoding: "utf8", timeout: 5_000 }));
  return (links as { ifname: string }[]).map((link) => link.ifname).sort();
}

function namespaceNames(): string[] {
  return execFileSync("ip", ["netns", "list"], { encoding: "utf8", timeout: 5_000 })
    .split("\n")
    .map((line) => line.split(" ")[0]!)
    .filter(Boolean);
}

/** A zombie counts as dead: an orphan is reaped by init whenever init gets to it. */
function pidAlive(pid: number): boolean {
  try {
    return !/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, "utf8"));
  } catch {
    return false;
  }
}

describe("lab", { timeout: 120_000 }, () => {
  let lab: Lab;
  let rootLinksBefore: string[];

  before(async () => {
    rootLinksBefore = rootLinkNames();
    lab = await Lab.create({ hosts: 3, tag: "selftest" });
  });

  after(async () => {
    await lab?.destroy();
  });

  test("names hosts and addresses as documented", () => {
    assert.match(lab.fabric, /^wl\d+x\d+-selftest-fab$/);
    assert.deepEqual(
      lab.hosts.map((host) => [host.index, host.ip, host.netnsPath]),
      [1, 2, 3].map((n) => [n, `172.31.0.${n}`, `/run/netns/${lab.name}-h${n}`]),
    );
    for (const host of lab.hosts) assert.ok(existsSync(host.netnsPath), host.netnsPath);
  });

  test("every host reaches every other host and the fabric", async () => {
    const pings = lab.hosts.flatMap((from) =>
      [...lab.hosts.filter((to) => to !== from).map((to) => to.ip), lab.fabricIp].map(async (toIp) => {
        const result = await lab.ping(from, toIp, { count: 2 });
        return { from: from.name, toIp, received: result.received };
      }),
    );
    for (const { from, toIp, received } of await Promise.all(pings)) {
      assert.equal(received, 2, `${from} -> ${toIp}`);
    }
  });

  test("hosts have eth0 with MTU 1500, forwarding on, default route via the fabric", async () => {
    const host = lab.host(2);
    const link = JSON.parse(await lab.run(host, ["ip", "-json", "link", "show", "eth0"]))[0];
    assert.equal(link.mtu, 1500);
    assert.equal((await lab.run(host, ["sysctl", "-n", "net.ipv4.ip_forward"])).trim(), "1");
    assert.match(
      await lab.run(host, ["ip", "route", "show", "default"]),
      /default via 172\.31\.0\.254 dev eth0/,
    );
  });

  test("refuses to run anywhere but the lab's namespaces", async () => {
    await assert.rejects(lab.exec("not-a-lab-namespace", ["true"]), /not a namespace of lab/);
  });

  test("etcd is healthy and a put/get round-trips", async () => {
    await lab.startEtcd();
    assert.equal(lab.etcdEndpoint, "http://172.31.0.254:2379");
    assert.equal((await lab.etcdctl(["put", "/weft-lab/a", "one"])).trim(), "OK");
    await lab.etcdctl(["put", "/weft-lab/b", '{"two":2}']);
    assert.deepEqual(await lab.etcdGetPrefix("/weft-lab/"), [
      { key: "/weft-lab/a", value: "one" },
      { key: "/weft-lab/b", value: '{"two":2}' },
    ]);
    // Reachable from a host over the underlay, as weftd will reach it.
    const fromHost = await lab.exec(
      lab.host(3),
      ["etcdctl", `--endpoints=${lab.etcdEndpoint}`, "get", "/weft-lab/a"],
      {
        env: { ETCDCTL_API: "3" },
      },
    );
    assert.equal(fromHost.code, 0, fromHost.stderr);
    assert.equal(fromHost.stdout, "/weft-lab/a\none\n");
  });

  test("stopEtcd/startEtcd keeps the data", async () => {
    const firstPid = lab.etcd!.pid;
    const status = await lab.stopEtcd();
    assert.ok(status, "etcd was running");
    assert.equal(pidAlive(firstPid), false);
    await assert.rejects(lab.etcdctl(["--command-timeout=1s", "get", "/weft-lab/a"]));
    await lab.startEtcd();
    assert.notEqual(lab.etcd!.pid, firstPid);
    assert.deepEqual(await lab.etcdGetPrefix("/weft-lab/a"), [{ key: "/weft-lab/a", value: "one" }]);
  });

  test("a spawned process runs in its namespace and is stopped by pid", async () => {
    const host = lab.host(1);
    const sleeper = await lab.spawn(host, ["sleep", "60"]);
    assert.equal(readlinkSync(`/proc/${sleeper.pid}/ns/net`), `net:[${statSync(host.netnsPath).ino}]`);
    assert.match(readlinkSync(`/proc/${sleeper.pid}/exe`), /sleep$/);
    assert.deepEqual(await sleeper.stop(), { code: null, signal: "SIGTERM" });
    assert.equal(pidAlive(sleeper.pid), false);
  });

  test("a process that ignores SIGTERM is killed after the timeout; output is captured", async () => {
    const stubborn = await lab.spawn(lab.host(2), [
      process.execPath,
      "-e",
      "process.on('SIGTERM', () => console.log('ignoring SIGTERM')); console.log('ready'); setInterval(() => {}, 1000)",
    ]);
    await stubborn.waitForOutput(/ready/, 5_000);
    await assert.rejects(stubborn.waitForOutput(/never printed/, 100), /timed out after 100 ms/);
    const status = await stubborn.stop("SIGTERM", 500);
    assert.equal(status.signal, "SIGKILL");
    assert.match(stubborn.output(), /ready\n[\s\S]*ignoring SIGTERM/);
    assert.equal(pidAlive(stubborn.pid), false);
  });

  test("pod addresses on cni0 are reachable through a route, and iperf3 measures throughput", async () => {
    const [h1, h2] = [lab.host(1), lab.host(2)];
    await lab.addPodAddress(h1, "10.244.1.1/24");
    await lab.addPodAddress(h1, "10.244.1.1/24"); // idempotent
    await lab.run(h2, ["ip", "route", "add", "10.244.1.0/24", "via", h1.ip]);
    assert.equal((await lab.ping(h2, "10.244.1.1")).received, 3);
    assert.equal((await lab.ping(h2, "10.244.9.9", { count: 1, timeoutMs: 1_000 })).reachable, false);
    const bitsPerSecond = await lab.iperf3(h1, h2, "10.244.1.1", { seconds: 1 });
    assert.ok(bitsPerSecond > 1e8, `throughput ${bitsPerSecond} bits/s`);
  });

  test("startWeftd merges flags by name", () => {
    const defaults = ["--etcd-endpoints=http://a:2379", "--iface=eth0", "--subnet-file=/x"];
    assert.deepEqual(mergeFlags(defaults, ["--iface", "eth1", "-subnet-file=/y", "--ip-masq"]), [
      "--etcd-endpoints=http://a:2379",
      "--iface",
      "eth1",
      "-subnet-file=/y",
      "--ip-masq",
    ]);
    assert.ok(lab.subnetFile(lab.host(2)).startsWith(lab.tempDir));
  });

  test("destroy() removes namespaces, processes, temp dir and adds no root links", async () => {
    const etcdPid = lab.etcd!.pid;
    const orphan = await lab.spawn(lab.host(3), ["sleep", "60"]);
    const tempDir = lab.tempDir;
    await lab.destroy();
    await lab.destroy(); // idempotent
    assert.equal(pidAlive(etcdPid), false, "etcd is gone");
    assert.equal(pidAlive(orphan.pid), false, "spawned process is gone");
    assert.deepEqual(
      namespaceNames().filter((name) => name.startsWith(lab.name)),
      [],
    );
    assert.equal(existsSync(tempDir), false);
    assert.deepEqual(rootLinkNames(), rootLinksBefore);
  });
});

test("an IPv6 lab: hosts reach each other and the gateway over fd31::/64 at once", {
  timeout: 60_000,
}, async () => {
  await withLab({ hosts: 2, ipv6: true }, async (lab) => {
    assert.equal(lab.host(2).ip6, "fd31::2");
    assert.equal((await lab.ping(lab.host(1), "fd31::2", { count: 2 })).received, 2);
    assert.equal((await lab.ping(lab.host(2), "fd31::fe", { count: 2 })).received, 2);
    await lab.addPodAddress(lab.host(1), "fd44::1/64");
    await lab.run(lab.host(2), ["ip", "-6", "route", "add", "fd44::/64", "via", "fd31::1"]);
    assert.equal((await lab.ping(lab.host(2), "fd44::1", { count: 2 })).received, 2);
  });
});

/** Runs a module script in a child node process; resolves with its exit code, signal and stdout. */
function runChildScript(
  body: string,
  onLine: (line: string, child: ChildProcess) => void,
): Promise<{ code: number | null; signal: string | null; stdout: string }> {
  const script = `import { Lab } from ${JSON.stringify(new URL("./lab.js", import.meta.url).href)};\n${body}`;
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ["--input-type=module", "-e", script], {
      stdio: ["ignore", "pipe", "inherit"],
    });
    let stdout = "";
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`child script timed out; stdout: ${stdout}`));
    }, 30_000);
    child.stdout.setEncoding("utf8").on("data", (chunk: string) => {
      stdout += chunk;
      if (chunk.includes("\n")) onLine(stdout.trim().split("\n").at(-1)!, child);
    });
    child.on("close", (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout });
    });
  });
}

/** What a child's lab printed as its last stdout line: its name, temp dir and etcd pid. */
interface ChildLab {
  name: string;
  tempDir: string;
  etcdPid: number;
}

function assertChildLabGone(childLab: ChildLab): void {
  assert.deepEqual(
    namespaceNames().filter((name) => name.startsWith(childLab.name)),
    [],
  );
  assert.equal(existsSync(childLab.tempDir), false, childLab.tempDir);
  assert.equal(pidAlive(childLab.etcdPid), false, "etcd is gone");
}

const startChildLab = `
  const lab = await Lab.create({ hosts: 2, tag: "child" });
  const etcd = await lab.startEtcd();
  console.log(JSON.stringify({ name: lab.name, tempDir: lab.tempDir, etcdPid: etcd.pid }));
`;

test("SIGINT removes the lab and exits 130", { timeout: 60_000 }, async () => {
  let childLab: ChildLab | undefined;
  const result = await runChildScript(`${startChildLab}\nsetInterval(() => {}, 1000);`, (line, child) => {
    childLab = JSON.parse(line);
    child.kill("SIGINT");
  });
  assert.equal(result.code, 130);
  assertChildLabGone(childLab!);
});

test("a live owner's lab is not swept, whether it runs on node or bun", { timeout: 60_000 }, async () => {
  // The child runs on this test's runtime (process.execPath): under bun test, a bun process.
  let childLab: ChildLab | undefined;
  let swept: string[] = [];
  let namespacesDuringSweep: string[] = [];
  const result = await runChildScript(`${startChildLab}\nsetInterval(() => {}, 1000);`, (line, child) => {
    childLab = JSON.parse(line);
    void Lab.sweepStale().then((names) => {
      swept = names;
      namespacesDuringSweep = namespaceNames().filter((name) => name.startsWith(childLab!.name));
      child.kill("SIGINT");
    });
  });
  assert.equal(result.code, 130);
  assert.deepEqual(
    swept.filter((name) => name.includes(childLab!.name)),
    [],
    "the sweep took a live owner's lab",
  );
  assert.equal(namespacesDuringSweep.length, 3, namespacesDuringSweep.join(", "));
  assertChildLabGone(childLab!);
});

test("exiting without destroy() removes the lab", { timeout: 60_000 }, async () => {
  const result = await runChildScript(`${startChildLab}\nprocess.exit(3);`, () => {});
  assert.equal(result.code, 3);
  assertChildLabGone(JSON.parse(result.stdout.trim().split("\n").at(-1)!));
});

test("a lab whose owner died is swept", { timeout: 60_000 }, async () => {
  // A child node process builds a lab and is SIGKILLed, so none of its cleanup runs.
  const script = `
    import { Lab } from ${JSON.stringify(new URL("./lab.js", import.meta.url).href)};
    const lab = await Lab.create({ hosts: 1, tag: "orphan" });
    await lab.spawn(lab.host(1), ["sleep", "60"]);
    console.log(JSON.stringify({ name: lab.name, tempDir: lab.tempDir }));
    process.kill(process.pid, "SIGKILL");
  `;
  let stdout = "";
  try {
    execFileSync(process.execPath, ["--input-type=module", "-e", script], {
      encoding: "utf8",
      timeout: 30_000,
    });
  } catch (error) {
    stdout = (error as { stdout: string }).stdout;
  }
  const orphan = JSON.parse(stdout) as { name: string; tempDir: string };
  assert.equal(namespaceNames().filter((name) => name.startsWith(orphan.name)).length, 2);
  const sleeperPids = execFileSync("ip", ["netns", "pids", `${orphan.name}-h1`], { encoding: "utf8" })
    .split(/\s+/)
    .filter(Boolean)
    .map(Number);
  assert.equal(sleeperPids.length, 1);
  const swept = await Lab.sweepStale();
  assert.ok(swept.includes(`${orphan.name}-h1`), `swept ${swept.join(", ")}`);
  assert.deepEqual(
    namespaceNames().filter((name) => name.startsWith(orphan.name)),
    [],
  );
  assert.equal(existsSync(orphan.tempDir), false);
  assert.equal(pidAlive(sleeperPids[0]!), false);
});
