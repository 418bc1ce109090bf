/**
 * Hostile and careless leases, put under <prefix>/subnets/ while weftd runs with peers: a value that
 * nests 5,000 deep, keys outside the lease scope (the underlay's network, outside the Network, the whole
 * Network, half of our own subnet, a bridge of the host), a group VtepMAC, another backend type. weftd
 * keeps running and reaching etcd, valid peers stay programmed, nothing is left when the keys go, routes an
 * older weft left for such keys are removed, and a restart with the keys present comes up normally.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { FABRIC_IP, type Lab, type LabHost, type LabProcess, withLab } from "./lab.js";
import {
  addPods,
  assertFullMeshPing,
  type HostLease,
  PREFIX,
  readLease,
  routeDestinations,
  sleep,
  startCluster,
  waitFor,
  waitForFullMesh,
} from "./weft-cluster.js";

const SUBNETS = `${PREFIX}/subnets/`;
const HEALTH_PORT = 9909;
const DEEP = `${"[".repeat(5000)}${"]".repeat(5000)}`;
const GOOD_MAC = "0a:11:22:33:44:55";

const noStackTrace = (output: string) =>
  assert.doesNotMatch(output, /^\s+at .+:\d+:\d+\)?$/m, `stack trace in:\n${output.slice(-3000)}`);

function value(type: string, publicIP: string, mac: unknown = GOOD_MAC): string {
  const data = type === "vxlan" ? { VNI: 1, VtepMAC: mac } : undefined;
  return JSON.stringify({ PublicIP: publicIP, PublicIPv6: null, BackendType: type, BackendData: data });
}

interface Hostile {
  readonly key: string;
  readonly value: string;
  /** What weftd logs about it, once. */
  readonly log: RegExp;
  /** A route weft must never have for it. */
  readonly dst?: string;
}

/** The hostile keys, for a network of `type` where host 1 holds `own` and host 2 `peer`. */
function hostileLeases(type: string, own: HostLease, peer: HostLease): Hostile[] {
  const ownHalf = `${own.base}.128`;
  const dots = (text: string) => text.replaceAll(".", "\\.");
  return [
    {
      // A second key for host 2's subnet: not routed, so host 2 keeps its traffic.
      key: `${peer.base}.0-024`,
      value: value(type, "172.31.0.9"),
      log: new RegExp(
        `ignoring lease ${dots(peer.base)}\\.0-024: the key is not in flannel's form, which is ${dots(peer.base)}\\.0-24`,
      ),
    },
    {
      key: "10.244.98.0-24",
      value: value(type, "172.31.0.9"),
      log: /refusing lease 10\.244\.98\.0-24: its subnet 10\.244\.98\.0\/24 is also claimed by lease 10\.244\.98\.0-24&fd44::-64/,
      dst: "10.244.98.0/24",
    },
    {
      key: "10.244.98.0-24&fd44::-64",
      value: value(type, "172.31.0.8"),
      log: /refusing lease 10\.244\.98\.0-24&fd44::-64: its subnet 10\.244\.98\.0\/24 is also claimed by lease 10\.244\.98\.0-24;/,
    },
    {
      key: "10.244.44.0-24",
      value: `{"PublicIP":${DEEP}}`,
      log: /ignoring lease 10\.244\.44\.0-24: PublicIP must be a string, not an array of 1; its subnet stays reserved/,
      dst: "10.244.44.0/24",
    },
    {
      key: "172.31.0.0-24",
      value: value(type, "172.31.0.2"),
      log: /refusing lease 172\.31\.0\.0-24: its subnet 172\.31\.0\.0\/24 is not inside the Network 10\.244\.0\.0\/16; it is not routed/,
      dst: "172.31.0.0/24",
    },
    {
      key: "10.245.1.0-24",
      value: value(type, "172.31.0.2"),
      log: /refusing lease 10\.245\.1\.0-24: its subnet 10\.245\.1\.0\/24 is not inside the Network/,
      dst: "10.245.1.0/24",
    },
    {
      key: "10.244.0.0-16",
      value: value(type, "172.31.0.2"),
      log: /refusing lease 10\.244\.0\.0-16: its subnet 10\.244\.0\.0\/16 overlaps our own subnet/,
      dst: "10.244.0.0/16",
    },
    {
      key: `${ownHalf}-25`,
      value: value(type, "172.31.0.2"),
      log: new RegExp(`refusing lease ${dots(ownHalf)}-25: its subnet .* overlaps our own subnet`),
      dst: `${ownHalf}/25`,
    },
    {
      key: "10.244.200.0-24",
      value: value(type, "172.31.0.2"),
      log: /refusing lease 10\.244\.200\.0-24: its subnet 10\.244\.200\.0\/24 overlaps 10\.244\.200\.0\/24, a network this host reaches directly on docker0/,
      dst: "10.244.200.0/24",
    },
    {
      key: "10.244.47.0-24",
      value: value(type === "vxlan" ? "host-gw" : "vxlan", "172.31.0.2"),
      log: new RegExp(
        `not routing to lease 10\\.244\\.47\\.0-24: it is a "(host-gw|vxlan)" lease, not ${type}`,
      ),
      dst: "10.244.47.0/24",
    },
    ...(type === "vxlan"
      ? [
          {
            key: "10.244.45.0-24",
            value: `{"PublicIP":"172.31.0.9","BackendType":"vxlan","BackendData":{"VNI":1,"VtepMAC":${DEEP}}}`,
            log: /not routing to lease 10\.244\.45\.0-24: its VtepMAC an array of 1 is not a MAC address/,
            dst: "10.244.45.0/24",
          },
          {
            key: "10.244.46.0-24",
            value: value("vxlan", "172.31.0.9", "ff:ff:ff:ff:ff:ff"),
            log: /not routing to lease 10\.244\.46\.0-24: its VtepMAC ff:ff:ff:ff:ff:ff is a broadcast address/,
            dst: "10.244.46.0/24",
          },
        ]
      : []),
  ];
}

/** Routes (both families) and, with vxlan, flannel.1's neighbour and FDB entries, as text. */
async function datapath(lab: Lab, host: LabHost, vxlan: boolean): Promise<string> {
  const parts = [
    await lab.run(host, ["ip", "-4", "route", "show"]),
    await lab.run(host, ["ip", "-6", "route", "show"]),
  ];
  if (vxlan) {
    parts.push(await lab.run(host, ["ip", "neigh", "show", "dev", "flannel.1", "nud", "permanent"]));
    parts.push(await lab.run(host, ["bridge", "fdb", "show", "dev", "flannel.1"]));
  }
  return parts.join("---\n");
}

/** Destinations of the routes someone programmed (not the kernel's own connected routes), both families. */
async function programmedRoutes(lab: Lab, host: LabHost): Promise<Set<string>> {
  const dsts = new Set<string>();
  for (const family of ["-4", "-6"]) {
    const routes = JSON.parse(await lab.run(host, ["ip", family, "-json", "route", "show"])) as Array<{
      dst: string;
      protocol?: string;
    }>;
    for (const r of routes) if (r.protocol !== "kernel") dsts.add(r.dst);
  }
  return dsts;
}

async function metrics(lab: Lab, host: LabHost): Promise<string> {
  return lab.run(host, ["curl", "-sS", "--max-time", "3", `http://127.0.0.1:${HEALTH_PORT}/metrics`]);
}

async function assertReachesEtcd(lab: Lab, host: LabHost): Promise<void> {
  const route = await lab.run(host, ["ip", "route", "get", FABRIC_IP]);
  assert.match(route, /dev eth0/, `the route to etcd: ${route}`);
  assert.ok((await lab.ping(host, FABRIC_IP, { count: 2, intervalSeconds: 0.1 })).reachable, "etcd's host");
}

async function runScenario(lab: Lab, type: "vxlan" | "host-gw"): Promise<void> {
  const vxlan = type === "vxlan";
  // A bridge of the host inside the Network, as docker0 might be; leases keep away from it.
  await Promise.all(
    lab.hosts.map((h) =>
      lab.run(h, [
        "sh",
        "-c",
        "ip link add docker0 type bridge && ip addr add 10.244.200.1/24 dev docker0 && ip link set docker0 up",
      ]),
    ),
  );
  const config = JSON.stringify({
    Network: "10.244.0.0/16",
    SubnetMin: "10.244.60.0",
    SubnetMax: "10.244.90.0",
    Backend: { Type: type },
  });
  const cluster = await startCluster(lab, config, [`--healthz-port=${HEALTH_PORT}`]);
  const pods = await addPods(lab, cluster.leases);
  await assertFullMeshPing(lab, pods);
  const [h1, h2] = [lab.host(1), lab.host(2)];
  const before = await Promise.all(lab.hosts.map((h) => datapath(lab, h, vxlan)));

  // The hostile keys, while weftd runs with a peer.
  const hostile = hostileLeases(type, cluster.leases[0]!, cluster.leases[1]!);
  for (const h of hostile) await lab.etcdctl(["put", `${SUBNETS}${h.key}`, h.value]);
  // A valid lease put after them is still programmed: the watch and etcd are fine.
  const later = { key: "10.244.99.0-24", value: value(type, "172.31.0.9") };
  await lab.etcdctl(["put", `${SUBNETS}${later.key}`, later.value]);
  await waitFor(
    "the lease put after the hostile ones to be routed",
    async () => (await routeDestinations(lab, h1)).includes("10.244.99.0/24"),
    10_000,
  ).catch((err: Error) => {
    throw new Error(`${err.message}\n${cluster.weftds[0]!.output().slice(-4000)}`);
  });
  // The same value again is not reported again.
  for (const h of hostile) await lab.etcdctl(["put", `${SUBNETS}${h.key}`, h.value]);
  await lab.etcdctl(["put", `${SUBNETS}${later.key}`, later.value]);
  await sleep(500);

  for (const [i, weftd] of cluster.weftds.entries()) {
    assert.ok(weftd.running, `weftd on host ${i + 1} runs:\n${weftd.output().slice(-3000)}`);
    noStackTrace(weftd.output());
    assert.doesNotMatch(
      weftd.output(),
      /cannot list leases|computing the desired state failed|kernel change failed|cannot (put|remove) /,
    );
    const dsts = await programmedRoutes(lab, lab.hosts[i]!);
    for (const h of hostile) {
      if (h.dst) assert.ok(!dsts.has(h.dst), `host ${i + 1} routes ${h.dst}`);
    }
    await assertReachesEtcd(lab, lab.hosts[i]!);
  }
  for (const h of hostile) await cluster.weftds[0]!.waitForOutput(h.log, 5000);
  const log = cluster.weftds[0]!.output();
  for (const h of hostile) {
    const lines = log.split("\n").filter((line) => h.log.test(line));
    assert.equal(lines.length, 1, `reported once: ${h.log}`);
    assert.ok(lines[0]!.length < 400, `bounded: ${lines[0]!.slice(0, 500)}`);
  }
  await assertFullMeshPing(lab, pods);
  const m = await metrics(lab, h1);
  assert.match(m, /^weft_leases_refused\{rule="outside-network"\} 2$/m);
  assert.match(m, /^weft_leases_refused\{rule="overlaps-own"\} 2$/m);
  assert.match(m, /^weft_leases_refused\{rule="overlaps-host"\} 1$/m);
  assert.match(m, /^weft_leases_refused\{rule="overlaps-peer"\} 2$/m);
  assert.match(m, /^weft_leases_refused_total 7$/m);
  // The nested and the broadcast VtepMAC, and the other backend type.
  assert.match(m, vxlan ? /^weft_leases_unusable 3$/m : /^weft_leases_unusable 1$/m);

  // Routes an older weft programmed for such keys are weft's, so they are removed.
  const leftovers = vxlan
    ? [
        ["10.245.1.0/24", "via", "10.245.1.0", "dev", "flannel.1", "onlink"],
        ["10.244.0.0/16", "via", "10.244.0.0", "dev", "flannel.1", "onlink"],
        ["172.31.0.0/24", "via", "172.31.0.0", "dev", "flannel.1", "onlink"],
      ]
    : [
        ["10.244.0.0/16", "via", "172.31.0.2", "dev", "eth0"],
        [`${cluster.leases[0]!.base}.128/25`, "via", "172.31.0.2", "dev", "eth0"],
      ];
  for (const route of leftovers) await lab.run(h1, ["ip", "route", "add", ...route]);
  await waitFor(
    "the routes an older weft left to be removed",
    async () => {
      const dsts = await programmedRoutes(lab, h1);
      return leftovers.every((r) => !dsts.has(r[0]!));
    },
    3000,
    20,
  );
  await assertReachesEtcd(lab, h1);

  // Nothing is left when the keys go.
  for (const h of [...hostile, later]) await lab.etcdctl(["del", `${SUBNETS}${h.key}`]);
  await waitFor(
    "the datapath to be as before",
    async () => {
      const now = await Promise.all(lab.hosts.map((h) => datapath(lab, h, vxlan)));
      return now.every((text, i) => text === before[i]);
    },
    5000,
    100,
  ).catch(async (err: Error) => {
    throw new Error(`${err.message}\nbefore:\n${before[0]}\nnow:\n${await datapath(lab, h1, vxlan)}`);
  });
  assert.match(await metrics(lab, h1), /^weft_leases_refused\{rule="outside-network"\} 0$/m);

  // A restart with the hostile keys present comes up normally, on the same lease.
  for (const h of hostile) await lab.etcdctl(["put", `${SUBNETS}${h.key}`, h.value]);
  await cluster.weftds[0]!.stop();
  if (vxlan) {
    // What an older weft did with the underlay's key: replace the kernel's route to eth0's network, which
    // cut the host off from etcd and every peer. The new weft undoes it before it needs etcd.
    await lab.run(h1, [
      "ip",
      "route",
      "replace",
      "172.31.0.0/16",
      "via",
      "172.31.0.0",
      "dev",
      "flannel.1",
      "onlink",
    ]);
    assert.ok(!(await lab.ping(h1, FABRIC_IP, { count: 1 })).reachable, "the host is cut off from etcd");
  }
  const restarted: LabProcess = await lab.startWeftd(h1, [`--healthz-port=${HEALTH_PORT}`]);
  await restarted.waitForOutput(/datapath programmed for \d+ peer\(s\)/, 15_000);
  if (vxlan) {
    assert.match(
      restarted.output(),
      /removed route 172\.31\.0\.0\/16 via 172\.31\.0\.0 dev flannel\.1: it covered/,
    );
    assert.match(restarted.output(), /restored the route 172\.31\.0\.0\/16 dev eth0/);
    assert.match(
      await lab.run(h1, ["ip", "route", "show", "172.31.0.0/16"]),
      /^172\.31\.0\.0\/16 dev eth0 proto kernel scope link src 172\.31\.0\.1 $/m,
    );
  }
  assert.deepEqual(await readLease(lab, h1), cluster.leases[0]);
  await waitForFullMesh(lab, cluster.leases, 10_000, [restarted, cluster.weftds[1]!]);
  for (const h of hostile) await restarted.waitForOutput(h.log, 5000);
  assert.doesNotMatch(restarted.output(), /cannot list leases|acquiring a subnet lease/);
  noStackTrace(restarted.output());
  assert.ok(restarted.running && cluster.weftds[1]!.running);
  await assertReachesEtcd(lab, h1);
  await assertFullMeshPing(lab, pods);
  const dsts = await programmedRoutes(lab, h2);
  for (const h of hostile) if (h.dst) assert.ok(!dsts.has(h.dst), `host 2 routes ${h.dst}`);
}

/** Dual stack: the IPv6 half of a key is held to the same rule, and refusing it refuses the whole lease. */
async function runDualStack(lab: Lab): Promise<void> {
  // Leases keep to .60-.90 (and :60-:90), away from the keys this test writes.
  const config = JSON.stringify({
    EnableIPv6: true,
    Network: "10.244.0.0/16",
    SubnetMin: "10.244.60.0",
    SubnetMax: "10.244.90.0",
    IPv6Network: "fd44::/56",
    IPv6SubnetMin: "fd44:0:0:60::",
    IPv6SubnetMax: "fd44:0:0:90::",
    Backend: { Type: "vxlan" },
  });
  const cluster = await startCluster(lab, config);
  const [h1, h2] = [lab.host(1), lab.host(2)];
  const peer6 = cluster.leases[1]!.ipv6Subnet!;
  const routes6 = async (host: LabHost) => routeDestinations(lab, host, 6);
  await waitFor("the IPv6 peer route", async () => (await routes6(h1)).includes(peer6), 10_000);
  const dual = (v6: string) =>
    JSON.stringify({
      PublicIP: "172.31.0.2",
      PublicIPv6: v6,
      BackendType: "vxlan",
      BackendData: { VNI: 1, VtepMAC: GOOD_MAC },
      BackendV6Data: { VNI: 1, VtepMAC: GOOD_MAC },
    });
  const hostile = [
    // The underlay's IPv6 network: routed, it would take the host's path to every peer and to etcd's host.
    { key: "10.244.50.0-24&fd31::-64", rule: /its subnet fd31::\/64 is not inside the Network fd44::\/56/ },
    { key: "10.244.51.0-24&fd44::-56", rule: /its subnet fd44::\/56 overlaps our own subnet/ },
    { key: "10.244.52.0-24&fd44:0:0:34::-80", rule: /its subnet fd44:0:0:34::\/80 is not a \/64/ },
  ];
  for (const h of hostile) await lab.etcdctl(["put", `${SUBNETS}${h.key}`, dual("fd31::2")]);
  const later = "10.244.99.0-24&fd44:0:0:99::-64";
  await lab.etcdctl(["put", `${SUBNETS}${later}`, dual("fd31::9")]);
  await waitFor(
    "the lease put after the hostile ones",
    async () => (await routes6(h1)).includes("fd44:0:0:99::/64"),
    10_000,
  );
  for (const host of [h1, h2]) {
    const dsts = await programmedRoutes(lab, host);
    for (const dst of [
      "fd31::/64",
      "fd44::/56",
      "fd44:0:0:34::/80",
      "10.244.50.0/24",
      "10.244.51.0/24",
      "10.244.52.0/24",
    ])
      assert.ok(!dsts.has(dst), `${host.name} routes ${dst}`);
    assert.ok(dsts.has(cluster.leases[host === h1 ? 1 : 0]!.ipv6Subnet!), "the IPv6 peer stays routed");
    assert.ok(
      (await lab.ping(host, "fd31::fe", { count: 2, intervalSeconds: 0.1 })).reachable,
      "the IPv6 underlay",
    );
    await assertReachesEtcd(lab, host);
  }
  for (const h of hostile) await cluster.weftds[0]!.waitForOutput(h.rule, 5000);
  for (const weftd of cluster.weftds) {
    assert.ok(weftd.running);
    noStackTrace(weftd.output());
  }
}

describe("weftd and hostile leases", { timeout: 240_000 }, () => {
  it("vxlan: refuses or isolates each hostile lease, keeps its peers and etcd, leaves nothing behind", async () => {
    await withLab({ hosts: 2, tag: "hostvx" }, (lab) => runScenario(lab, "vxlan"));
  });

  it("host-gw: the same, where a bad route would go through the shared eth0", async () => {
    await withLab({ hosts: 2, tag: "hostgw" }, (lab) => runScenario(lab, "host-gw"));
  });

  it("dual stack: a key whose IPv6 half is out of scope is refused whole", async () => {
    await withLab({ hosts: 2, ipv6: true, tag: "hostv6" }, (lab) => runDualStack(lab));
  });
});
