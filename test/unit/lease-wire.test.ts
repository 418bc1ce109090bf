/** Leases, subnet.env and traffic rules against what flanneld v0.20.2 wrote (test/fixtures/reference). */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { parseNetworkConfig } from "../../src/config/network-config.js";
import {
  type ChainRules,
  forwardRules,
  jumpRule,
  masqueradeRules,
} from "../../src/firewall/traffic-rules.js";
import { formatCIDR } from "../../src/ip/ip-network.js";
import { decodeLeaseAttrs, encodeLeaseAttrs, LeaseDecodeError } from "../../src/lease/lease-json.js";
import { parseSubnetKey, subnetKey } from "../../src/lease/lease-key.js";
import { formatSubnetEnv, parseEnvLines } from "../../src/lease/subnet-env.js";
import { etcdPairs, readReference, referenceFiles, section } from "../helpers/reference.js";

const FOLDER = "flanneld-v0.20.2";
const etcdFiles = referenceFiles(FOLDER).filter((f) => !f.startsWith("kube"));
const PREFIX = "/coreos.com/network/subnets/";

function h1Lease(file: string) {
  const sections = readReference(FOLDER, file);
  const pairs = etcdPairs(section(sections, "etcd keys and values")).filter((p) => p.key.startsWith(PREFIX));
  const h1 = pairs.find((p) => decodeLeaseAttrs(p.value).publicIP === "172.31.0.1");
  assert.ok(h1, `${file}: no lease of host 1`);
  const subnets = parseSubnetKey(h1.key.slice(PREFIX.length));
  assert.ok(subnets);
  return { sections, subnets, config: parseNetworkConfig(section(sections, "network config")) };
}

/** Renders chains the way iptables-save prints a table that holds only our rules. */
function renderTable(table: "filter" | "nat", chains: ChainRules[]): string {
  const builtins =
    table === "filter" ? ["INPUT", "FORWARD", "OUTPUT"] : ["PREROUTING", "INPUT", "OUTPUT", "POSTROUTING"];
  const lines = [
    `*${table}`,
    ...builtins.map((c) => `:${c} ACCEPT [0:0]`),
    ...chains.map((c) => `:${c.chain} - [0:0]`),
  ];
  for (const c of chains) lines.push(`-A ${c.parent} ${jumpRule(c)}`);
  for (const c of chains) for (const r of c.rules) lines.push(`-A ${c.chain} ${r}`);
  lines.push("COMMIT");
  return lines.join("\n");
}

describe("lease wire format (flanneld v0.20.2)", () => {
  it("round-trips every lease key and value byte for byte", () => {
    let count = 0;
    for (const file of etcdFiles) {
      const pairs = etcdPairs(section(readReference(FOLDER, file), "etcd keys and values"));
      for (const { key, value } of pairs.filter((p) => p.key.startsWith(PREFIX))) {
        const suffix = key.slice(PREFIX.length);
        const subnets = parseSubnetKey(suffix);
        assert.ok(subnets, `${file}: key ${suffix}`);
        assert.equal(subnetKey(subnets.subnet, subnets.ipv6Subnet), suffix, `${file}: key`);
        assert.equal(encodeLeaseAttrs(decodeLeaseAttrs(value)), value, `${file}: value`);
        count++;
      }
    }
    assert.ok(count >= 10, `only ${count} leases checked`);
  });

  it("reads dual-stack keys and IPv6-only keys", () => {
    const dual = parseSubnetKey("10.5.34.0-24&fd00:1:2::-64")!;
    assert.equal(formatCIDR(dual.subnet!), "10.5.34.0/24");
    assert.equal(formatCIDR(dual.ipv6Subnet!), "fd00:1:2::/64");
    const v6only = parseSubnetKey("0.0.0.0-0&fd00:1:2::-64")!;
    assert.equal(v6only.subnet, undefined);
    assert.equal(subnetKey(undefined, v6only.ipv6Subnet), "0.0.0.0-0&fd00:1:2::-64");
    for (const bad of [
      "10.5.34.0",
      "10.5.34.1-24",
      "10.5.34.0-33",
      "10.5.34.0-24&",
      "10.5.34.0-24&zz::-64",
      "x",
    ]) {
      assert.equal(parseSubnetKey(bad), undefined, bad);
    }
  });

  it("names the bad field of a malformed lease value", () => {
    const cases: Array<[string, RegExp]> = [
      ["{", /not valid JSON/],
      ["[1]", /not a JSON object/],
      ['{"PublicIP":"300.1.1.1"}', /PublicIP "300.1.1.1" is not an IPv4 address/],
      ['{"PublicIP":7}', /PublicIP must be a string/],
      ['{"PublicIP":"1.2.3.4","PublicIPv6":"nope"}', /PublicIPv6 "nope" is not an IPv6 address/],
      ['{"PublicIP":"1.2.3.4","BackendType":1}', /BackendType must be a string/],
    ];
    for (const [value, pattern] of cases) {
      assert.throws(
        () => decodeLeaseAttrs(value),
        (e: unknown) => e instanceof LeaseDecodeError && pattern.test(e.message),
        value,
      );
    }
  });

  it("writes subnet.env byte-identical to flanneld's", () => {
    const mtus: Record<string, number> = { vxlan: 1450, "host-gw": 1500, udp: 1472 };
    for (const file of etcdFiles) {
      const { sections, subnets, config } = h1Lease(file);
      const expected = section(sections, "h1 subnet.env");
      const mtu = Number(parseEnvLines(expected).get("FLANNEL_MTU"));
      assert.equal(mtu, mtus[config.backendType], `${file}: MTU of the ${config.backendType} backend`);
      const text = formatSubnetEnv({
        network: config.ipv4?.network,
        subnet: subnets.subnet,
        ipv6Network: config.ipv6?.network,
        ipv6Subnet: subnets.ipv6Subnet,
        mtu,
        ipMasq: true,
      });
      assert.equal(text, `${expected}\n`, file);
    }
  });

  it("computes the same masquerade and forward rules as iptables-save showed", () => {
    for (const file of etcdFiles) {
      const { sections, subnets, config } = h1Lease(file);
      const saved = section(sections, "h1 iptables-save");
      const network = config.ipv4!.network;
      const expected = `${renderTable("filter", [forwardRules(network)])}\n${renderTable("nat", [masqueradeRules(network, subnets.subnet!, true)])}`;
      assert.equal(saved, expected, file);
      if (config.ipv6) {
        const v6 = config.ipv6.network;
        const expected6 = `${renderTable("filter", [forwardRules(v6)])}\n${renderTable("nat", [masqueradeRules(v6, subnets.ipv6Subnet!, true)])}`;
        assert.equal(section(sections, "h1 ip6tables-save"), expected6, `${file} (IPv6)`);
      }
    }
  });
});
