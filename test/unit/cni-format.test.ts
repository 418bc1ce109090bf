/** The flannel plugin's pure parts: Go-compatible JSON and addresses, subnet.env, result versions. */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { withRouteGateways } from "../../src/cni/command-check.js";
import { goJson } from "../../src/cni/go-json.js";
import { formatGoIp, formatNetwork, parseGoCidr, parseGoIp } from "../../src/cni/ip-cidr.js";
import { convertResult } from "../../src/cni/result-convert.js";
import { parseSubnetEnv } from "../../src/cni/subnet-env.js";

describe("Go-compatible JSON", () => {
  it("sorts map keys bytewise and keeps struct order", () => {
    assert.equal(goJson({ b: 1, a: [true, null], é: "x", Z: {} }), '{"Z":{},"a":[true,null],"b":1,"é":"x"}');
    assert.equal(
      goJson(
        new Map<string, unknown>([
          ["z", 1],
          ["a", 2],
        ]),
      ),
      '{"z":1,"a":2}',
    );
    assert.equal(goJson({ "\u{1F600}": 1, "\uFFFF": 2 }), '{"\uFFFF":2,"\u{1F600}":1}');
  });

  it("escapes as Go does", () => {
    assert.equal(
      goJson('<&>\u2028\u2029\b\f\n\u0001\u007f"\\'),
      '"\\u003c\\u0026\\u003e\\u2028\\u2029\\b\\f\\n\\u0001\u007f\\"\\\\"',
    );
    assert.equal(goJson("\ud800"), '"\ufffd"');
  });

  it("escapes every UTF-16 code unit as Go does, between plain text", () => {
    const short: Record<string, string> = {
      '"': '\\"',
      "\\": "\\\\",
      "\n": "\\n",
      "\r": "\\r",
      "\t": "\\t",
      "\b": "\\b",
      "\f": "\\f",
    };
    for (let c = 0; c <= 0xffff; c++) {
      const ch = String.fromCharCode(c);
      let want = ch;
      if (short[ch] !== undefined) want = short[ch];
      else if (c < 0x20 || ch === "<" || ch === ">" || ch === "&" || c === 0x2028 || c === 0x2029)
        want = `\\u${c.toString(16).padStart(4, "0")}`;
      else if (c >= 0xd800 && c <= 0xdfff) want = "\ufffd";
      assert.equal(goJson(`a${ch}b`), `"a${want}b"`, `U+${c.toString(16)}`);
    }
    assert.equal(goJson("x\u{1F600}y"), '"x\u{1F600}y"', "a surrogate pair is kept");
  });

  it("indents like MarshalIndent", () => {
    assert.equal(
      goJson({ a: [1], b: {}, c: [] }, "    "),
      '{\n    "a": [\n        1\n    ],\n    "b": {},\n    "c": []\n}',
    );
  });

  it("prints numbers like Go's float64", () => {
    assert.equal(goJson([1e21, 1e-7, 1450, -0, 0.5]), "[1e+21,1e-7,1450,-0,0.5]");
  });
});

describe("Go-compatible addresses", () => {
  const cases: [string, string][] = [
    ["10.250.3.1/24", "10.250.3.0/24"],
    ["fd44:0:0:3c::1/64", "fd44:0:0:3c::/64"],
    ["FD44:0000::/56", "fd44::/56"],
    ["2001:db8:0:1:0:0:1:1/128", "2001:db8:0:1::1:1/128"],
    ["2001:db8:0:0:1:0:0:1/128", "2001:db8::1:0:0:1/128"],
    ["2001:db8:1:2:3:4:0:1/128", "2001:db8:1:2:3:4:0:1/128"],
    ["::ffff:10.1.2.3/104", "10.0.0.0/8"],
    ["::1.2.3.4/128", "::102:304/128"],
    ["0.0.0.0/0", "0.0.0.0/0"],
    ["10.1.2.3/024", "10.1.2.0/24"],
  ];
  for (const [input, output] of cases) {
    it(`${input} -> ${output}`, () => assert.equal(formatNetwork(parseGoCidr(input)), output));
  }

  for (const bad of [
    "10.1.2.3",
    "10.1.2.3/33",
    "010.1.2.3/8",
    "1.2.3/8",
    "fe80::1%eth0/64",
    "1:::2/64",
    "::/129",
    "1.2.3.4/-1",
    "1.2.3.4/+8",
    ":1::/64",
  ]) {
    it(`rejects ${bad}`, () =>
      assert.throws(() => parseGoCidr(bad), { message: `invalid CIDR address: ${bad}` }));
  }

  it("prints addresses", () => {
    assert.equal(formatGoIp(parseGoIp("::")!), "::");
    assert.equal(formatGoIp(parseGoIp("1::")!), "1::");
    assert.equal(formatGoIp(parseGoIp("::ffff:1.2.3.4")!), "1.2.3.4");
    assert.equal(parseGoIp("1.2.3.256"), undefined);
  });
});

describe("subnet.env", () => {
  it("reads both families, CRLF lines, the last of repeated keys", () => {
    const env = parseSubnetEnv(
      "FLANNEL_NETWORK=10.0.0.0/8\r\nFLANNEL_NETWORK=10.250.0.0/16\nFLANNEL_SUBNET=10.250.3.1/24\n" +
        "FLANNEL_IPV6_NETWORK=fd44::/56\nFLANNEL_IPV6_SUBNET=fd44:0:0:3c::1/64\nFLANNEL_MTU=1450\nFLANNEL_IPMASQ=yes\nOTHER=1\n",
      "/x",
    );
    assert.deepEqual(env.networks.map(formatNetwork), ["10.250.0.0/16"]);
    assert.equal(formatNetwork(env.subnet!), "10.250.3.0/24");
    assert.equal(formatNetwork(env.ipv6Subnet!), "fd44:0:0:3c::/64");
    assert.equal(env.mtu, 1450);
    assert.equal(env.ipMasq, false, 'only "true" is true, as upstream');
  });
});

describe("result versions", () => {
  const current = {
    cniVersion: "1.0.0",
    interfaces: [
      { name: "cni0", mac: "aa:bb:cc:dd:ee:ff" },
      { name: "eth0", sandbox: "/run/netns/p" },
    ],
    ips: [
      { interface: 1, address: "10.250.3.2/24", gateway: "10.250.3.1" },
      { interface: 1, address: "fd44:0:0:3c::2/64", gateway: "fd44:0:0:3c::1" },
    ],
    routes: [{ dst: "10.250.0.0/16" }, { dst: "fd44::/56" }],
    dns: {},
  };

  it("passes the same version through untouched", () => {
    assert.equal(convertResult(current, "1.0.0", "1.0.0"), current);
  });

  it("1.0.0 -> 0.4.0 adds ip versions", () => {
    const r = convertResult(current, "1.0.0", "0.4.0");
    assert.equal(r["cniVersion"], "0.4.0");
    assert.deepEqual(r["ips"], [
      { version: "4", interface: 1, address: "10.250.3.2/24", gateway: "10.250.3.1" },
      { version: "6", interface: 1, address: "fd44:0:0:3c::2/64", gateway: "fd44:0:0:3c::1" },
    ]);
    assert.deepEqual(r["interfaces"], current.interfaces);
  });

  it("0.3.1 -> 1.0.0 drops them", () => {
    const old = convertResult(current, "1.0.0", "0.3.1");
    const back = convertResult(old, "0.3.1", "1.0.0");
    assert.deepEqual(back, current);
  });

  it("1.0.0 -> 0.2.0 makes ip4/ip6 blocks with their routes", () => {
    assert.deepEqual(convertResult(current, "1.0.0", "0.2.0"), {
      cniVersion: "0.2.0",
      ip4: { ip: "10.250.3.2/24", gateway: "10.250.3.1", routes: [{ dst: "10.250.0.0/16" }] },
      ip6: { ip: "fd44:0:0:3c::2/64", gateway: "fd44:0:0:3c::1", routes: [{ dst: "fd44::/56" }] },
      dns: {},
    });
  });

  it("0.2.0 -> 1.0.0", () => {
    const legacy = {
      cniVersion: "0.2.0",
      ip4: { ip: "10.1.0.2/24", routes: [{ dst: "0.0.0.0/0" }] },
      dns: {},
    };
    assert.deepEqual(convertResult(legacy, "0.2.0", "1.0.0"), {
      cniVersion: "1.0.0",
      ips: [{ address: "10.1.0.2/24" }],
      routes: [{ dst: "0.0.0.0/0" }],
      dns: {},
    });
  });

  it("refuses to lose addresses going to 0.2.0", () => {
    const two = { ...current, ips: [{ address: "10.0.0.2/24" }, { address: "10.0.0.3/24" }] };
    assert.throws(() => convertResult(two, "1.0.0", "0.2.0"), /more than one ip4 address/);
  });

  it("takes the assumed version when the result names none", () => {
    const { cniVersion: _drop, ...unnamed } = current;
    assert.equal(convertResult(unnamed, "1.0.0", "1.0.0"), unnamed);
    assert.equal(convertResult(unnamed, "1.0.0", "0.4.0")["cniVersion"], "0.4.0");
  });
});

describe("CHECK's prevResult", () => {
  it("names the gateway a flannel route really uses, per family", () => {
    const prev = {
      cniVersion: "1.0.0",
      ips: [
        { address: "10.250.3.2/24", gateway: "10.250.3.1" },
        { address: "fd44:0:0:3c::2/64", gateway: "fd44:0:0:3c::1" },
      ],
      routes: [{ dst: "10.250.0.0/16" }, { dst: "fd44::/56" }, { dst: "0.0.0.0/0", gw: "10.250.3.254" }],
    };
    assert.deepEqual(withRouteGateways(prev)["routes"], [
      { dst: "10.250.0.0/16", gw: "10.250.3.1" },
      { dst: "fd44::/56", gw: "fd44:0:0:3c::1" },
      { dst: "0.0.0.0/0", gw: "10.250.3.254" },
    ]);
    assert.deepEqual(prev.routes[0], { dst: "10.250.0.0/16" }, "the runtime's object is not modified");
  });

  it("leaves a result without gateways alone", () => {
    const prev = { ips: [{ address: "10.0.0.2/24" }], routes: [{ dst: "10.0.0.0/8" }] };
    assert.deepEqual(withRouteGateways(prev), prev);
  });
});
