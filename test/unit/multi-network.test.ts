/** flanneld v0.7's multi-network mode: its flags, network names, env-file paths, keys and v0.7 lease values. */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { parseNetworkConfig } from "../../src/config/network-config.js";
import { parseFlags } from "../../src/daemon/flags.js";
import {
  isNetworkAllowed,
  multiNetworkOptions,
  networkEnvPath,
  parseNetworkList,
} from "../../src/daemon/multi-network.js";
import { SharedTrafficRules } from "../../src/daemon/network-traffic-rules.js";
import type { Firewall, WantedRules } from "../../src/firewall/firewall.js";
import { wantedTable } from "../../src/firewall/nft-rules.js";
import { wantedChains } from "../../src/firewall/traffic-rules.js";
import { formatCIDR, type IPNetwork, parseCIDR } from "../../src/ip/ip-network.js";
import type { Lease } from "../../src/lease/lease.js";
import { decodeLeaseAttrs } from "../../src/lease/lease-json.js";
import { networkOfConfigKey } from "../../src/subnet/etcd/etcd-network-source.js";
import { openNetworkSource } from "../../src/subnet/registry.js";
import { UserError } from "../../src/user-error.js";
import { etcdPairs, readReference, section } from "../helpers/reference.js";

const REF = readReference("flanneld-v0.7.0", "multi-network.txt");

describe("multi-network flags", () => {
  it("has flanneld v0.7's defaults: single-network mode, /run/flannel/networks", () => {
    const flags = parseFlags([], {});
    assert.equal(flags.string("networks"), "");
    assert.equal(flags.string("subnet-dir"), "/run/flannel/networks");
    assert.equal(flags.bool("watch-networks"), false);
    assert.equal(multiNetworkOptions(flags), undefined, "neither flag: single-network mode");
  });

  it("takes the reference's command lines", () => {
    // flanneld-v0.7.0 --networks=blue,green,red,yellow --subnet-dir=<dir>/b/h1/networks
    const h1 = parseFlags(
      ["--iface=eth0", "--networks=blue,green,red,yellow", "--subnet-dir=/x/networks"],
      {},
    );
    assert.deepEqual(multiNetworkOptions(h1), {
      networks: ["blue", "green", "red", "yellow"],
      watch: false,
      subnetDir: "/x/networks",
    });
    // --watch-networks --networks=blue,cyan
    const h3 = parseFlags(["--watch-networks", "--networks=blue,cyan"], {});
    assert.deepEqual(multiNetworkOptions(h3), {
      networks: ["blue", "cyan"],
      watch: true,
      subnetDir: "/run/flannel/networks",
    });
    // --watch-networks alone: every network in the store.
    assert.deepEqual(multiNetworkOptions(parseFlags(["-watch-networks"], {}))?.networks, []);
  });

  it("reads FLANNELD_NETWORKS, FLANNELD_SUBNET_DIR and FLANNELD_WATCH_NETWORKS", () => {
    const flags = parseFlags([], {
      FLANNELD_NETWORKS: "blue, green",
      FLANNELD_SUBNET_DIR: "/etc/nets",
      FLANNELD_WATCH_NETWORKS: "true",
    });
    assert.deepEqual(multiNetworkOptions(flags), {
      networks: ["blue", "green"],
      watch: true,
      subnetDir: "/etc/nets",
    });
    // The command line wins over the environment.
    const both = parseFlags(["--networks=red"], { FLANNELD_NETWORKS: "blue" });
    assert.deepEqual(multiNetworkOptions(both)?.networks, ["red"]);
  });

  it("drops empty entries and duplicates, refuses a name that is not a key segment and file name", () => {
    assert.deepEqual(parseNetworkList("blue,,green,blue,"), ["blue", "green"]);
    for (const bad of ["../etc", "a/b", ".hidden", "x\ny", "sp ace"]) {
      assert.throws(
        () => parseNetworkList(`blue,${bad}`),
        (err: unknown) =>
          err instanceof UserError && /--networks has ".*", which is not a network name/.test(err.message),
        bad,
      );
    }
    assert.throws(
      () => multiNetworkOptions(parseFlags(["--networks=a", "--subnet-dir="], {})),
      /--subnet-dir is empty/,
    );
  });

  it("allows only the listed networks, or every one without --networks (v0.7's isNetAllowed)", () => {
    const listed = { networks: ["blue", "cyan"], watch: true, subnetDir: "/d" };
    assert.equal(isNetworkAllowed(listed, "cyan"), true);
    assert.equal(isNetworkAllowed(listed, "orange"), false);
    assert.equal(isNetworkAllowed({ ...listed, networks: [] }, "orange"), true);
  });
});

describe("multi-network files and keys", () => {
  it("names each env file <subnet-dir>/<network>.env as the reference lists them", () => {
    const listing = section(REF, "phase 1: h1 ls -la <dir>/b/h1/networks");
    const names = [...listing.matchAll(/ (\w+)\.env$/gm)].map((m) => m[1]!);
    assert.deepEqual(names, ["blue", "green", "red", "yellow"]);
    for (const name of names) {
      assert.equal(networkEnvPath("<dir>/b/h1/networks", name), `<dir>/b/h1/networks/${name}.env`);
    }
    assert.equal(networkEnvPath("/run/flannel/networks/", "blue"), "/run/flannel/networks/blue.env");
  });

  it("finds the networks among the reference's keys: <prefix>/<network>/config only", () => {
    const keys = section(REF, "phase 1: etcd keys (").split("\n");
    const networks = keys.map((k) => networkOfConfigKey("/coreos.com/network", k)).filter(Boolean);
    assert.deepEqual(networks, ["green", "red", "yellow", "purple", "blue"]);
    assert.equal(networkOfConfigKey("/coreos.com/network", "/coreos.com/network/config"), undefined);
    assert.equal(
      networkOfConfigKey("/coreos.com/network", "/coreos.com/network/blue/subnets/10.10.23.0-24"),
      undefined,
    );
    assert.equal(networkOfConfigKey("/coreos.com/network", "/coreos.com/networkx/blue/config"), undefined);
  });

  it("reads every lease value flanneld v0.7.0 wrote (no PublicIPv6; vxlan data without VNI)", () => {
    const pairs = etcdPairs(section(REF, "phase 1: etcd keys and values")).filter((p) =>
      p.key.includes("/subnets/"),
    );
    assert.equal(pairs.length, 8);
    for (const { key, value } of pairs) {
      const attrs = decodeLeaseAttrs(value);
      assert.match(attrs.publicIP ?? "", /^172\.29\.0\.[12]$/, key);
      assert.equal(attrs.publicIPv6, undefined, key);
    }
    const blue = decodeLeaseAttrs(pairs.find((p) => p.key.endsWith("10.10.23.0-24"))!.value);
    assert.equal(blue.backendType, "vxlan");
    assert.deepEqual(blue.backendData, { VtepMAC: "7e:ff:0a:0f:79:0f" });
    // udp leases of v0.7 carry no BackendType at all.
    assert.equal(
      decodeLeaseAttrs(pairs.find((p) => p.key.endsWith("10.40.2.0-24"))!.value).backendType,
      undefined,
    );
  });

  it("refuses multi-network mode with the kube subnet manager, by name", async () => {
    const flags = parseFlags(["--kube-subnet-mgr", "--networks=blue"], {});
    await assert.rejects(
      async () => openNetworkSource({ flags, env: {}, log: () => {}, logError: () => {} }),
      (err: unknown) =>
        err instanceof UserError && /not available with the kube subnet manager/.test(err.message),
    );
  });
});

describe("multi-network traffic rules", () => {
  const cidr = (text: string) => parseCIDR(text) as IPNetwork;
  const blue = { network: cidr("10.10.0.0/16"), subnet: cidr("10.10.23.0/24") };
  const red = { network: cidr("10.30.0.0/16"), subnet: cidr("10.30.53.0/24") };
  const one: WantedRules = { v4: blue, v6: undefined, ipMasq: true, randomFully: false, forwardRules: true };
  const two: WantedRules = { ...one, others: [{ v4: red, v6: undefined }] };

  it("puts every network's iptables rules in the same chains, the kube-proxy mark rule once", () => {
    const [forward, masq] = wantedChains(4, two);
    const [forwardOne, masqOne] = wantedChains(4, one);
    assert.equal(forward!.chain, "FLANNEL-FWD");
    assert.deepEqual(
      forward!.rules.map((r) => r.split(" -m ")[0]),
      ["-s 10.10.0.0/16", "-d 10.10.0.0/16", "-s 10.30.0.0/16", "-d 10.30.0.0/16"],
    );
    assert.deepEqual(forward!.rules.slice(0, 2), forwardOne!.rules, "the first network's rules as alone");
    assert.equal(masq!.rules.length, 1 + 4 + 4);
    assert.deepEqual(masq!.rules.slice(0, 5), masqOne!.rules, "the first network's rules as alone");
    assert.equal(masq!.rules.filter((r) => r.includes("--mark 0x4000")).length, 1);
    assert.match(masq!.rules[5]!, /^-s 10\.30\.0\.0\/16 -d 10\.30\.0\.0\/16 /);
    assert.match(masq!.rules[7]!, /^! -s 10\.30\.0\.0\/16 -d 10\.30\.53\.0\/24 /);
    // A network without this family adds nothing to it.
    assert.deepEqual(wantedChains(6, two), []);
  });

  it("puts every network's nftables rules in the same table", () => {
    const table = wantedTable(4, two);
    const postrtg = table.chains.find((c) => c.name === "postrtg")!;
    const forward = table.chains.find((c) => c.name === "forward")!;
    assert.equal(postrtg.rules.length, 1 + 5 + 5);
    assert.equal(postrtg.rules.filter((r) => r[0]!.startsWith("meta mark")).length, 1);
    assert.deepEqual(postrtg.rules.slice(0, 6), wantedTable(4, one).chains[0]!.rules);
    assert.deepEqual(
      forward.rules.map((r) => r[0]),
      [
        "ip saddr == 10.10.0.0/16",
        "ip daddr == 10.10.0.0/16",
        "ip saddr == 10.30.0.0/16",
        "ip daddr == 10.30.0.0/16",
      ],
    );
  });
});

describe("shared traffic rules", () => {
  const cidr = (text: string) => parseCIDR(text) as IPNetwork;
  const network = (net: string, subnet: string) => ({
    config: parseNetworkConfig(`{"Network":"${net}","Backend":{"Type":"vxlan"}}`),
    lease: { subnet: cidr(subnet) } as unknown as Lease,
  });
  const memory = () => {
    const wanted: WantedRules[] = [];
    const firewall: Firewall = {
      mode: "memory",
      families: () => [4],
      ensure: async (_family, want) => {
        wanted.push(want);
        return 0;
      },
      removeAll: async () => {},
    };
    return {
      wanted,
      firewalls: () => ({ use: firewall, other: { ...firewall, removeAll: async () => {} } }),
    };
  };
  const quiet = { info() {}, warn() {}, error() {} };
  const cidrOf = (n: IPNetwork | undefined) => (n ? formatCIDR(n) : undefined);
  const options = { ipMasq: true, randomFully: true, forwardRules: true, resyncSeconds: 0 };

  it("keeps every network's rules together, in the given order; a leaving network takes its own", async () => {
    const { wanted, firewalls } = memory();
    const order = ["red", "blue"];
    const shared = new SharedTrafficRules(
      options,
      quiet,
      (names) => order.filter((n) => names.includes(n)),
      firewalls,
    );
    const blue = network("10.10.0.0/16", "10.10.23.0/24");
    const red = network("10.30.0.0/16", "10.30.53.0/24");
    await shared.forNetwork("blue").apply(blue.config, blue.lease);
    await shared.forNetwork("red").apply(red.config, red.lease);
    const last = () => wanted.at(-1)!;
    assert.equal(cidrOf(last().v4?.network), "10.30.0.0/16", "red first, as ordered");
    assert.equal(cidrOf(last().others?.[0]?.v4?.subnet), "10.10.23.0/24");
    shared.forNetwork("red").forget();
    await new Promise((r) => setImmediate(r));
    assert.equal(cidrOf(last().v4?.network), "10.10.0.0/16");
    assert.equal(last().others, undefined, "red's rules are gone, blue's alone");
    // Shutdown: the rules stay as they are, whatever stops after.
    const before = wanted.length;
    shared.stop();
    shared.forNetwork("blue").forget();
    await new Promise((r) => setImmediate(r));
    assert.equal(wanted.length, before);
  });
});
