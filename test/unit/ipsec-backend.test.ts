/**
 * The ipsec backend's pure parts: config checks (PSK length, ESPProposal words), MTU, the desired
 * connections per peer with flannel's names, and the VICI messages for them.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  DEFAULT_ESP_PROPOSAL,
  ipsecMtu,
  parseIpsecConfig,
  unknownProposalWord,
} from "../../src/backend/ipsec/ipsec-config.js";
import { ipsecConnShape } from "../../src/backend/ipsec/ipsec-conn-kind.js";
import {
  IPSEC_CONN_KIND,
  type IpsecConnEntry,
  ipsecDesiredState,
} from "../../src/backend/ipsec/ipsec-desired.js";
import {
  initiateMessage,
  loadConnMessage,
  loadSharedMessage,
  readListSaEvent,
  unloadConnMessage,
} from "../../src/backend/ipsec/ipsec-vici.js";
import { configureBackend } from "../../src/backend/registry.js";
import { ConfigError, parseNetworkConfig } from "../../src/config/network-config.js";
import { parseCIDR } from "../../src/ip/ip-network.js";
import type { Lease } from "../../src/lease/lease.js";
import { decodeViciMessage, encodeViciMessage } from "../../src/vici/vici-message.js";

const PSK = "k".repeat(96);

function lease(
  subnet: string,
  publicIP: string | undefined,
  backendType: string | undefined = "ipsec",
): Lease {
  return {
    key: subnet.replace("/", "-"),
    subnet: parseCIDR(subnet),
    ipv6Subnet: undefined,
    attrs: { publicIP, publicIPv6: undefined, backendType, backendData: undefined, backendV6Data: undefined },
    reservation: false,
  };
}

function configError(backend: Record<string, unknown>): string {
  const text = JSON.stringify({ Network: "10.244.0.0/16", Backend: { Type: "ipsec", ...backend } });
  try {
    configureBackend(parseNetworkConfig(text));
  } catch (error) {
    assert.ok(error instanceof ConfigError, `a ConfigError, not ${error}`);
    return error.message;
  }
  assert.fail("no error");
}

describe("ipsec config", () => {
  it("takes flannel's defaults and a 96-character PSK", () => {
    assert.deepEqual(parseIpsecConfig({ PSK }), {
      psk: PSK,
      udpEncap: false,
      espProposal: DEFAULT_ESP_PROPOSAL,
    });
    assert.deepEqual(parseIpsecConfig({ psk: PSK, udpencap: true, ESPProposal: "aes256gcm16-modp2048" }), {
      psk: PSK,
      udpEncap: true,
      espProposal: "aes256gcm16-modp2048",
    });
  });
  it("refuses a missing or short PSK, naming the key and the rule", () => {
    assert.match(
      configError({}),
      /Backend\.PSK of the ipsec backend must be at least 96 characters.*not missing/,
    );
    assert.match(
      configError({ PSK: "x".repeat(95) }),
      /Backend\.PSK .* at least 96 characters .*not 95 characters/,
    );
    assert.match(configError({ PSK: 96 }), /Backend\.PSK of the ipsec backend must be a string/);
  });
  it("refuses an unknown algorithm in ESPProposal, naming it", () => {
    assert.match(
      configError({ PSK, ESPProposal: "aes128gcm17-sha256" }),
      /Backend\.ESPProposal .*"aes128gcm17"/,
    );
    assert.match(configError({ PSK, ESPProposal: "aes128--sha256" }), /Backend\.ESPProposal .*"" in/);
    assert.match(
      configError({ PSK, UDPEncap: "yes" }),
      /Backend\.UDPEncap of the ipsec backend must be true or false/,
    );
  });
  it("knows strongSwan's usual ESP words", () => {
    for (const p of [
      DEFAULT_ESP_PROPOSAL,
      "aes256-sha512-modp4096",
      "chacha20poly1305-x25519",
      "aes192ccm12-esn",
      "3des-md5-modp1024",
      "camellia256ctr-sha384-ecp384bp",
    ])
      assert.equal(unknownProposalWord(p), undefined, p);
  });
  it("refuses an IPv6-only network, as flannel's ipsec backend is IPv4 only", () => {
    const text = JSON.stringify({
      EnableIPv4: false,
      EnableIPv6: true,
      IPv6Network: "fd44::/56",
      Backend: { Type: "ipsec", PSK },
    });
    assert.throws(() => configureBackend(parseNetworkConfig(text)), /ipsec backend carries IPv4 only/);
  });
  it("computes flannel's MTU: 77 bytes of ESP, 8 more with UDP encapsulation", () => {
    assert.equal(ipsecMtu(1500, false), 1423);
    assert.equal(ipsecMtu(1500, true), 1415);
  });
});

describe("ipsec desired state", () => {
  const own = lease("10.244.1.0/24", "172.31.0.1");
  const settings = { udpEncap: false, espProposal: DEFAULT_ESP_PROPOSAL };
  it("is one connection per peer with flannel's names", () => {
    const { state, problems } = ipsecDesiredState(
      own,
      [own, lease("10.244.2.0/24", "172.31.0.2"), lease("10.244.3.0/24", "172.31.0.0")],
      settings,
    );
    assert.deepEqual(problems, []);
    const conns = state[IPSEC_CONN_KIND] as IpsecConnEntry[];
    assert.deepEqual(
      conns.map((c) => [c.name, c.child]),
      [
        ["172.31.0.1-10.244.1.0/24-10.244.2.0/24-172.31.0.2", "10.244.1.0/24-10.244.2.0/24"],
        ["172.31.0.1-10.244.1.0/24-10.244.3.0/24-172.31.0.0", "10.244.1.0/24-10.244.3.0/24"],
      ],
    );
  });
  it("keys a connection by its name; a changed proposal or encapsulation is a replace", () => {
    const [conn] = ipsecDesiredState(own, [lease("10.244.2.0/24", "172.31.0.2")], settings).state[
      IPSEC_CONN_KIND
    ] as IpsecConnEntry[];
    assert.equal(ipsecConnShape.key(conn!), conn!.name);
    assert.ok(ipsecConnShape.same(conn!, { ...conn! }));
    assert.ok(!ipsecConnShape.same(conn!, { ...conn!, udpEncap: true }));
    assert.ok(!ipsecConnShape.same(conn!, { ...conn!, espProposal: "aes256gcm16-modp2048" }));
    assert.equal(ipsecConnShape.describe(conn!), `ipsec connection ${conn!.name}`);
  });
  it("leaves out, with a reason, another backend's lease and one without PublicIP", () => {
    const { state, problems } = ipsecDesiredState(
      own,
      [lease("10.244.2.0/24", "172.31.0.2", "vxlan"), lease("10.244.3.0/24", undefined)],
      settings,
    );
    assert.deepEqual(state[IPSEC_CONN_KIND], []);
    assert.deepEqual(
      problems.map((p) => p.key),
      ["10.244.2.0-24", "10.244.3.0-24"],
    );
  });
});

describe("ipsec VICI messages", () => {
  const [conn] = ipsecDesiredState(
    lease("10.244.1.0/24", "172.31.0.1"),
    [lease("10.244.2.0/24", "172.31.0.2")],
    {
      udpEncap: true,
      espProposal: DEFAULT_ESP_PROPOSAL,
    },
  ).state[IPSEC_CONN_KIND] as IpsecConnEntry[];
  it("load-conn carries flannel's IKE and CHILD SA settings and survives the codec", () => {
    const message = loadConnMessage(conn!);
    assert.deepEqual(decodeViciMessage(encodeViciMessage(message)), message);
    const ike = message[conn!.name] as Record<string, unknown>;
    assert.deepEqual(ike.local_addrs, ["172.31.0.1"]);
    assert.deepEqual(ike.remote_addrs, ["172.31.0.2"]);
    assert.deepEqual(ike.proposals, ["aes256-sha256-modp4096"]);
    assert.equal(ike.version, "2");
    assert.equal(ike.encap, "yes");
    const child = (ike.children as Record<string, Record<string, unknown>>)[conn!.child]!;
    assert.deepEqual(child.local_ts, ["10.244.1.0/24"]);
    assert.deepEqual(child.remote_ts, ["10.244.2.0/24"]);
    assert.deepEqual(child.esp_proposals, [DEFAULT_ESP_PROPOSAL]);
    assert.equal(child.mode, "tunnel");
  });
  it("load-shared, initiate and unload-conn name the right things", () => {
    assert.deepEqual(loadSharedMessage(PSK, "172.31.0.2"), {
      id: "weft-psk-172.31.0.2",
      type: "IKE",
      data: PSK,
      owners: ["172.31.0.2"],
    });
    assert.deepEqual(initiateMessage(conn!), { child: conn!.child, ike: conn!.name, timeout: "-1" });
    assert.deepEqual(unloadConnMessage(conn!), { name: conn!.name });
  });
  it("reads IKE and CHILD SA states from a list-sa event", () => {
    const event = {
      [conn!.name]: {
        state: "ESTABLISHED",
        "child-sas": { [`${conn!.child}-1`]: { name: conn!.child, state: "INSTALLED", encap: "yes" } },
      },
    };
    assert.deepEqual(readListSaEvent(event), [
      {
        name: conn!.name,
        state: "ESTABLISHED",
        children: [{ name: conn!.child, state: "INSTALLED", encap: true }],
      },
    ]);
  });
});
