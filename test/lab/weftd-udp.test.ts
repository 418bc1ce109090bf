/**
 * The udp backend on 3 hosts, with a config that names no Backend (flannel's default is udp): every
 * pod subnet reaches every other, iperf3 runs between pod addresses, a packet to a subnet nobody leased
 * is answered with ICMP net-unreachable, flannel0 comes back when deleted, and a host speaking flanneld's
 * wire format (a lease without BackendType, IP packets as whole UDP payloads on port 8285) is reached.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { Lab, type LabProcess } from "./lab.js";
import {
  addPods,
  assertFullMeshPing,
  type HostLease,
  PREFIX,
  waitFor,
  waitForLeases,
} from "./weft-cluster.js";

const NO_BACKEND = '{"Network":"10.244.0.0/16"}';
/** Two /24s of the Network that no host took (leases are random): one left unleased, one for the fabric. */
function freeSubnets(leases: readonly HostLease[]): [string, string] {
  const taken = new Set(leases.map((l) => l.base));
  const free = [];
  for (let octet = 254; free.length < 2; octet--)
    if (!taken.has(`10.244.${octet}`)) free.push(`10.244.${octet}`);
  return [free[0]!, free[1]!];
}
const HEALTHZ_PORT = 10267;

describe("weftd with udp (no Backend in the config) on 3 hosts", { timeout: 180_000 }, () => {
  let lab: Lab;
  let weftds: LabProcess[];
  let leases: HostLease[];
  let pods: string[];
  /** A subnet inside the Network nobody leased, and the one the fabric leases as a "flanneld host". */
  let unleased: string;
  let foreignSubnet: string;

  before(async () => {
    lab = await Lab.create({ hosts: 3, tag: "udp" });
    await lab.startEtcd();
    await lab.etcdctl(["put", `${PREFIX}/config`, NO_BACKEND]);
    weftds = await Promise.all(
      lab.hosts.map((h) => lab.startWeftd(h, ["--ip-masq", `--healthz-port=${HEALTHZ_PORT}`])),
    );
    leases = await waitForLeases(lab, weftds, 20_000);
    [unleased, foreignSubnet] = freeSubnets(leases);
    pods = await addPods(lab, leases);
    // Ready once each host forwards to both others (the forwarder's table follows the lease watch).
    for (const [i, host] of lab.hosts.entries()) {
      for (const [j, pod] of pods.entries()) {
        if (i === j) continue;
        await waitFor(
          `${host.name} reaching ${pod}`,
          async () => (await lab.ping(host, pod, { count: 1, source: pods[i], timeoutMs: 1000 })).reachable,
          20_000,
          100,
        ).catch((err: Error) => {
          throw new Error(`${err.message}\nweftd log:\n${weftds[i]!.output()}`);
        });
      }
    }
  });
  after(async () => lab?.destroy());

  it("says udp is the default and publishes leases without BackendType, as flanneld", async () => {
    for (const weftd of weftds)
      assert.match(weftd.output(), /no Backend given: using udp, flannel's default/);
    const pairs = await lab.etcdGetPrefix(`${PREFIX}/subnets/`);
    assert.equal(pairs.length, 3);
    for (const { value } of pairs)
      assert.match(value, /^\{"PublicIP":"172\.31\.0\.[123]","PublicIPv6":null\}$/);
  });

  it("sets up flannel0 as flanneld: TUN, MTU 1472, the subnet's .0/32, the Network routed through it", async () => {
    const h1 = lab.host(1);
    const link = await lab.run(h1, ["ip", "-d", "link", "show", "flannel0"]);
    assert.match(link, /<POINTOPOINT,MULTICAST,NOARP,UP,LOWER_UP> mtu 1472 /);
    assert.match(link, /tun type tun pi off vnet_hdr off persist off/);
    const addrs = JSON.parse(await lab.run(h1, ["ip", "-4", "-json", "addr", "show", "dev", "flannel0"]));
    const v4 = addrs[0].addr_info.map(
      (a: { local: string; prefixlen: number }) => `${a.local}/${a.prefixlen}`,
    );
    assert.deepEqual(v4, [`${leases[0]!.base}.0/32`]);
    const routes = await lab.run(h1, ["ip", "-4", "route", "show", "dev", "flannel0"]);
    assert.equal(routes.trim(), "10.244.0.0/16");
    const env = await lab.run(h1, ["cat", lab.subnetFile(h1)]);
    assert.match(env, /^FLANNEL_MTU=1472$/m);
  });

  it("lets every host's pods reach every other host's pods", async () => {
    await assertFullMeshPing(lab, pods);
  });

  it("carries iperf3 between pod addresses on different hosts", async () => {
    const bps = await lab.iperf3(lab.host(2), lab.host(1), pods[1]!, { seconds: 2 });
    assert.ok(bps > 50e6, `throughput ${bps} bit/s is implausibly low`);
    const back = await lab.iperf3(lab.host(1), lab.host(3), pods[0]!, { seconds: 2, port: 5202 });
    assert.ok(back > 50e6, `throughput ${back} bit/s is implausibly low`);
  });

  it("answers a packet to an unleased subnet with ICMP net-unreachable from flannel0's address", async () => {
    const h1 = lab.host(1);
    const ping = await lab.exec(h1, ["ping", "-n", "-c", "1", "-W", "2", "-I", pods[0]!, `${unleased}.7`]);
    const from = `${leases[0]!.base}.0`.replace(/\./g, "\\.");
    assert.match(ping.stdout, new RegExp(`From ${from} icmp_seq=1 Destination Net Unreachable`), ping.stdout);
    // A TCP connect fails at once with ENETUNREACH instead of timing out. Probed with python3, which prints the
    // kernel's errno as it is: Bun 1.4.5's node:net reports ENETUNREACH as ECONNREFUSED (oven-sh/bun#37093).
    const script = [
      "import errno, socket, sys",
      "s = socket.socket()",
      "s.settimeout(3)",
      "s.bind((sys.argv[2], 0))",
      "try:",
      "    s.connect((sys.argv[1], 80))",
      "    print('CONNECTED')",
      "except socket.timeout:",
      "    print('TIMEOUT')",
      "except OSError as e:",
      "    print(errno.errorcode.get(e.errno, e.errno))",
    ].join("\n");
    const started = Date.now();
    const out = await lab.run(h1, ["python3", "-c", script, `${unleased}.7`, pods[0]!]);
    assert.equal(out.trim(), "ENETUNREACH");
    assert.ok(Date.now() - started < 2500, "the connect should fail at once");
    // Dropped and counted: /metrics shows the forwarder's drops by reason.
    const metrics = await lab.run(h1, [
      process.execPath,
      "-e",
      `fetch("http://127.0.0.1:${HEALTHZ_PORT}/metrics").then((r) => r.text()).then((t) => console.log(t))`,
    ]);
    const count = (name: string) =>
      Number(new RegExp(`^${name} (\\d+)$`, "m").exec(metrics)?.[1] ?? Number.NaN);
    assert.ok(count('weft_udp_dropped_packets_total\\{reason="no_peer"\\}') >= 2, metrics);
    assert.ok(count("weft_udp_unreachable_sent_total") >= 2, metrics);
    assert.ok(
      count('weft_udp_packets_total\\{direction="tx"\\}') > 1000,
      "iperf3 went through the forwarder",
    );
  });

  it("reaches a host that speaks flanneld's wire format", async () => {
    // The fabric plays a flanneld host: its lease as flanneld writes it (no BackendType), and a UDP
    // socket on :8285 that sends an IP packet as the whole payload and takes the reply the same way.
    const lease = JSON.stringify({ PublicIP: lab.fabricIp, PublicIPv6: null });
    await lab.etcdctl(["put", `${PREFIX}/subnets/${foreignSubnet}.0-24`, lease]);
    const peer = `
      const dgram = require("dgram");
      const [src, dst, to] = process.argv.slice(1);
      const sum = (b) => { let s = 0; for (let i = 0; i < b.length; i += 2) s += (b[i] << 8) | (b[i + 1] ?? 0);
        while (s >> 16) s = (s & 0xffff) + (s >> 16); return ~s & 0xffff; };
      const icmp = Buffer.from([8, 0, 0, 0, 0x12, 0x34, 0, 1, ...Buffer.from("weft-udp-wire")]);
      icmp.writeUInt16BE(sum(icmp), 2);
      const ip = Buffer.alloc(20);
      ip[0] = 0x45; ip.writeUInt16BE(20 + icmp.length, 2); ip[8] = 64; ip[9] = 1;
      Buffer.from(src.split(".").map(Number)).copy(ip, 12); Buffer.from(dst.split(".").map(Number)).copy(ip, 16);
      ip.writeUInt16BE(sum(ip), 10);
      const sock = dgram.createSocket("udp4");
      const timer = setTimeout(() => { console.log("NO REPLY"); process.exit(0); }, 8000);
      sock.on("message", (m, r) => {
        if (m[9] !== 1 || m[20] !== 0) return; // wait for the echo reply
        clearTimeout(timer);
        console.log(JSON.stringify({ from: r.address + ":" + r.port, src: [...m.subarray(12, 16)].join("."),
          dst: [...m.subarray(16, 20)].join("."), ttl: m[8], id: m.readUInt16BE(24), seq: m.readUInt16BE(26),
          data: m.subarray(28).toString(), len: m.length, totalLen: m.readUInt16BE(2) }));
        process.exit(0);
      });
      sock.bind(8285, process.argv[4], () => {
        // Resend until the lease has reached the host's forwarder (bounded by the timer).
        const send = () => sock.send(Buffer.concat([ip, icmp]), 8285, to);
        send(); setInterval(send, 200);
      });`;
    const out = await lab.run(
      lab.fabric,
      [process.execPath, "-e", peer, `${foreignSubnet}.5`, pods[0]!, lab.host(1).ip, lab.fabricIp],
      { timeoutMs: 15_000 },
    );
    assert.notEqual(out.trim(), "NO REPLY", "the flanneld-format peer got no reply");
    const reply = JSON.parse(out);
    assert.equal(reply.from, `${lab.host(1).ip}:8285`);
    assert.equal(reply.src, pods[0]);
    assert.equal(reply.dst, `${foreignSubnet}.5`);
    // flanneld's proxy decrements the TTL when it sends; the reply left the host's stack with 64.
    assert.equal(reply.ttl, 63);
    assert.deepEqual([reply.id, reply.seq, reply.data], [0x1234, 1, "weft-udp-wire"]);
    assert.equal(reply.len, reply.totalLen, "the UDP payload is exactly one IP packet");
    await lab.etcdctl(["del", `${PREFIX}/subnets/${foreignSubnet}.0-24`]);
  });

  it("re-creates flannel0 when it is deleted, and forwards again", async () => {
    const h2 = lab.host(2);
    await lab.run(h2, ["ip", "link", "del", "flannel0"]);
    await waitFor(
      "flannel0 back on host 2 with its route and address",
      async () => {
        const routes = await lab.run(h2, ["ip", "-4", "route", "show", "dev", "flannel0"]).catch(() => "");
        const addrs = await lab.run(h2, ["ip", "-4", "addr", "show", "dev", "flannel0"]).catch(() => "");
        return routes.includes("10.244.0.0/16") && addrs.includes(`${leases[1]!.base}.0/32`);
      },
      10_000,
    ).catch((err: Error) => {
      throw new Error(`${err.message}\nweftd log:\n${weftds[1]!.output()}`);
    });
    await waitFor(
      "host 2 reaching host 1's pod again",
      async () => (await lab.ping(h2, pods[0]!, { count: 1, source: pods[1], timeoutMs: 1000 })).reachable,
      10_000,
      100,
    );
    assert.match(weftds[1]!.output(), /device flannel0 was deleted; restoring it/);
  });

  it("sets flannel0 up again when someone sets it down", async () => {
    const h3 = lab.host(3);
    await lab.run(h3, ["ip", "link", "set", "flannel0", "down"]);
    await waitFor(
      "host 3 reaching host 1's pod again",
      async () => (await lab.ping(h3, pods[0]!, { count: 1, source: pods[2], timeoutMs: 1000 })).reachable,
      10_000,
      100,
    );
    assert.match(
      await lab.run(h3, ["ip", "link", "show", "flannel0"]),
      /<POINTOPOINT,MULTICAST,NOARP,UP,LOWER_UP>/,
    );
    assert.match(weftds[2]!.output(), /device flannel0 was set down; restoring it/);
  });
});
