import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { ConfigError, parseNetworkConfig } from "../../src/config/network-config.js";
import { formatIP } from "../../src/ip/ip-address.js";
import { formatCIDR } from "../../src/ip/ip-network.js";
import { readReference, referenceFiles, section } from "../helpers/reference.js";

function rejects(text: string, pattern: RegExp): void {
  assert.throws(
    () => parseNetworkConfig(text),
    (err: unknown) => err instanceof ConfigError && pattern.test(err.message),
    `${text} should fail with ${pattern}`,
  );
}

describe("network config", () => {
  it("fills flannel's defaults", () => {
    const config = parseNetworkConfig('{"Network":"10.244.0.0/16"}');
    assert.equal(config.backendType, "udp", "a missing Backend means udp");
    assert.equal(config.enableIPv4, true);
    assert.equal(config.enableIPv6, false);
    assert.equal(config.enableNFTables, false);
    assert.equal(config.ipv4?.subnetLen, 24);
    assert.equal(formatIP(config.ipv4!.subnetMin), "10.244.1.0", "the first subnet is skipped");
    assert.equal(formatIP(config.ipv4!.subnetMax), "10.244.255.0");
    assert.equal(config.ipv6, undefined);
  });

  it("derives SubnetLen from small networks (prefix+2) and refuses tiny ones", () => {
    assert.equal(parseNetworkConfig('{"Network":"10.0.0.0/22"}').ipv4?.subnetLen, 24);
    assert.equal(parseNetworkConfig('{"Network":"10.0.0.0/23"}').ipv4?.subnetLen, 25);
    assert.equal(parseNetworkConfig('{"Network":"10.0.0.0/28"}').ipv4?.subnetLen, 30);
    rejects('{"Network":"10.0.0.0/29"}', /too small.*\/28/);
  });

  it("matches keys case-insensitively like Go, the later duplicate winning", () => {
    const config = parseNetworkConfig(
      '{"network":"10.1.0.0/16","SUBNETLEN":26,"backend":{"type":"host-gw"},"EnableIpv6":false}',
    );
    assert.equal(formatCIDR(config.ipv4!.network), "10.1.0.0/16");
    assert.equal(config.ipv4!.subnetLen, 26);
    assert.equal(config.backendType, "host-gw");
    assert.equal(
      formatCIDR(parseNetworkConfig('{"Network":"10.1.0.0/16","network":"10.2.0.0/16"}').ipv4!.network),
      "10.2.0.0/16",
    );
  });

  it("accepts every key with explicit values", () => {
    const config = parseNetworkConfig(
      JSON.stringify({
        EnableIPv4: true,
        EnableIPv6: true,
        EnableNFTables: true,
        Network: "10.5.0.0/16",
        SubnetLen: 26,
        SubnetMin: "10.5.1.0",
        SubnetMax: "10.5.20.192",
        IPv6Network: "fd00:1::/48",
        IPv6SubnetLen: 64,
        IPv6SubnetMin: "fd00:1:0:10::",
        IPv6SubnetMax: "fd00:1:0:20::",
        Backend: { Type: "vxlan", VNI: 4096, Port: 4789, DirectRouting: true },
      }),
    );
    assert.equal(config.enableNFTables, true);
    assert.equal(formatIP(config.ipv4!.subnetMax), "10.5.20.192");
    assert.equal(config.ipv6!.subnetLen, 64);
    assert.equal(formatIP(config.ipv6!.subnetMin), "fd00:1:0:10::");
    assert.equal(formatIP(config.ipv6!.subnetMax), "fd00:1:0:20::");
    assert.equal(config.backend["VNI"], 4096);
  });

  it("defaults IPv6 like IPv4: /64 per host, first subnet skipped", () => {
    const config = parseNetworkConfig(
      '{"EnableIPv6":true,"Network":"10.244.0.0/16","IPv6Network":"fd44::/56"}',
    );
    assert.equal(config.ipv6!.subnetLen, 64);
    assert.equal(formatIP(config.ipv6!.subnetMin), "fd44:0:0:1::");
    assert.equal(formatIP(config.ipv6!.subnetMax), "fd44:0:0:ff::");
    const v6only = parseNetworkConfig('{"EnableIPv4":false,"EnableIPv6":true,"IPv6Network":"fd44::/120"}');
    assert.equal(v6only.ipv4, undefined);
    assert.equal(v6only.ipv6!.subnetLen, 122);
  });

  it("names the key and the rule in every error", () => {
    rejects("{", /not valid JSON/);
    rejects("[]", /JSON object/);
    rejects("{}", /Network is required/);
    rejects('{"Network":"10.244.0.0"}', /Network "10.244.0.0" is not an IPv4 network/);
    rejects('{"Network":"fd44::/56"}', /Network .* is not an IPv4 network/);
    rejects('{"Network":"10.244.0.0/16","SubnetLen":31}', /SubnetLen 31 is too long: it must be at most 30/);
    rejects('{"Network":"10.244.0.0/16","SubnetLen":17}', /SubnetLen 17 is too short.*at least 18/);
    rejects('{"Network":"10.244.0.0/16","SubnetLen":"24"}', /SubnetLen must be a whole number/);
    rejects('{"Network":"10.244.0.0/16","SubnetLen":-1}', /SubnetLen must be a whole number/);
    rejects('{"Network":"10.244.0.0/16","SubnetMin":"10.245.1.0"}', /SubnetMin 10.245.1.0 is not inside/);
    rejects(
      '{"Network":"10.244.0.0/16","SubnetMax":"10.244.1.7"}',
      /SubnetMax 10.244.1.7 is not on a \/24 boundary/,
    );
    rejects(
      '{"Network":"10.244.0.0/16","SubnetMin":"10.244.9.0","SubnetMax":"10.244.2.0"}',
      /SubnetMin .* is above SubnetMax/,
    );
    rejects('{"Network":"10.244.0.0/16","SubnetMin":"bogus"}', /SubnetMin "bogus" is not an IPv4 address/);
    rejects('{"EnableIPv6":true,"Network":"10.244.0.0/16"}', /IPv6Network is required/);
    rejects('{"EnableIPv6":true,"Network":"10.244.0.0/16","IPv6Network":"fd44::/125"}', /too small.*\/124/);
    rejects(
      '{"EnableIPv6":true,"Network":"10.244.0.0/16","IPv6Network":"fd44::/56","IPv6SubnetLen":127}',
      /IPv6SubnetLen 127 is too long: it must be at most 126/,
    );
    rejects('{"EnableIPv4":false}', /both false/);
    rejects('{"EnableIPv4":"yes","Network":"10.244.0.0/16"}', /EnableIPv4 must be true or false/);
    rejects('{"Network":"10.244.0.0/16","Backend":"vxlan"}', /Backend must be an object/);
    rejects('{"Network":"10.244.0.0/16","Backend":{}}', /Backend.Type must be a non-empty string/);
  });

  it("parses every config in the flanneld reference", () => {
    for (const file of referenceFiles("flanneld-v0.20.2")) {
      const sections = readReference("flanneld-v0.20.2", file);
      const text = file.startsWith("kube")
        ? section(sections, "net-conf.json")
        : section(sections, "network config");
      const config = parseNetworkConfig(text);
      assert.equal(formatCIDR(config.ipv4!.network), "10.244.0.0/16", file);
    }
  });
});
