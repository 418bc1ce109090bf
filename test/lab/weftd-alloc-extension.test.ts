// biome-ignore-all lint/suspicious/noTemplateCurlyInString: extension command lines use ${NAME}
/**
 * alloc and extension on 3 hosts with real weftd and etcd. alloc: leases and subnet.env, and nothing in
 * the kernel. extension: the configured commands (small scripts written here) run with flannel's
 * variables and stdin for every peer added and removed, as the files they write show.
 */
import assert from "node:assert/strict";
import { chmod, readFile, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { Lab, type LabHost, type LabProcess } from "./lab.js";
import { PREFIX, readLease, sleep, waitFor, waitForLeases } from "./weft-cluster.js";

/** What a host's kernel has that a backend could have programmed: links, routes, neighbours, FDB. */
async function kernelState(lab: Lab, host: LabHost): Promise<Record<string, string>> {
  const run = (argv: string[]) => lab.run(host, argv);
  const links = (JSON.parse(await run(["ip", "-json", "link", "show"])) as { ifname: string }[])
    .map((l) => l.ifname)
    .sort()
    .join(" ");
  return {
    links,
    routes4: await run(["ip", "-4", "route", "show", "table", "all"]),
    routes6: await run(["ip", "-6", "route", "show", "table", "all"]),
    neighbours: await run(["ip", "neigh", "show", "nud", "permanent"]),
    fdb: await run(["bridge", "fdb", "show", "dynamic"]),
  };
}

async function httpStatus(lab: Lab, host: LabHost, url: string): Promise<number> {
  const script = `fetch(${JSON.stringify(url)}).then((r) => console.log(r.status), () => console.log(0))`;
  const out = await lab.run(host, [process.execPath, "-e", script], { env: { NODE_EXTRA_CA_CERTS: "" } });
  return Number(out.trim());
}

describe("weftd with alloc on 3 hosts", { timeout: 120_000 }, () => {
  let lab: Lab;
  let weftds: LabProcess[];
  let before_: Record<string, string>[];

  before(async () => {
    lab = await Lab.create({ hosts: 3, tag: "alloc" });
    before_ = await Promise.all(lab.hosts.map((h) => kernelState(lab, h)));
    await lab.startEtcd();
    await lab.etcdctl(["put", `${PREFIX}/config`, '{"Network":"10.244.0.0/16","Backend":{"Type":"alloc"}}']);
    weftds = await Promise.all(
      lab.hosts.map((h) => lab.startWeftd(h, ["--healthz-port=10256", "--healthz-ip=127.0.0.1"])),
    );
    await waitForLeases(lab, weftds, 20_000);
  });
  after(async () => lab?.destroy());

  it("writes a lease per host in etcd, as flannel's alloc: PublicIP only, no BackendType", async () => {
    const leases = await lab.etcdGetPrefix(`${PREFIX}/subnets/`);
    assert.equal(leases.length, 3, JSON.stringify(leases));
    const values = leases.map((l) => l.value).sort();
    assert.deepEqual(
      values,
      lab.hosts.map((h) => `{"PublicIP":"${h.ip}","PublicIPv6":null}`),
    );
    for (const l of leases) assert.match(l.key, /^\/coreos\.com\/network\/subnets\/10\.244\.\d+\.0-24$/);
  });

  it("writes subnet.env with the interface MTU", async () => {
    const subnets = new Set<string>();
    for (const host of lab.hosts) {
      const text = await readFile(lab.subnetFile(host), "utf8");
      const lease = await readLease(lab, host);
      subnets.add(lease!.subnet);
      assert.equal(
        text,
        `FLANNEL_NETWORK=10.244.0.0/16\nFLANNEL_SUBNET=${lease!.base}.1/24\nFLANNEL_MTU=1500\nFLANNEL_IPMASQ=false\n`,
      );
    }
    assert.equal(subnets.size, 3);
  });

  it("turns ready, and programs nothing: no device, route, neighbour or FDB entry", async () => {
    for (const host of lab.hosts) {
      await waitFor(
        `/readyz on ${host.name}`,
        async () => (await httpStatus(lab, host, "http://127.0.0.1:10256/readyz")) === 200,
        20_000,
        200,
      );
    }
    // Give a wrongly programming backend time to show it.
    await sleep(500);
    const now = await Promise.all(lab.hosts.map((h) => kernelState(lab, h)));
    assert.deepEqual(now, before_);
    for (const weftd of weftds) assert.ok(weftd.running, weftd.output());
  });
});

describe("weftd with extension on 3 hosts", { timeout: 180_000 }, () => {
  let lab: Lab;
  let weftds: LabProcess[];
  let dir: string;
  const logOf = (host: LabHost) => join(dir, `${host.name}.log`);
  const lines = async (host: LabHost) => {
    try {
      return (await readFile(logOf(host), "utf8")).split("\n").filter(Boolean);
    } catch {
      return [];
    }
  };
  const leaseValue = async (key: string) =>
    (await lab.etcdGetPrefix(`${PREFIX}/subnets/${key}`)).find((kv) => kv.key.endsWith(key))?.value;

  async function script(name: string, body: string): Promise<string> {
    const path = join(dir, name);
    await writeFile(path, `#!/bin/sh\n${body}\n`);
    await chmod(path, 0o755);
    return path;
  }

  let hostile = "";
  const vars = "SUBNET=$SUBNET PUBLIC_IP=$PUBLIC_IP IPV6SUBNET=$IPV6SUBNET PUBLIC_IPV6=$PUBLIC_IPV6";

  before(async () => {
    lab = await Lab.create({ hosts: 3, tag: "ext" });
    dir = lab.tempDir;
    // Trailing and leading spaces: flannel publishes the trimmed output.
    const pre = await script(
      "pre.sh",
      'read empty; echo "pre stdin=[$empty]" >> "$EXT_LOG"; printf "  mac-%s \\n\\n" "$EXT_HOST"',
    );
    const post = await script("post.sh", `echo "post NETWORK=$NETWORK ${vars} args=$*" >> "$EXT_LOG"`);
    // Fails once for the hostile peer, to show the retry; never for the others.
    const add = await script(
      "add.sh",
      [
        "read data",
        'if [ "$SUBNET" = "10.244.200.0/24" ] && [ ! -e "$EXT_LOG.failed" ]; then touch "$EXT_LOG.failed"; echo "no route to $SUBNET"; exit 1; fi',
        `echo "add ${vars} stdin=[$data] args=$*" >> "$EXT_LOG"`,
      ].join("\n"),
    );
    const remove = await script(
      "remove.sh",
      `read data; echo "remove ${vars} stdin=[$data] args=$*" >> "$EXT_LOG"`,
    );
    await lab.startEtcd();
    // First a config written for flanneld v0.20.2's sh -c: refused with one clear line; weftd waits.
    const config = (addCommand: string) =>
      JSON.stringify({
        Network: "10.244.0.0/16",
        Backend: {
          Type: "extension",
          PreStartupCommand: pre,
          PostStartupCommand: `${post} $SUBNET`,
          SubnetAddCommand: addCommand,
          SubnetRemoveCommand: `${remove} \${SUBNET}`,
        },
      });
    await lab.etcdctl(["put", `${PREFIX}/config`, config(`${add} "$SUBNET" >> ${join(dir, "shell-log")}`)]);
    weftds = await Promise.all(
      lab.hosts.map((h) => lab.startWeftd(h, [], { EXT_LOG: logOf(h), EXT_HOST: h.name })),
    );
    await waitFor(
      "the shell-syntax error",
      async () =>
        weftds.every((w) => w.output().includes("Backend.SubnetAddCommand of the extension backend")),
      20_000,
    );
    await sleep(1500);
    await lab.etcdctl(["put", `${PREFIX}/config`, config(`${add} $SUBNET x\${PUBLIC_IP}`)]);
    await waitForLeases(lab, weftds, 30_000);
  });
  after(async () => lab?.destroy());

  it("refused the shell-syntax config with one line naming the key, and ran nothing until it was fixed", async () => {
    for (const weftd of weftds) {
      const hits = weftd
        .output()
        .split("\n")
        .filter((l) => l.includes("Backend.SubnetAddCommand of the extension"));
      assert.equal(hits.length, 1, weftd.output());
      assert.match(hits[0]!, /uses shell syntax: quotes \("\\""\), a redirection \(">"\).*executable script/);
    }
    await assert.rejects(stat(join(dir, "shell-log")));
  });

  it("publishes PreStartupCommand's trimmed output as the lease's BackendData in etcd", async () => {
    for (const host of lab.hosts) {
      const lease = await readLease(lab, host);
      const value = await leaseValue(lease!.subnet.replace("/", "-"));
      assert.equal(
        value,
        `{"PublicIP":"${host.ip}","PublicIPv6":null,"BackendType":"extension","BackendData":"mac-${host.name}"}`,
      );
    }
  });

  it("runs PostStartupCommand with this host's variables before any add, then an add per peer", async () => {
    const leases = await Promise.all(lab.hosts.map((h) => readLease(lab, h)));
    for (const [i, host] of lab.hosts.entries()) {
      await waitFor(
        `2 adds on ${host.name}`,
        async () => (await lines(host)).filter((l) => l.startsWith("add ")).length >= 2,
        20_000,
      );
      const log = await lines(host);
      const own = leases[i]!;
      assert.equal(log[0], "pre stdin=[]");
      assert.equal(
        log[1],
        `post NETWORK=10.244.0.0/16 SUBNET=${own.subnet} PUBLIC_IP=${host.ip} IPV6SUBNET= PUBLIC_IPV6= args=${own.subnet}`,
      );
      const adds = log.slice(2).sort();
      const expected = lab.hosts
        .map((peer, j) => ({ peer, lease: leases[j]! }))
        .filter(({ peer }) => peer !== host)
        .map(
          ({ peer, lease }) =>
            `add SUBNET=${lease.subnet} PUBLIC_IP=${peer.ip} IPV6SUBNET= PUBLIC_IPV6= stdin=[mac-${peer.name}] args=${lease.subnet} x${peer.ip}`,
        )
        .sort();
      assert.deepEqual(adds, expected);
    }
  });

  it("passes lease data from etcd only as literal data, retries a failing add, and skips non-extension peers", async () => {
    hostile = `$(touch ${dir}/owned); \`touch ${dir}/owned2\` && echo "x" | tee ${dir}/y`;
    await lab.etcdctl([
      "put",
      `${PREFIX}/subnets/10.244.200.0-24`,
      JSON.stringify({
        PublicIP: "172.31.0.200",
        PublicIPv6: null,
        BackendType: "extension",
        BackendData: hostile,
      }),
    ]);
    await lab.etcdctl([
      "put",
      `${PREFIX}/subnets/10.244.201.0-24`,
      '{"PublicIP":"172.31.0.201","PublicIPv6":null,"BackendType":"vxlan","BackendData":{"VNI":1,"VtepMAC":"aa:bb:cc:dd:ee:ff"}}',
    ]);
    const line = `add SUBNET=10.244.200.0/24 PUBLIC_IP=172.31.0.200 IPV6SUBNET= PUBLIC_IPV6= stdin=[${hostile}] args=10.244.200.0/24 x172.31.0.200`;
    for (const [i, host] of lab.hosts.entries()) {
      await waitFor(
        `the hostile peer's add on ${host.name}`,
        async () => (await lines(host)).includes(line),
        30_000,
      );
      assert.match(
        weftds[i]!.output(),
        /SubnetAddCommand for lease 10\.244\.200\.0-24 failed: exit status 1; output: no route to 10\.244\.200\.0\/24; retrying/,
      );
      assert.ok(!(await lines(host)).some((l) => l.includes("10.244.201.0")), "a vxlan peer got a command");
    }
    for (const name of ["owned", "owned2", "y"]) await assert.rejects(stat(join(dir, name)));
  });

  it("runs SubnetRemoveCommand with the gone peer's variables and data", async () => {
    // A host that stops: then its lease is deleted (as when it expires); the others run the remove.
    const gone = lab.host(3);
    const goneLease = (await readLease(lab, gone))!;
    await weftds[2]!.stop();
    await lab.etcdctl(["del", `${PREFIX}/subnets/10.244.200.0-24`]);
    await lab.etcdctl(["del", `${PREFIX}/subnets/${goneLease.subnet.replace("/", "-")}`]);
    for (const host of [lab.host(1), lab.host(2)]) {
      const expected = [
        `remove SUBNET=${goneLease.subnet} PUBLIC_IP=${gone.ip} IPV6SUBNET= PUBLIC_IPV6= stdin=[mac-${gone.name}] args=${goneLease.subnet}`,
        `remove SUBNET=10.244.200.0/24 PUBLIC_IP=172.31.0.200 IPV6SUBNET= PUBLIC_IPV6= stdin=[${hostile}] args=10.244.200.0/24`,
      ];
      await waitFor(
        `2 removes on ${host.name}`,
        async () => (await lines(host)).filter((l) => l.startsWith("remove ")).length >= 2,
        20_000,
      );
      const removes = (await lines(host)).filter((l) => l.startsWith("remove ")).sort();
      assert.deepEqual(removes, expected.sort());
    }
    for (const weftd of weftds.slice(0, 2)) assert.ok(weftd.running, weftd.output());
    // A stopping weftd runs no removes (its peers are still there), and a stopped one none at all.
    assert.ok(!(await lines(gone)).some((l) => l.startsWith("remove ")));
  });
});

describe("weftd with extension, dual-stack, on 2 hosts", { timeout: 120_000 }, () => {
  let lab: Lab;

  before(async () => {
    lab = await Lab.create({ hosts: 2, ipv6: true, tag: "ext6" });
  });
  after(async () => lab?.destroy());

  it("gives the commands the IPv6 subnet and address of this host and of each peer", async () => {
    const dir = lab.tempDir;
    const log = (host: LabHost) => join(dir, `${host.name}.log`);
    const vars = "SUBNET=$SUBNET IPV6SUBNET=$IPV6SUBNET PUBLIC_IP=$PUBLIC_IP PUBLIC_IPV6=$PUBLIC_IPV6";
    const post = join(dir, "post.sh");
    const add = join(dir, "add.sh");
    await writeFile(post, `#!/bin/sh\necho "post ${vars}" >> "$EXT_LOG"\n`);
    await writeFile(add, `#!/bin/sh\necho "add ${vars}" >> "$EXT_LOG"\n`);
    await chmod(post, 0o755);
    await chmod(add, 0o755);
    await lab.startEtcd();
    await lab.etcdctl([
      "put",
      `${PREFIX}/config`,
      JSON.stringify({
        EnableIPv6: true,
        Network: "10.244.0.0/16",
        IPv6Network: "fd44::/56",
        Backend: { Type: "extension", PostStartupCommand: post, SubnetAddCommand: add },
      }),
    ]);
    const weftds = await Promise.all(lab.hosts.map((h) => lab.startWeftd(h, [], { EXT_LOG: log(h) })));
    const leases = await waitForLeases(lab, weftds, 30_000);
    const keys = (await lab.etcdGetPrefix(`${PREFIX}/subnets/`)).map((kv) => kv.key);
    assert.equal(keys.length, 2);
    for (const key of keys) assert.match(key, /\/10\.244\.\d+\.0-24&fd44:0:0:[0-9a-f]+::-64$/);
    for (const [i, host] of lab.hosts.entries()) {
      const peer = lab.hosts[1 - i]!;
      const text = async () => {
        try {
          return await readFile(log(host), "utf8");
        } catch {
          return "";
        }
      };
      await waitFor(`the add on ${host.name}`, async () => (await text()).includes("add "), 20_000);
      const [own, other] = [leases[i]!, leases[1 - i]!];
      assert.equal(
        await text(),
        `post SUBNET=${own.subnet} IPV6SUBNET=${own.ipv6Subnet} PUBLIC_IP=${host.ip} PUBLIC_IPV6=${host.ip6}\n` +
          `add SUBNET=${other.subnet} IPV6SUBNET=${other.ipv6Subnet} PUBLIC_IP=${peer.ip} PUBLIC_IPV6=${peer.ip6}\n`,
      );
    }
  });
});
