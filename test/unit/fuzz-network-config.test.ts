// Fuzz: the network config (<prefix>/config, net-conf.json), each backend's keys in it, and choosing a
// subnet from what it allows (flannel fuzzes pkg/subnet's config parsing).
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import { expandCommandLine } from "../../src/backend/extension/command-line.js";
import { parseExtensionConfig } from "../../src/backend/extension/extension-config.js";
import { configureBackend, findBackend } from "../../src/backend/registry.js";
import { parseUdpConfig } from "../../src/backend/udp/udp-config.js";
import { parseVxlanConfig } from "../../src/backend/vxlan/vxlan-config.js";
import { parseWireguardConfig } from "../../src/backend/wireguard/wireguard-config.js";
import { ConfigError, type NetworkConfig, parseNetworkConfig } from "../../src/config/network-config.js";
import { formatCIDR, makeNetwork, networkContains, networkContainsNetwork } from "../../src/ip/ip-network.js";
import { parseSubnetKey } from "../../src/lease/lease-key.js";
import { chooseFreeSubnet, fitsFamily, TakenSubnets, takenBy } from "../../src/subnet/subnet-choice.js";
import { UserError } from "../../src/user-error.js";
import { checkProperty, onlyOwnErrors } from "./fuzz-harness.js";
import {
  fieldValue,
  flatWrongJson,
  hostileString,
  jsonDocumentText,
  nearCIDR,
  nearIPv4,
  nearIPv6,
  nearLeaseKey,
  parsed,
  recordOf,
} from "./fuzz-inputs.js";

const v4Network = fc.tuple(fc.ipV4(), fc.integer({ min: 0, max: 32 })).map(([ip, len]) => `${ip}/${len}`);
const v6Network = fc.tuple(fc.ipV6(), fc.integer({ min: 0, max: 128 })).map(([ip, len]) => `${ip}/${len}`);

function configDocument(flat: boolean) {
  const junk = flat ? flatWrongJson : undefined;
  const backend = recordOf(
    {
      Type: fieldValue(fc.constantFrom("vxlan", "host-gw", "udp", "wireguard", "VXLAN", ""), flat),
      VNI: fieldValue(fc.integer({ min: -1, max: 0x1000000 }), flat),
      Port: fieldValue(fc.integer({ min: -1, max: 70000 }), flat),
      MTU: fieldValue(fc.integer({ min: -1, max: 70000 }), flat),
      GBP: fieldValue(fc.boolean(), flat),
      Learning: fieldValue(fc.boolean(), flat),
      DirectRouting: fieldValue(fc.boolean(), flat),
    },
    junk,
  );
  return recordOf(
    {
      Network: fieldValue(fc.oneof(v4Network, nearCIDR), flat),
      SubnetLen: fieldValue(fc.integer({ min: -1, max: 40 }), flat),
      SubnetMin: fieldValue(nearIPv4, flat),
      SubnetMax: fieldValue(nearIPv4, flat),
      EnableIPv4: fieldValue(fc.boolean(), flat),
      EnableIPv6: fieldValue(fc.boolean(), flat),
      EnableNFTables: fieldValue(fc.boolean(), flat),
      IPv6Network: fieldValue(fc.oneof(v6Network, nearCIDR), flat),
      IPv6SubnetLen: fieldValue(fc.integer({ min: -1, max: 130 }), flat),
      IPv6SubnetMin: fieldValue(nearIPv6, flat),
      IPv6SubnetMax: fieldValue(nearIPv6, flat),
      Backend: fc.oneof(
        { weight: 5, arbitrary: backend },
        flat ? flatWrongJson : fieldValue(fc.constant({})),
      ),
    },
    junk,
  );
}

const configText = jsonDocumentText(configDocument(false));
const flatConfigText = jsonDocumentText(configDocument(true), true);

/** What an accepted config must satisfy, whatever the input. */
function checkAccepted(config: NetworkConfig): void {
  assert.ok(config.ipv4 || config.ipv6);
  for (const family of [config.ipv4, config.ipv6]) {
    if (!family) continue;
    const bits = family.network.family === 4 ? 32 : 128;
    assert.ok(family.subnetLen >= family.network.prefixLen + 2 && family.subnetLen <= bits - 2);
    assert.ok(family.subnetMin.value <= family.subnetMax.value);
    assert.ok(networkContains(family.network, family.subnetMin));
    assert.ok(networkContains(family.network, family.subnetMax));
  }
}

describe("fuzz: the network config", () => {
  it("parseNetworkConfig throws only ConfigError, bounded (flat values); what it accepts is consistent", (t) => {
    checkProperty(t, { runs: 2500 }, flatConfigText, (text) => {
      const config = onlyOwnErrors([ConfigError], () => parseNetworkConfig(text));
      if (config) checkAccepted(config);
    });
  });

  it("parseNetworkConfig's message is bounded and one line, for any input (deep, huge, mutated)", (t) => {
    checkProperty(t, { runs: 1500 }, configText, (text) => {
      onlyOwnErrors([ConfigError], () => parseNetworkConfig(text));
    });
  });

  it("a config it accepts hands out subnets quickly, inside the Network and its bounds (no blow-up on huge ranges)", (t) => {
    // Random documents are nearly all refused: these are shaped to be accepted, with odd sizes and bounds.
    const valid = fc
      .record({
        Network: v4Network,
        SubnetLen: fc.option(fc.integer({ min: 0, max: 30 }), { nil: undefined }),
        EnableIPv6: fc.boolean(),
        IPv6Network: v6Network,
        IPv6SubnetLen: fc.option(fc.integer({ min: 0, max: 126 }), { nil: undefined }),
        SubnetMin: fc.option(fc.ipV4(), { nil: undefined }),
        IPv6SubnetMax: fc.option(fc.ipV6(), { nil: undefined }),
      })
      .map((doc) => {
        try {
          return parseNetworkConfig(JSON.stringify(doc));
        } catch {
          return undefined;
        }
      })
      .filter((c): c is NetworkConfig => c !== undefined);
    checkProperty(
      t,
      { runs: 600 },
      fc.tuple(valid, fc.double({ min: 0, max: 0.999, noNaN: true })),
      ([config, r]) => {
        for (const family of [config.ipv4, config.ipv6]) {
          if (!family) continue;
          const first = onlyOwnErrors([], () => chooseFreeSubnet(family, new TakenSubnets([]), () => r));
          assert.ok(first, "an empty range has a free subnet");
          assert.ok(fitsFamily(family, first));
          // With the first choice taken, and one reservation of another size, the next is still a fit.
          const other = { ...first, prefixLen: Math.max(family.network.prefixLen, first.prefixLen - 1) };
          const next = onlyOwnErrors([], () =>
            chooseFreeSubnet(family, new TakenSubnets([first, other]), () => r),
          );
          if (next) {
            assert.ok(fitsFamily(family, next));
            assert.ok(!networkContainsNetwork(other, next) && !networkContainsNetwork(next, first));
          }
        }
      },
    );
  });
});

describe("fuzz: choosing a subnet among what hosts hold", () => {
  it("with any held keys (odd sizes, whole networks), the choice is quick, fits and is free", (t) => {
    const config = fc.constantFrom(
      parseNetworkConfig('{"Network":"10.0.0.0/8","SubnetLen":30}'),
      parseNetworkConfig('{"Network":"10.244.0.0/16"}'),
      parseNetworkConfig('{"EnableIPv4":false,"EnableIPv6":true,"IPv6Network":"fd00::/8"}'),
      parseNetworkConfig(
        '{"EnableIPv6":true,"Network":"10.244.0.0/16","IPv6Network":"fd44::/48","IPv6SubnetLen":120}',
      ),
    );
    const v4Key = fc
      .tuple(fc.integer({ min: 0, max: 2 ** 32 - 1 }), fc.integer({ min: 8, max: 32 }))
      .map(([ip, len]) => formatCIDR(makeNetwork({ family: 4, value: BigInt(ip) }, len)).replace("/", "-"));
    const v6Key = fc
      .tuple(
        fc.constantFrom(0xfd00n << 112n, 0xfd44n << 112n),
        fc.bigInt({ min: 0n, max: (1n << 112n) - 1n }),
        fc.integer({ min: 8, max: 128 }),
      )
      .map(([top, low, len]) =>
        formatCIDR(makeNetwork({ family: 6, value: top | low }, len)).replace("/", "-"),
      );
    const key = fc.oneof(
      v4Key,
      v6Key.map((k) => `0.0.0.0-0&${k}`),
      fc.tuple(v4Key, v6Key).map(([a, b]) => `${a}&${b}`),
      nearLeaseKey,
    );
    checkProperty(t, { runs: 400 }, fc.tuple(config, fc.array(key, { maxLength: 40 })), ([c, keys]) => {
      const held = takenBy(keys.map((k) => parseSubnetKey(k)).filter((p) => p !== undefined));
      for (const [family, taken] of [
        [c.ipv4, held.v4],
        [c.ipv6, held.v6],
      ] as const) {
        if (!family) continue;
        const chosen = onlyOwnErrors([], () => chooseFreeSubnet(family, taken, () => 0.5));
        if (!chosen) continue;
        assert.ok(fitsFamily(family, chosen));
        assert.ok(!taken.isTaken(chosen), `${formatCIDR(chosen)} is taken`);
      }
    });
  });
});

describe("fuzz: each backend's keys", () => {
  it("parseVxlanConfig throws only ConfigError, bounded, for any Backend object (deep, huge)", (t) => {
    const backend = recordOf({
      VNI: fieldValue(fc.integer({ min: -1, max: 0x1000000 })),
      Port: fieldValue(fc.integer({ min: -1, max: 70000 })),
      MTU: fieldValue(fc.integer({ min: -1, max: 70000 })),
      GBP: fieldValue(fc.boolean()),
      Learning: fieldValue(fc.boolean()),
      DirectRouting: fieldValue(fc.boolean()),
    }).map((doc) => parsed(doc) as Record<string, unknown>);
    checkProperty(t, { runs: 1500 }, backend, (doc) => {
      const config = onlyOwnErrors([ConfigError], () => parseVxlanConfig(doc));
      if (config) assert.ok(config.vni >= 0 && config.vni <= 0xffffff && config.port <= 65535);
    });
  });

  it("an unknown or unsupported Backend.Type is one bounded UserError", (t) => {
    const type = fc
      .oneof(fc.constantFrom("ipip", "IPsec", "aws-vpc", "carrier-pigeon"), hostileString)
      .filter((s) => findBackend(s) === undefined);
    checkProperty(t, { runs: 1500 }, type, (name) => {
      const config = { ...parseNetworkConfig('{"Network":"10.244.0.0/16"}'), backendType: name };
      const made = onlyOwnErrors([UserError], () => configureBackend(config));
      assert.equal(made, undefined, "no backend is made for an unknown type");
    });
  });

  it("parseUdpConfig and parseExtensionConfig throw only ConfigError, bounded, for any Backend object", (t) => {
    const command = fc.oneof(
      fc.constantFrom(
        // biome-ignore lint/suspicious/noTemplateCurlyInString: sh's ${NAME}, as an extension command has it
        "/opt/ext/add.sh $SUBNET ${PUBLIC_IP}",
        "ip route add $SUBNET via $PUBLIC_IP",
        "a; b",
        "$(x)",
        "",
        " ",
      ),
      hostileString,
    );
    const backend = recordOf({
      Port: fieldValue(fc.integer({ min: -1, max: 70000 })),
      PreStartupCommand: fieldValue(command),
      PostStartupCommand: fieldValue(command),
      SubnetAddCommand: fieldValue(command),
      SubnetRemoveCommand: fieldValue(command),
    }).map((doc) => parsed(doc) as Record<string, unknown>);
    checkProperty(t, { runs: 300 }, backend, (doc) => {
      const udp = onlyOwnErrors([ConfigError], () => parseUdpConfig(doc));
      if (udp) assert.ok(udp.port >= 1 && udp.port <= 65535);
      const ext = onlyOwnErrors([ConfigError], () => parseExtensionConfig(doc));
      for (const line of Object.values(ext ?? {})) {
        if (!line) continue;
        const run = expandCommandLine(line, (name) =>
          name === "SUBNET" ? "10.244.4.0/24; rm -rf /" : undefined,
        );
        assert.equal(run.args.length, line.words.length - 1, "a value never adds arguments");
      }
    });
  });

  it("parseWireguardConfig throws only ConfigError, bounded, for any Backend object", (t) => {
    const backend = recordOf({
      Mode: fieldValue(fc.constantFrom("separate", "auto", "ipv4", "ipv6", "AUTO", "")),
      PSK: fieldValue(
        fc.uint8Array({ minLength: 32, maxLength: 32 }).map((b) => Buffer.from(b).toString("base64")),
      ),
      ListenPort: fieldValue(fc.integer({ min: -1, max: 70000 })),
      ListenPortV6: fieldValue(fc.integer({ min: -1, max: 70000 })),
      MTU: fieldValue(fc.integer({ min: -1, max: 70000 })),
      PersistentKeepaliveInterval: fieldValue(fc.integer({ min: -1, max: 70000 })),
    }).map((doc) => parsed(doc) as Record<string, unknown>);
    checkProperty(t, { runs: 1000 }, backend, (doc) => {
      onlyOwnErrors([ConfigError], () => parseWireguardConfig(doc));
    });
  });
});
