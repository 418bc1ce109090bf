// Every rtnetlink operation against the real kernel, inside throwaway namespaces, checked with iproute2.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { after, before, describe, it } from "node:test";
import { IFA_F_NODAD, NTF_SELF, NUD_PERMANENT } from "../../src/netlink/constants.js";
import { type Link, type RtEvent, type RtEvents, RtNetlink } from "../../src/netlink/index.js";
import { createNetns, type Netns } from "../helpers/netns.js";

const isRoot = process.getuid?.() === 0;
const T = { timeout: 30_000 };

interface IpLink {
  ifname: string;
  ifindex: number;
  mtu: number;
  address: string;
  flags: string[];
  linkinfo?: { info_kind: string; info_data?: Record<string, unknown> };
}
interface IpRoute {
  dst: string;
  gateway?: string;
  dev?: string;
  flags: string[];
  metric?: number;
}
interface IpNeigh {
  dst: string;
  lladdr?: string;
  state: string[];
}
interface IpFdb {
  mac: string;
  dst?: string;
  flags: string[];
  state?: string;
}

/** Resolves with the first event matching, or rejects after `ms`. */
function nextEvent(events: RtEvents, match: (e: RtEvent) => boolean, ms = 5_000): Promise<RtEvent> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      events.off("event", listener);
      reject(new Error(`no matching event within ${ms} ms`));
    }, ms);
    const listener = (e: RtEvent) => {
      if (!match(e)) return;
      clearTimeout(timer);
      events.off("event", listener);
      resolve(e);
    };
    events.on("event", listener);
  });
}

function rootLinkNames(): string[] {
  const links = JSON.parse(execFileSync("ip", ["-json", "link", "show"], { encoding: "utf8" })) as IpLink[];
  return links.map((l) => l.ifname).sort();
}

function bridgeFdb(ns: Netns, dev: string): IpFdb[] {
  const out = execFileSync("bridge", ["-n", ns.name, "-json", "fdb", "show", "dev", dev], {
    encoding: "utf8",
    timeout: 10_000,
  }).trim();
  return out === "" ? [] : (JSON.parse(out) as IpFdb[]);
}

describe("rtnetlink in a throwaway namespace", { skip: isRoot ? false : "needs root" }, () => {
  let ns: Netns;
  let peerNs: Netns;
  let nl: RtNetlink;
  let rootBefore: string[];
  let wu0: Link;
  let vx: Link;
  let vx6: Link;

  before(async () => {
    rootBefore = rootLinkNames();
    ns = createNetns("nl");
    peerNs = createNetns("nlpeer");
    nl = await RtNetlink.open({ netns: ns.path });
  });

  after(() => {
    nl?.close();
    ns?.delete();
    peerNs?.delete();
  });

  it("opening a missing namespace fails with ENOENT", T, async () => {
    await assert.rejects(RtNetlink.open({ netns: "/run/netns/weft-does-not-exist" }), { code: "ENOENT" });
  });

  it("creates a veth underlay, one end in another namespace, and sets it up", T, async () => {
    await nl.linkAdd({ kind: "veth", name: "wu0", peer: { name: "wu1", netns: peerNs.path } });
    await nl.linkSetUp("wu0");
    wu0 = await nl.linkGet("wu0");
    assert.equal(wu0.kind, "veth");
    assert.equal(wu0.up, true);
    const [ipWu0] = ns.ipJson<IpLink[]>("link", "show", "wu0");
    assert.equal(ipWu0!.ifindex, wu0.index);
    assert.ok(ipWu0!.flags.includes("UP"));
    assert.equal(peerNs.ipJson<IpLink[]>("link", "show", "wu1").length, 1);
    assert.throws(() => ns.ip("link", "show", "wu1"));
    await nl.addrAdd({ index: wu0.index, address: "192.168.77.1", prefixlen: 24 });
    await nl.addrAdd({ index: wu0.index, address: "fd77::1", prefixlen: 64, flags: IFA_F_NODAD });
  });

  it("creates vxlan devices with VNI, local, dev, port 8472, nolearning, gbp", T, async () => {
    await nl.linkAdd({
      kind: "vxlan",
      name: "flannel.1",
      vxlan: { vni: 1, local: "192.168.77.1", devIndex: wu0.index, port: 8472, learning: false, gbp: true },
    });
    await nl.linkAdd({
      kind: "vxlan",
      name: "flannel-v6.1",
      vxlan: { vni: 2, local: "fd77::1", devIndex: wu0.index, port: 8472, learning: false },
    });
    vx = await nl.linkGet("flannel.1");
    vx6 = await nl.linkGet("flannel-v6.1");
    assert.equal(vx.kind, "vxlan");
    assert.deepEqual(
      [vx.vxlan?.vni, vx.vxlan?.local, vx.vxlan?.devIndex, vx.vxlan?.port, vx.vxlan?.learning, vx.vxlan?.gbp],
      [1, "192.168.77.1", wu0.index, 8472, false, true],
    );
    assert.equal(vx6.vxlan?.local, "fd77::1");
    const [ipVx] = ns.ipJson<IpLink[]>("-d", "link", "show", "flannel.1");
    const data = ipVx!.linkinfo!.info_data!;
    assert.equal(ipVx!.linkinfo!.info_kind, "vxlan");
    assert.equal(data["id"], 1);
    assert.equal(data["local"], "192.168.77.1");
    assert.equal(data["link"], "wu0");
    assert.equal(data["port"], 8472);
    assert.equal(data["learning"], false);
    assert.equal(data["gbp"], true);
    const [ipVx6] = ns.ipJson<IpLink[]>("-d", "link", "show", "flannel-v6.1");
    assert.equal(ipVx6!.linkinfo!.info_data!["local6"], "fd77::1");
    assert.equal(ipVx6!.linkinfo!.info_data!["gbp"], undefined);
  });

  it("sets up, MTU and MAC; lists and finds links", T, async () => {
    await nl.linkSetMtu(vx.index, 1400);
    await nl.linkSetMac("flannel.1", "0a:58:0a:f4:01:00");
    await nl.linkSetUp(vx.index);
    await nl.linkSetUp(vx6.index);
    const [ipVx] = ns.ipJson<IpLink[]>("link", "show", "flannel.1");
    assert.equal(ipVx!.mtu, 1400);
    assert.equal(ipVx!.address, "0a:58:0a:f4:01:00");
    assert.ok(ipVx!.flags.includes("UP"));
    vx = await nl.linkGet(vx.index);
    assert.equal(vx.mtu, 1400);
    assert.equal(vx.mac, "0a:58:0a:f4:01:00");
    assert.equal(vx.up, true);
    const names = (await nl.linkList()).map((l) => l.name).sort();
    assert.deepEqual(names, ["flannel-v6.1", "flannel.1", "lo", "wu0"]);
    assert.equal(await nl.linkFind("nope0"), undefined);
    await assert.rejects(nl.linkGet("nope0"), { code: "ENODEV" });
    await nl.linkSetDown(vx6.index);
    assert.ok(!ns.ipJson<IpLink[]>("link", "show", "flannel-v6.1")[0]!.flags.includes("UP"));
    await nl.linkSetUp(vx6.index);
  });

  it("enterNetns moves the calling thread (checked in a child process)", T, () => {
    const index = new URL("../../src/netlink/index.js", import.meta.url).href;
    const addon = new URL("../../src/netlink/addon.js", import.meta.url).href;
    const script = `
      const { addon } = await import(${JSON.stringify(addon)});
      const { RtNetlink } = await import(${JSON.stringify(index)});
      addon().enterNetns(${JSON.stringify(ns.path)});
      const nl = await RtNetlink.open();
      console.log(JSON.stringify((await nl.linkList()).map((l) => l.name).sort()));
      nl.close();`;
    const out = execFileSync(process.execPath, ["--input-type=module", "-e", script], {
      encoding: "utf8",
      timeout: 15_000,
    });
    assert.deepEqual(JSON.parse(out), ["flannel-v6.1", "flannel.1", "lo", "wu0"]);
  });

  it("adds, dumps, replaces and deletes addresses (IPv4 and IPv6)", T, async () => {
    await nl.addrAdd({ index: vx.index, address: "10.244.1.0", prefixlen: 32 });
    await nl.addrAdd({ index: vx6.index, address: "fd44:1::", prefixlen: 128, flags: IFA_F_NODAD });
    const v4 = await nl.addrList(4, vx.index);
    assert.deepEqual(
      v4.map((a) => [a.address, a.prefixlen, a.index]),
      [["10.244.1.0", 32, vx.index]],
    );
    const v6 = (await nl.addrList(6, vx6.index)).filter((a) => a.scope === 0);
    assert.deepEqual(
      v6.map((a) => [a.address, a.prefixlen]),
      [["fd44:1::", 128]],
    );
    assert.ok((await nl.addrList(0)).some((a) => a.address === "192.168.77.1" && a.index === wu0.index));
    const [info] = ns.ipJson<{ addr_info: { local: string; prefixlen: number }[] }[]>(
      "-4",
      "addr",
      "show",
      "dev",
      "flannel.1",
    );
    assert.deepEqual(
      info!.addr_info.map((a) => `${a.local}/${a.prefixlen}`),
      ["10.244.1.0/32"],
    );
    await nl.addrReplace({ index: vx.index, address: "10.244.1.0", prefixlen: 32 });
    await assert.rejects(nl.addrAdd({ index: vx.index, address: "10.244.1.0", prefixlen: 32 }), {
      code: "EEXIST",
    });
    await nl.addrAdd({ index: vx.index, address: "10.244.9.9", prefixlen: 32 });
    await nl.addrDel({ index: vx.index, address: "10.244.9.9", prefixlen: 32 });
    assert.deepEqual(
      ns
        .ipJson<{ addr_info: { local: string }[] }[]>("-4", "addr", "show", "dev", "flannel.1")[0]!
        .addr_info.map((a) => a.local),
      ["10.244.1.0"],
    );
  });

  it("replaces routes via gateway onlink dev, and plain via; dumps and deletes them", T, async () => {
    await nl.routeReplace({ dst: "10.244.2.0/24", gateway: "10.244.2.0", oif: vx.index, onlink: true });
    await nl.routeReplace({ dst: "10.99.0.0/16", gateway: "192.168.77.2", priority: 50 });
    assert.deepEqual(ns.ipJson<IpRoute[]>("route", "show", "10.244.2.0/24"), [
      { dst: "10.244.2.0/24", gateway: "10.244.2.0", dev: "flannel.1", flags: ["onlink"] },
    ]);
    const [plain] = ns.ipJson<IpRoute[]>("route", "show", "10.99.0.0/16");
    assert.equal(plain!.gateway, "192.168.77.2");
    assert.equal(plain!.dev, "wu0");
    assert.equal(plain!.metric, 50);
    // replace is idempotent
    await nl.routeReplace({ dst: "10.244.2.0/24", gateway: "10.244.2.0", oif: vx.index, onlink: true });
    const routes = await nl.routeList(4);
    const mine = routes.find((r) => r.dst === "10.244.2.0/24");
    assert.deepEqual(
      [mine?.gateway, mine?.oif, mine?.onlink, mine?.table],
      ["10.244.2.0", vx.index, true, 254],
    );
    assert.ok(routes.some((r) => r.dst === "10.99.0.0/16" && r.priority === 50));
    assert.ok(
      routes.every((r) => r.table === 254),
      "only the main table",
    );
    assert.ok(
      (await nl.routeList(4, { table: 255 })).some((r) => r.type === 2),
      "local table has local routes",
    );
    assert.deepEqual(
      (await nl.routeList(4, { oif: vx.index })).map((r) => r.dst),
      ["10.244.2.0/24"],
    );
    const got = await nl.routeGet("10.244.2.7");
    assert.equal(got.oif, vx.index);
    assert.equal(got.gateway, "10.244.2.0");
    await nl.routeDel({ dst: "10.244.2.0/24" });
    assert.deepEqual(ns.ipJson("route", "show", "10.244.2.0/24"), []);
    await assert.rejects(nl.routeDel({ dst: "10.244.2.0/24" }), { code: "ESRCH" });
  });

  it("does IPv6 routes", T, async () => {
    await nl.routeReplace({ dst: "fd44:2::/64", gateway: "fd77::2", oif: wu0.index });
    await nl.routeReplace({ dst: "fd44:3::/64", gateway: "fd44:3::", oif: vx6.index, onlink: true });
    const [r] = ns.ipJson<IpRoute[]>("-6", "route", "show", "fd44:2::/64");
    assert.deepEqual([r?.gateway, r?.dev], ["fd77::2", "wu0"]);
    const [onlink] = ns.ipJson<IpRoute[]>("-6", "route", "show", "fd44:3::/64");
    assert.deepEqual([onlink?.gateway, onlink?.dev], ["fd44:3::", "flannel-v6.1"]);
    const routes = await nl.routeList(6);
    assert.ok(routes.some((x) => x.dst === "fd44:2::/64" && x.gateway === "fd77::2" && x.oif === wu0.index));
    await nl.routeDel({ dst: "fd44:2::/64", gateway: "fd77::2", oif: wu0.index });
    assert.deepEqual(ns.ipJson("-6", "route", "show", "fd44:2::/64"), []);
  });

  it("replaces, dumps and deletes permanent neighbours (IPv4 and IPv6)", T, async () => {
    await nl.neighReplace({ index: vx.index, ip: "10.244.2.0", mac: "aa:bb:cc:00:00:02" });
    await nl.neighReplace({
      index: vx6.index,
      ip: "fd44:3::",
      mac: "aa:bb:cc:00:00:03",
      state: NUD_PERMANENT,
    });
    assert.deepEqual(ns.ipJson<IpNeigh[]>("neigh", "show", "dev", "flannel.1"), [
      { dst: "10.244.2.0", lladdr: "aa:bb:cc:00:00:02", state: ["PERMANENT"] },
    ]);
    assert.deepEqual(ns.ipJson<IpNeigh[]>("-6", "neigh", "show", "dev", "flannel-v6.1", "fd44:3::"), [
      { dst: "fd44:3::", lladdr: "aa:bb:cc:00:00:03", state: ["PERMANENT"] },
    ]);
    const v4 = await nl.neighList(4, vx.index);
    assert.deepEqual(
      v4.map((n) => [n.ip, n.mac, n.state]),
      [["10.244.2.0", "aa:bb:cc:00:00:02", NUD_PERMANENT]],
    );
    const v6 = await nl.neighList(6, vx6.index);
    assert.ok(v6.some((n) => n.ip === "fd44:3::" && n.mac === "aa:bb:cc:00:00:03"));
    // replace changes the MAC in place
    await nl.neighReplace({ index: vx.index, ip: "10.244.2.0", mac: "aa:bb:cc:00:00:22" });
    assert.equal(ns.ipJson<IpNeigh[]>("neigh", "show", "dev", "flannel.1")[0]?.lladdr, "aa:bb:cc:00:00:22");
    await nl.neighDel({ index: vx.index, ip: "10.244.2.0" });
    await nl.neighDel({ index: vx6.index, ip: "fd44:3::" });
    assert.deepEqual(ns.ipJson("neigh", "show", "dev", "flannel.1"), []);
    assert.deepEqual(ns.ipJson("-6", "neigh", "show", "dev", "flannel-v6.1", "fd44:3::"), []);
  });

  it(
    "appends, replaces, dumps and deletes vxlan FDB entries (self, permanent, dst v4 and v6)",
    T,
    async () => {
      const zero = "00:00:00:00:00:00";
      await nl.fdbAppend({ index: vx.index, mac: zero, dst: "192.168.77.2" });
      await nl.fdbAppend({ index: vx.index, mac: zero, dst: "192.168.77.3" });
      await nl.fdbReplace({ index: vx.index, mac: "aa:bb:cc:00:00:02", dst: "192.168.77.2" });
      await nl.fdbAppend({ index: vx6.index, mac: zero, dst: "fd77::2" });
      const shown = bridgeFdb(ns, "flannel.1").filter((e) => e.dst !== undefined);
      assert.deepEqual(
        shown.map((e) => [e.mac, e.dst, e.flags.includes("self"), e.state]).sort(),
        [
          [zero, "192.168.77.2", true, "permanent"],
          [zero, "192.168.77.3", true, "permanent"],
          ["aa:bb:cc:00:00:02", "192.168.77.2", true, "permanent"],
        ].sort(),
      );
      assert.deepEqual(
        bridgeFdb(ns, "flannel-v6.1")
          .filter((e) => e.dst !== undefined)
          .map((e) => [e.mac, e.dst]),
        [[zero, "fd77::2"]],
      );
      const listed = (await nl.fdbList(vx.index)).filter((e) => e.dst !== undefined);
      assert.equal(listed.length, 3);
      assert.ok(
        listed.every((e) => e.index === vx.index && e.state === NUD_PERMANENT && (e.flags & NTF_SELF) !== 0),
      );
      assert.ok((await nl.fdbList(vx6.index)).some((e) => e.dst === "fd77::2" && e.mac === zero));
      await nl.fdbDel({ index: vx.index, mac: zero, dst: "192.168.77.3" });
      await nl.fdbDel({ index: vx.index, mac: "aa:bb:cc:00:00:02", dst: "192.168.77.2" });
      await nl.fdbDel({ index: vx6.index, mac: zero, dst: "fd77::2" });
      assert.deepEqual(
        bridgeFdb(ns, "flannel.1")
          .filter((e) => e.dst !== undefined)
          .map((e) => [e.mac, e.dst]),
        [[zero, "192.168.77.2"]],
      );
      assert.deepEqual(
        bridgeFdb(ns, "flannel-v6.1").filter((e) => e.dst !== undefined),
        [],
      );
    },
  );

  it("delivers multicast events for changes made by others", T, async () => {
    const events = nl.subscribe(["ipv4-route", "ipv6-route", "neigh", "link", "ipv4-addr"]);
    try {
      await nl.routeReplace({ dst: "10.98.0.0/16", gateway: "192.168.77.2" });
      await nl.neighReplace({ index: vx.index, ip: "10.244.5.0", mac: "aa:bb:cc:00:00:05" });
      const routeDel = nextEvent(
        events,
        (e) => e.kind === "route" && e.action === "del" && e.route.dst === "10.98.0.0/16",
      );
      ns.ip("route", "del", "10.98.0.0/16");
      const r = await routeDel;
      assert.equal(r.kind === "route" && r.route.gateway, "192.168.77.2");
      const neighDel = nextEvent(
        events,
        (e) => e.kind === "neigh" && e.action === "del" && e.neigh.ip === "10.244.5.0",
      );
      ns.ip("neigh", "del", "10.244.5.0", "dev", "flannel.1");
      const n = await neighDel;
      assert.equal(n.kind === "neigh" && n.neigh.index, vx.index);
      const v6Add = nextEvent(
        events,
        (e) => e.kind === "route" && e.action === "new" && e.route.dst === "fd44:9::/64",
      );
      ns.ip("-6", "route", "add", "fd44:9::/64", "dev", "flannel-v6.1");
      assert.equal((await v6Add).kind, "route");
      const linkNew = nextEvent(events, (e) => e.kind === "link" && e.link.name === "wbr0");
      ns.ip("link", "add", "wbr0", "type", "bridge");
      const l = await linkNew;
      assert.equal(l.kind === "link" && l.link.kind, "bridge");
      const fdbNew = nextEvent(
        events,
        (e) => e.kind === "fdb" && e.action === "new" && e.fdb.dst === "192.168.77.9",
      );
      execFileSync("bridge", [
        "-n",
        ns.name,
        "fdb",
        "append",
        "00:00:00:00:00:00",
        "dst",
        "192.168.77.9",
        "dev",
        "flannel.1",
      ]);
      const f = await fdbNew;
      assert.equal(f.kind === "fdb" && f.fdb.index, vx.index);
    } finally {
      events.close();
    }
  });

  it("reports an overrun when events arrive faster than they are read", T, async () => {
    // A small receive buffer: ip runs while this thread is blocked, so nothing drains the socket.
    const events = nl.subscribe(["ipv4-route"], { rcvbuf: 64 * 1024 });
    try {
      let overruns = 0;
      let received = 0;
      events.on("overrun", () => overruns++);
      events.on("event", () => received++);
      const lines = Array.from(
        { length: 5_000 },
        (_, i) => `route add 10.${64 + (i >> 16)}.${(i >> 8) & 255}.${i & 255}/32 dev wu0`,
      );
      execFileSync("ip", ["-n", ns.name, "-batch", "-"], { input: `${lines.join("\n")}\n`, timeout: 60_000 });
      const deadline = Date.now() + 5_000;
      while (overruns === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
      assert.ok(overruns > 0, "an overrun was reported");
      assert.ok(received < 5_000, `only some events arrived (${received})`);
      execFileSync("ip", ["-n", ns.name, "route", "flush", "dev", "wu0", "proto", "boot"], {
        timeout: 60_000,
      });
    } finally {
      events.close();
    }
  });

  it("pipelines: 2,000 route replaces in flight at once, then 2,000 deletes", T, async () => {
    const specs = Array.from({ length: 2_000 }, (_, i) => ({
      dst: `10.${128 + (i >> 8)}.${i & 255}.0/24`,
      gateway: `10.${128 + (i >> 8)}.${i & 255}.0`,
      oif: vx.index,
      onlink: true,
    }));
    const started = performance.now();
    await Promise.all(specs.map((s) => nl.routeReplace(s)));
    const elapsed = performance.now() - started;
    const shown = ns
      .ipJson<IpRoute[]>("route", "show", "dev", "flannel.1")
      .filter((r) => r.flags.includes("onlink"));
    assert.equal(shown.length, 2_000);
    assert.ok(elapsed < 2_000, `2,000 replaces took ${elapsed.toFixed(0)} ms`);
    // A dump this size spans many datagrams.
    assert.equal((await nl.routeList(4, { oif: vx.index })).length, 2_000);
    await Promise.all(specs.map((s) => nl.routeDel({ dst: s.dst })));
    assert.deepEqual(ns.ipJson("route", "show", "dev", "flannel.1"), []);
  });

  it("maps kernel errors: duplicates with NLM_F_EXCL give EEXIST and a clear message", T, async () => {
    await nl.routeAdd({ dst: "10.97.0.0/16", gateway: "192.168.77.2" });
    const err = await nl.routeAdd({ dst: "10.97.0.0/16", gateway: "192.168.77.2" }).then(
      () => assert.fail("a duplicate route was accepted"),
      (e: unknown) => e as { code: string; errno: number; message: string; operation: string },
    );
    assert.equal(err.code, "EEXIST");
    assert.equal(err.errno, 17);
    assert.match(err.message, /^route add 10\.97\.0\.0\/16 via 192\.168\.77\.2: EEXIST/);
    await assert.rejects(nl.linkAdd({ kind: "bridge", name: "wu0" }), (e: Error & { code?: string }) => {
      assert.equal(e.code, "EEXIST");
      assert.match(e.message, /link add wu0 \(bridge\)/);
      return true;
    });
    // An ext-ack message from the kernel is carried through.
    await assert.rejects(
      nl.routeReplace({ dst: "10.96.0.0/16", gateway: "10.1.2.3" }),
      (e: Error & { code?: string; extAck?: string }) => {
        assert.equal(e.code, "ENETUNREACH");
        assert.match(e.extAck ?? "", /gateway/);
        assert.ok(e.message.endsWith(e.extAck!));
        return true;
      },
    );
    await assert.rejects(nl.routeReplace({ dst: "10.96.0.0/16", oif: 999_999 }), { code: "ENODEV" });
    // Failures in a pipelined batch fail only their own requests.
    const results = await Promise.allSettled([
      nl.routeReplace({ dst: "10.95.0.0/16", gateway: "192.168.77.2" }),
      nl.routeAdd({ dst: "10.97.0.0/16", gateway: "192.168.77.2" }),
      nl.routeReplace({ dst: "10.94.0.0/16", gateway: "192.168.77.2" }),
    ]);
    assert.deepEqual(
      results.map((r) => r.status),
      ["fulfilled", "rejected", "fulfilled"],
    );
  });

  it("deletes links", T, async () => {
    await nl.linkDel("flannel-v6.1");
    await nl.linkDel(vx.index);
    await nl.linkDel("wbr0");
    assert.throws(() => ns.ip("link", "show", "flannel.1"));
    assert.equal(await nl.linkFind("flannel.1"), undefined);
    await assert.rejects(nl.linkDel("flannel.1"), { code: "ENODEV" });
  });

  it("left the root namespace alone", T, () => {
    assert.deepEqual(rootLinkNames(), rootBefore);
  });
});
