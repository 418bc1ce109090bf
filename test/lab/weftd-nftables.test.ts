/**
 * EnableNFTables and --ip-blackhole-route on 3 dual-stack lab hosts (etcd, vxlan, --ip-masq): flannel's
 * nftables tables in `nft list ruleset`, IPv4 and IPv6 masquerade to the fabric through them, a deleted
 * rule back within --iptables-resync, a host switched between iptables and nftables mode keeping only the
 * current mode's rules, and the blackhole route for the host's subnets repaired and moved with the lease.
 */
import assert from "node:assert/strict";
import { rm } from "node:fs/promises";
import { after, before, describe, it } from "node:test";
import { Lab, type LabHost, type LabProcess } from "./lab.js";
import {
  type HostLease,
  PREFIX,
  readLease,
  startCluster,
  waitFor,
  waitForFullMesh,
  waitForLeases,
} from "./weft-cluster.js";

const NETWORK =
  '"Network":"10.244.0.0/16","EnableIPv6":true,"IPv6Network":"fd44::/56","Backend":{"Type":"vxlan"}';
const IPTABLES_CONFIG = `{${NETWORK}}`;
const NFT_CONFIG = `{${NETWORK},"EnableNFTables":true}`;
const ARGS = ["--ip-masq", "--iptables-resync=1", "--ip-blackhole-route"];
const ECHO_PORT = 7781;

/** Answers each TCP connection with the address it came from. */
const echoServer = `
const server = require("node:net").createServer((s) => s.end(s.remoteAddress + "\\n"));
server.listen(${ECHO_PORT}, "::", () => console.log("listening"));
`;
/** Connects from a given local address and prints the answer; bounded by its own timer. */
const echoClient = `
const [host, port, localAddress] = process.argv.slice(1);
const s = require("node:net").connect({ host, port: Number(port), localAddress });
let out = "";
s.setEncoding("utf8").on("data", (d) => { out += d; });
s.on("end", () => { process.stdout.write(out); process.exit(0); });
s.on("error", (e) => { console.error(e.message); process.exit(1); });
setTimeout(() => { console.error("timed out"); process.exit(2); }, 5000);
`;

describe("weftd with EnableNFTables and --ip-blackhole-route, 3 dual-stack hosts", {
  timeout: 240_000,
}, () => {
  let lab: Lab;
  let weftds: LabProcess[];
  let leases: HostLease[];

  const h = (i: number) => lab.host(i);
  const ruleset = (host: LabHost) => lab.run(host, ["nft", "list", "ruleset"]);
  const saved = async (host: LabHost) =>
    (await lab.run(host, ["iptables-save"])) + (await lab.run(host, ["ip6tables-save"]));
  const blackholes = async (host: LabHost, family: 4 | 6) => {
    const out = await lab.run(host, ["ip", `-${family}`, "-json", "route", "show", "type", "blackhole"]);
    return (JSON.parse(out) as Array<{ dst: string; protocol?: string }>).map((r) => r.dst);
  };

  async function restart(i: number, args = ARGS): Promise<void> {
    await weftds[i - 1]!.stop("SIGTERM", 5_000);
    weftds[i - 1] = await lab.startWeftd(h(i), args);
  }

  async function waitForRules(host: LabHost, what: string, check: (text: string) => boolean): Promise<void> {
    await waitFor(what, async () => check((await ruleset(host)) + (await saved(host))), 10_000, 100);
  }

  before(async () => {
    lab = await Lab.create({ hosts: 3, ipv6: true, tag: "nft" });
    // First in iptables mode, as a host upgraded from an older flanneld would be.
    const cluster = await startCluster(lab, IPTABLES_CONFIG, ARGS);
    weftds = cluster.weftds;
    leases = cluster.leases;
    for (const host of lab.hosts)
      await waitForRules(
        host,
        "iptables chains",
        (t) => t.includes("-A FLANNEL-POSTRTG") && t.includes("-A FLANNEL-FWD"),
      );
    // The network config is cluster-wide: switch it, then restart every weftd.
    await lab.etcdctl(["put", `${PREFIX}/config`, NFT_CONFIG]);
    for (const i of [1, 2, 3]) await restart(i);
    await waitForLeases(lab, weftds, 15_000);
    await waitForFullMesh(lab, leases, 15_000, weftds);
  });
  after(async () => lab?.destroy());

  it("shows flannel's tables, chains and rules in nft list ruleset, and no iptables chains of ours", async () => {
    for (const [i, host] of lab.hosts.entries()) {
      const { subnet, ipv6Subnet } = leases[i]!;
      await waitForRules(host, `flannel's nft tables on ${host.name}`, (t) =>
        t.includes("table ip6 flannel-ipv6"),
      );
      const text = await ruleset(host);
      const table = (family: string, name: string) => {
        const start = text.indexOf(`table ${family} ${name} {`);
        assert.ok(start >= 0, `table ${family} ${name} on ${host.name}:\n${text}`);
        return text.slice(start, text.indexOf("\n}", start));
      };
      const lines = (body: string, chain: string) => {
        const start = body.indexOf(`chain ${chain} {`);
        assert.ok(start >= 0, `chain ${chain}:\n${body}`);
        return body
          .slice(start, body.indexOf("\n\t}", start))
          .split("\n")
          .slice(1)
          .map((l) => l.trim())
          .filter((l) => !l.startsWith("comment"));
      };
      const v4 = table("ip", "flannel-ipv4");
      assert.deepEqual(lines(v4, "postrtg"), [
        "type nat hook postrouting priority srcnat; policy accept;",
        "meta mark 0x00004000 return",
        `ip saddr ${subnet} ip daddr 10.244.0.0/16 return`,
        `ip saddr 10.244.0.0/16 ip daddr ${subnet} return`,
        `ip saddr != ${subnet} ip daddr 10.244.0.0/16 return`,
        "ip saddr 10.244.0.0/16 ip daddr != 224.0.0.0/4 masquerade fully-random",
        "ip saddr != 10.244.0.0/16 ip daddr 10.244.0.0/16 masquerade fully-random",
      ]);
      assert.deepEqual(lines(v4, "forward"), [
        "type filter hook forward priority filter; policy accept;",
        "ip saddr 10.244.0.0/16 accept",
        "ip daddr 10.244.0.0/16 accept",
      ]);
      const v6 = table("ip6", "flannel-ipv6");
      assert.ok(lines(v6, "postrtg").includes(`ip6 saddr ${ipv6Subnet} ip6 daddr fd44::/56 return`), v6);
      assert.ok(
        lines(v6, "postrtg").includes("ip6 saddr fd44::/56 ip6 daddr != ff00::/8 masquerade fully-random"),
      );
      assert.ok(lines(v6, "forward").includes("ip6 daddr fd44::/56 accept"));
      const iptables = await saved(host);
      assert.doesNotMatch(
        iptables,
        /FLANNEL-POSTRTG|FLANNEL-FWD|flanneld/,
        `iptables rules left on ${host.name}`,
      );
    }
  });

  it("masquerades a pod address's traffic to the fabric as the host's address, IPv4 and IPv6", async () => {
    const echo = await lab.spawn(lab.fabric, [process.execPath, "-e", echoServer]);
    try {
      await echo.waitForOutput(/listening/, 10_000);
      for (const [i, host] of lab.hosts.entries()) {
        // A pod's address on lo (/32, /128): no bridge route, so the blackhole stays the subnet's route.
        const pod4 = `${leases[i]!.base}.9`;
        const pod6 = `${leases[i]!.ipv6Subnet!.split("/")[0]}9`;
        await lab.run(host, ["ip", "addr", "add", `${pod4}/32`, "dev", "lo"]);
        await lab.run(host, ["ip", "addr", "add", `${pod6}/128`, "dev", "lo", "nodad"]);
        for (const [server, local, seenAs] of [
          [lab.fabricIp, pod4, host.ip],
          [lab.fabricIp6!, pod6, host.ip6!],
        ] as const) {
          const run = await lab.exec(
            host,
            [process.execPath, "-e", echoClient, server, String(ECHO_PORT), local],
            {
              timeoutMs: 15_000,
            },
          );
          assert.equal(run.code, 0, `echo from ${local} on ${host.name}: ${run.stderr}`);
          assert.equal(run.stdout.trim().replace(/^::ffff:/, ""), seenAs, `${local} seen by the fabric`);
        }
      }
    } finally {
      await echo.stop("SIGTERM", 2_000);
    }
  });

  it("puts back a deleted rule and a flushed chain within --iptables-resync", async () => {
    const host = h(1);
    const listed = await lab.run(host, ["nft", "-a", "list", "chain", "ip", "flannel-ipv4", "postrtg"]);
    const handle = listed.match(/masquerade fully-random # handle (\d+)/)?.[1];
    assert.ok(handle, listed);
    await lab.run(host, ["nft", "delete", "rule", "ip", "flannel-ipv4", "postrtg", "handle", handle]);
    await lab.run(host, ["nft", "flush", "chain", "ip6", "flannel-ipv6", "forward"]);
    const count = async () => (await ruleset(host)).match(/masquerade fully-random/g)?.length ?? 0;
    assert.equal(await count(), 3, "one masquerade rule was deleted");
    const ms = await waitFor(
      "the rules to come back",
      async () => (await count()) === 4 && (await ruleset(host)).includes("ip6 saddr fd44::/56 accept"),
      3_000,
      50,
    );
    assert.ok(ms <= 3_000, `took ${ms} ms`);
    assert.match(weftds[0]!.output(), /restored 1 IPv4 nftables table\(s\)/);
    assert.match(weftds[0]!.output(), /restored 1 IPv6 nftables table\(s\)/);
  });

  it("does not rewrite rules that match: no repair while nothing changes", async () => {
    const before = weftds[1]!.output().match(/restored \d+ IPv\d nftables/g)?.length ?? 0;
    await new Promise((resolve) => setTimeout(resolve, 3_500));
    const afterwards = weftds[1]!.output().match(/restored \d+ IPv\d nftables/g)?.length ?? 0;
    assert.equal(afterwards, before, weftds[1]!.output().slice(-2000));
  });

  it("adds a blackhole route for the host's subnets and puts it back after deletion", async () => {
    for (const [i, host] of lab.hosts.entries()) {
      await waitFor(
        `blackhole routes on ${host.name}`,
        async () =>
          (await blackholes(host, 4)).includes(leases[i]!.subnet) &&
          (await blackholes(host, 6)).includes(leases[i]!.ipv6Subnet!),
        5_000,
      );
    }
    const host = h(2);
    await lab.run(host, ["ip", "route", "del", "blackhole", leases[1]!.subnet]);
    await lab.run(host, ["ip", "-6", "route", "del", "blackhole", leases[1]!.ipv6Subnet!]);
    const ms = await waitFor(
      "the blackhole routes to come back",
      async () =>
        (await blackholes(host, 4)).includes(leases[1]!.subnet) &&
        (await blackholes(host, 6)).includes(leases[1]!.ipv6Subnet!),
      2_000,
      20,
    );
    assert.ok(ms <= 2_000, `took ${ms} ms`);
    // In the main table (ip route show reads main), of type blackhole, for exactly the subnet.
    const text = await lab.run(host, ["ip", "route", "show", "type", "blackhole"]);
    assert.match(text, new RegExp(`^blackhole ${leases[1]!.subnet.replace(/\./g, "\\.")} *$`, "m"));
  });

  it("moves the blackhole route when the host's lease changes", async () => {
    const i = 3;
    const host = h(i);
    const old = leases[i - 1]!;
    await weftds[i - 1]!.stop("SIGTERM", 5_000);
    // Someone else holds the old subnet now (a reservation for another address); forget ours.
    const key = (await lab.etcdGetPrefix(`${PREFIX}/subnets/`)).find((kv) =>
      kv.key.endsWith(`/${old.base}.0-24&${old.ipv6Subnet!.replace("/", "-")}`),
    );
    assert.ok(key, "host 3's lease key");
    await lab.etcdctl(["del", key.key]);
    await lab.etcdctl([
      "put",
      key.key,
      '{"PublicIP":"172.31.0.99","PublicIPv6":"fd31::99","BackendType":"vxlan"}',
    ]);
    await rm(lab.subnetFile(host), { force: true });
    weftds[i - 1] = await lab.startWeftd(host, ARGS);
    const [moved] = await waitForLeases(lab, [weftds[i - 1]!], 15_000, [host]);
    assert.notEqual(moved!.subnet, old.subnet, "a new subnet");
    await waitFor(
      "the blackhole routes to move",
      async () => {
        const v4 = await blackholes(host, 4);
        const v6 = await blackholes(host, 6);
        return (
          v4.includes(moved!.subnet) &&
          !v4.includes(old.subnet) &&
          v6.includes(moved!.ipv6Subnet!) &&
          !v6.includes(old.ipv6Subnet!)
        );
      },
      5_000,
    ).catch((err: Error) => {
      throw new Error(`${err.message}\n${weftds[i - 1]!.output().slice(-3000)}`);
    });
    assert.equal((await readLease(lab, host))?.subnet, moved!.subnet);
  });

  it("switched back to iptables mode, a host keeps only the iptables rules", async () => {
    await lab.etcdctl(["put", `${PREFIX}/config`, IPTABLES_CONFIG]);
    await restart(1);
    await waitForRules(h(1), "iptables chains back and flannel's tables gone", (t) => {
      const v6Fwd = t.split("\n").filter((l) => l.startsWith("-A FLANNEL-FWD -s fd44::/56")).length;
      return (
        t.includes("-A FLANNEL-POSTRTG") &&
        v6Fwd === 1 &&
        !t.includes("flannel-ipv4") &&
        !t.includes("flannel-ipv6")
      );
    });
    const iptables = await lab.run(h(1), ["iptables-save", "-t", "nat"]);
    assert.equal(iptables.split("\n").filter((l) => l.startsWith("-A FLANNEL-POSTRTG")).length, 5);
    const ip6tables = await lab.run(h(1), ["ip6tables-save", "-t", "filter"]);
    assert.equal(ip6tables.split("\n").filter((l) => l.startsWith("-A FLANNEL-FWD")).length, 2);
    assert.ok((await ruleset(h(2))).includes("table ip flannel-ipv4"), "host 2 was not restarted: still nft");
  });
});
