import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { parseNetworkConfig } from "../../src/config/network-config.js";
import { formatCIDR, parseCIDR } from "../../src/ip/ip-network.js";
import { encodeLeaseAttrs } from "../../src/lease/lease-json.js";
import { LeaseTable } from "../../src/subnet/lease-table.js";
import { chooseFreeSubnet, fitsConfig, TakenSubnets, takenBy } from "../../src/subnet/subnet-choice.js";

const config = parseNetworkConfig(
  '{"Network":"10.244.0.0/16","SubnetMin":"10.244.7.0","SubnetMax":"10.244.9.0"}',
);

describe("choosing a subnet", () => {
  it("takes only free subnets between SubnetMin and SubnetMax", () => {
    const taken = new TakenSubnets([parseCIDR("10.244.7.0/24"), parseCIDR("10.244.9.0/24")]);
    for (let i = 0; i < 20; i++) {
      assert.equal(formatCIDR(chooseFreeSubnet(config.ipv4!, taken)!), "10.244.8.0/24");
    }
    const full = new TakenSubnets(["10.244.7.0/24", "10.244.8.0/24", "10.244.9.0/24"].map(parseCIDR));
    assert.equal(chooseFreeSubnet(config.ipv4!, full), undefined);
  });

  it("respects a reservation of another size that covers candidates", () => {
    const taken = new TakenSubnets([parseCIDR("10.244.6.0/23")]);
    const chosen = new Set<string>();
    for (let i = 0; i < 50; i++) chosen.add(formatCIDR(chooseFreeSubnet(config.ipv4!, taken, () => i / 50)!));
    assert.deepEqual([...chosen].sort(), ["10.244.8.0/24", "10.244.9.0/24"]);
  });

  it("passes over a key that covers the whole Network, which would leave no subnet for anyone", () => {
    const held = [
      { subnet: parseCIDR("10.244.0.0/16"), ipv6Subnet: undefined },
      { subnet: parseCIDR("10.0.0.0/8"), ipv6Subnet: undefined },
      { subnet: parseCIDR("10.244.7.0/24"), ipv6Subnet: undefined },
    ];
    const { v4 } = takenBy(held, config);
    const chosen = new Set<string>();
    for (let i = 0; i < 50; i++) chosen.add(formatCIDR(chooseFreeSubnet(config.ipv4!, v4, () => i / 50)!));
    assert.deepEqual([...chosen].sort(), ["10.244.8.0/24", "10.244.9.0/24"]);
  });

  it("knows which subnets fit the config", () => {
    assert.ok(fitsConfig(config, parseCIDR("10.244.8.0/24"), undefined));
    assert.ok(!fitsConfig(config, parseCIDR("10.244.10.0/24"), undefined), "above SubnetMax");
    assert.ok(!fitsConfig(config, parseCIDR("10.244.8.0/25"), undefined), "wrong length");
    assert.ok(!fitsConfig(config, parseCIDR("10.244.8.0/24"), parseCIDR("fd00::/64")), "IPv6 not enabled");
  });
});

describe("lease table", () => {
  it("keeps malformed leases apart, reports each once, and still counts their subnets as taken", () => {
    const table = new LeaseTable();
    const good = {
      subnetKey: "10.244.8.0-24",
      value: encodeLeaseAttrs({
        publicIP: "172.31.0.2",
        publicIPv6: undefined,
        backendType: "vxlan",
        backendData: { VNI: 1, VtepMAC: "aa:bb:cc:dd:ee:ff" },
        backendV6Data: undefined,
      }),
      reservation: false,
    };
    const bad = { subnetKey: "10.244.7.0-24", value: '{"PublicIP":"bogus"}', reservation: false };
    const warnings = table.replaceAll([good, bad]);
    assert.equal(warnings.length, 1);
    assert.match(warnings[0]!, /ignoring lease 10\.244\.7\.0-24: PublicIP "bogus" is not an IPv4 address/);
    assert.deepEqual([...table.leases.keys()], ["10.244.8.0-24"]);
    assert.deepEqual([...table.heldSubnets()].map((s) => formatCIDR(s.subnet!)).sort(), [
      "10.244.7.0/24",
      "10.244.8.0/24",
    ]);
    assert.equal(table.put(bad), undefined, "the same bad value is reported once");
    table.delete("10.244.7.0-24");
    assert.equal(table.invalid.size, 0);
  });

  it("marks keys without an etcd lease as reservations", () => {
    const table = new LeaseTable();
    table.put({ subnetKey: "10.244.9.0-24", value: '{"PublicIP":"172.31.0.9"}', reservation: true });
    assert.equal(table.leases.get("10.244.9.0-24")?.reservation, true);
  });
});
