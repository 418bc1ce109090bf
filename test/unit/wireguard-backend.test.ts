/** The wireguard backend's pure parts: config keys and their errors, keys, the UAPI text, desired state. */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { configureBackend } from "../../src/backend/registry.js";
import { parseWireguardConfig, wireguardMtu } from "../../src/backend/wireguard/wireguard-config.js";
import type { WireguardControl } from "../../src/backend/wireguard/wireguard-control.js";
import {
  autoFamily,
  type WireguardPlan,
  wireguardDesiredState,
} from "../../src/backend/wireguard/wireguard-desired.js";
import { wgDeviceKind } from "../../src/backend/wireguard/wireguard-device-kind.js";
import {
  decodeKey,
  encodeKey,
  loadOrCreateKey,
  publicKeyOf,
} from "../../src/backend/wireguard/wireguard-key.js";
import { wgPeerKind } from "../../src/backend/wireguard/wireguard-peer-kind.js";
import {
  checkErrno,
  encodeRemovePeer,
  encodeSetDevice,
  encodeSetPeer,
  parseGetAnswer,
  type UapiDevice,
  UapiError,
} from "../../src/backend/wireguard/wireguard-uapi.js";
import { ConfigError, parseNetworkConfig } from "../../src/config/network-config.js";
import { parseCIDR } from "../../src/ip/ip-network.js";
import type { Lease, LeaseAttrs } from "../../src/lease/lease.js";
import type { Link, RtNetlink } from "../../src/netlink/index.js";
import { createKernelKinds } from "../../src/reconcile/kinds/kernel-kinds.js";

// The example key pair of wg(8) (wireguard-tools), so publicKeyOf is checked against WireGuard's own.
const PRIVATE = "yAnz5TF+lXXJte14tji3zlMNq+hd2rYUIgJBgB3fBmk=";
const PUBLIC = "HIgo9xNzJMWLKASShiTqIybxZ0U3wGLiUeJ1PKf8ykw=";
const KEY_B = "xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg=";
const KEY_C = "TrMvSoP4jYQlY6RIzBgbssQqY3vxI2Pi+y71lOWWXX0=";

describe("wireguard config", () => {
  const config = (backend: string) => parseNetworkConfig(`{"Network":"10.244.0.0/16","Backend":${backend}}`);

  it("has flannel's defaults", () => {
    const s = parseWireguardConfig({ Type: "wireguard" });
    assert.deepEqual(s, {
      listenPort: 51820,
      listenPortV6: 51821,
      mtu: 0,
      psk: undefined,
      keepaliveSeconds: 0,
      mode: "separate",
    });
    assert.equal(wireguardMtu(s, 1500), 1420);
    assert.equal(wireguardMtu({ ...s, mtu: 9000 }, 1500), 8920);
  });

  it("reads every key, case-insensitively as Go's json does", () => {
    const s = parseWireguardConfig({
      Type: "wireguard",
      listenport: 4000,
      ListenPortV6: 4001,
      PSK: KEY_B,
      PersistentKeepaliveInterval: 25,
      Mode: "auto",
      MTU: 1400,
    });
    assert.equal(s.listenPort, 4000);
    assert.equal(s.listenPortV6, 4001);
    assert.equal(s.psk?.toString("base64"), KEY_B);
    assert.equal(s.keepaliveSeconds, 25);
    assert.equal(s.mode, "auto");
    assert.equal(s.mtu, 1400);
  });

  it("refuses a bad PSK, an unknown Mode and a bad port with one error naming the key", () => {
    const cases: [string, RegExp][] = [
      [
        '{"Type":"wireguard","PSK":"short"}',
        /Backend\.PSK of the wireguard backend is not a WireGuard key \(5 characters\): it must be 32 bytes in base64/,
      ],
      [
        '{"Type":"wireguard","Mode":"Auto"}',
        /Backend\.Mode of the wireguard backend must be one of separate, auto, ipv4, ipv6, not "Auto"$/,
      ],
      [
        '{"Type":"wireguard","ListenPort":0}',
        /Backend\.ListenPort of the wireguard backend must be a whole number from 1 to 65535, not 0$/,
      ],
      [
        '{"Type":"wireguard","PersistentKeepaliveInterval":"25s"}',
        /Backend\.PersistentKeepaliveInterval .* not "25s"$/,
      ],
    ];
    for (const [backend, message] of cases) {
      assert.throws(
        () => configureBackend(config(backend)),
        (err: Error) => err instanceof ConfigError && message.test(err.message),
        backend,
      );
    }
    assert.throws(
      () => configureBackend(config('{"Type":"wireguard","Mode":"ipv6"}')),
      /Backend\.Mode of the wireguard backend is ipv6, but the network has no IPv6Network/,
    );
    // The PSK is a secret: its value never appears in the error.
    assert.throws(
      () => parseWireguardConfig({ PSK: "c2VjcmV0LXNlY3JldC1zZWNyZXQ=" }),
      (err: Error) => !err.message.includes("c2VjcmV0"),
    );
  });
});

describe("wireguard keys", () => {
  it("derives WireGuard's public key and refuses what is not a key", () => {
    assert.equal(encodeKey(publicKeyOf(decodeKey(PRIVATE)!)), PUBLIC);
    assert.equal(decodeKey("not-a-key"), undefined);
    assert.equal(decodeKey(`${PRIVATE.slice(0, 42)}==`), undefined);
    assert.equal(decodeKey(Buffer.alloc(31).toString("base64")), undefined);
  });

  it("matches `wg pubkey` for a generated key, keeps it in the key file (0400) and reuses it", async () => {
    const dir = mkdtempSync(join(tmpdir(), "weft-wgkey-"));
    try {
      const path = join(dir, "sub", "wgkey");
      const first = await loadOrCreateKey(path);
      assert.equal(first.created, true);
      assert.equal(statSync(path).mode & 0o777, 0o400);
      const text = readFileSync(path, "utf8");
      assert.equal(text, encodeKey(first.privateKey), "base64 without a newline, as flannel writes it");
      const wgPub = execFileSync("wg", ["pubkey"], { input: text }).toString().trim();
      assert.equal(encodeKey(first.publicKey), wgPub);
      const again = await loadOrCreateKey(path);
      assert.equal(again.created, false);
      assert.equal(encodeKey(again.publicKey), wgPub);
      const bad = join(dir, "bad");
      writeFileSync(bad, "garbage\n");
      await assert.rejects(loadOrCreateKey(bad), /the WireGuard key file .*bad does not hold a private key/);
      const withNewline = join(dir, "nl");
      writeFileSync(withNewline, `${PRIVATE}\n`);
      assert.equal(encodeKey((await loadOrCreateKey(withNewline)).publicKey), PUBLIC);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("wireguard UAPI text", () => {
  const hex = (b64: string) => Buffer.from(b64, "base64").toString("hex");

  it("encodes set requests as the cross-platform protocol", () => {
    assert.equal(
      encodeSetDevice(hex(PRIVATE), 51820),
      `set=1\nprivate_key=${hex(PRIVATE)}\nlisten_port=51820\n\n`,
    );
    assert.equal(
      encodeSetPeer({
        publicKey: hex(KEY_B),
        presharedKey: undefined,
        endpoint: "172.31.0.2:51820",
        keepaliveSeconds: 25,
        allowedIPs: ["10.244.2.0/24", "fd44::/64"],
      }),
      `set=1\npublic_key=${hex(KEY_B)}\npreshared_key=${"0".repeat(64)}\nendpoint=172.31.0.2:51820\n` +
        "persistent_keepalive_interval=25\nreplace_allowed_ips=true\nallowed_ip=10.244.2.0/24\nallowed_ip=fd44::/64\n\n",
    );
    assert.equal(encodeRemovePeer(hex(KEY_B)), `set=1\npublic_key=${hex(KEY_B)}\nremove=true\n\n`);
    assert.throws(() => encodeSetDevice("ab\nlisten_port=1", 1), /newline/);
  });

  it("parses a get answer (as wireguard-go writes it) and errno", () => {
    const answer =
      `private_key=${hex(PRIVATE)}\nlisten_port=51820\n` +
      `public_key=${hex(KEY_B)}\npreshared_key=${"0".repeat(64)}\nprotocol_version=1\nendpoint=[fd31::2]:51821\n` +
      "last_handshake_time_sec=0\nlast_handshake_time_nsec=0\ntx_bytes=0\nrx_bytes=0\npersistent_keepalive_interval=0\n" +
      `allowed_ip=10.244.2.0/24\nallowed_ip=fd44::/64\npublic_key=${hex(KEY_C)}\npreshared_key=${hex(KEY_B)}\n` +
      "persistent_keepalive_interval=5\nerrno=0\n\n";
    assert.deepEqual(parseGetAnswer(answer), {
      privateKey: hex(PRIVATE),
      listenPort: 51820,
      peers: [
        {
          publicKey: hex(KEY_B),
          presharedKey: "0".repeat(64),
          endpoint: "[fd31::2]:51821",
          keepaliveSeconds: 0,
          allowedIPs: ["10.244.2.0/24", "fd44::/64"],
        },
        {
          publicKey: hex(KEY_C),
          presharedKey: hex(KEY_B),
          endpoint: undefined,
          keepaliveSeconds: 5,
          allowedIPs: [],
        },
      ],
    });
    assert.deepEqual(parseGetAnswer("listen_port=0\nerrno=0\n\n"), {
      privateKey: undefined,
      listenPort: 0,
      peers: [],
    });
    assert.throws(
      () => checkErrno("errno=22\n\n", "set"),
      (err: Error) => err instanceof UapiError && err.errno === 22,
    );
    assert.throws(() => parseGetAnswer("listen_port=1\n\n"), /no errno line/);
  });
});

function lease(key: string, subnet: string | undefined, attrs: Partial<LeaseAttrs>, v6?: string): Lease {
  return {
    key,
    subnet: subnet ? parseCIDR(subnet) : undefined,
    ipv6Subnet: v6 ? parseCIDR(v6) : undefined,
    attrs: {
      publicIP: undefined,
      publicIPv6: undefined,
      backendType: "wireguard",
      backendData: undefined,
      backendV6Data: undefined,
      ...attrs,
    },
    reservation: false,
  };
}

describe("wireguard desired state", () => {
  const plan = (over: Partial<WireguardPlan> = {}): WireguardPlan => ({
    mode: "separate",
    ipv4: { device: "flannel-wg", network: parseCIDR("10.244.0.0/16")!, listenPort: 51820 },
    ipv6: undefined,
    privateKey: PRIVATE,
    publicKey: PUBLIC,
    presharedKey: undefined,
    keepaliveSeconds: 0,
    publicIP: "172.31.0.1",
    publicIPv6: undefined,
    ...over,
  });
  const own = lease("10.244.1.0-24", "10.244.1.0/24", {
    publicIP: "172.31.0.1",
    backendData: { PublicKey: PUBLIC, Port: 51820 },
  });

  it("routes the Network through flannel-wg and makes one peer per lease, as flannel", () => {
    const peers = [
      own,
      lease("10.244.2.0-24", "10.244.2.0/24", {
        publicIP: "172.31.0.2",
        backendData: { PublicKey: KEY_B, Port: 51820 },
      }),
      // Port 0 (old flanneld): our own port.
      lease("10.244.3.0-24", "10.244.3.0/24", { publicIP: "172.31.0.3", backendData: { PublicKey: KEY_C } }),
    ];
    const { state, problems } = wireguardDesiredState(
      plan({ presharedKey: KEY_C, keepaliveSeconds: 25 }),
      own,
      peers,
    );
    assert.deepEqual(problems, []);
    assert.deepEqual(state.route, [
      { dst: "10.244.0.0/16", gateway: undefined, dev: "flannel-wg", onlink: false },
    ]);
    assert.deepEqual(state["wg-device"], [{ device: "flannel-wg", privateKey: PRIVATE, listenPort: 51820 }]);
    assert.deepEqual(state["wg-peer"], [
      {
        device: "flannel-wg",
        publicKey: KEY_B,
        endpoint: "172.31.0.2:51820",
        allowedIPs: ["10.244.2.0/24"],
        presharedKey: KEY_C,
        keepaliveSeconds: 25,
      },
      {
        device: "flannel-wg",
        publicKey: KEY_C,
        endpoint: "172.31.0.3:51820",
        allowedIPs: ["10.244.3.0/24"],
        presharedKey: KEY_C,
        keepaliveSeconds: 25,
      },
    ]);
  });

  it("refuses a malformed public key, our own key, a shared key and another backend, each alone", () => {
    const good = lease("10.244.2.0-24", "10.244.2.0/24", {
      publicIP: "172.31.0.2",
      backendData: { PublicKey: KEY_B, Port: 51820 },
    });
    const peers = [
      good,
      lease("10.244.3.0-24", "10.244.3.0/24", {
        publicIP: "172.31.0.3",
        backendData: { PublicKey: "not-a-key", Port: 51820 },
      }),
      lease("10.244.4.0-24", "10.244.4.0/24", { publicIP: "172.31.0.4", backendData: { PublicKey: PUBLIC } }),
      lease("10.244.5.0-24", "10.244.5.0/24", { publicIP: "172.31.0.5", backendData: { PublicKey: KEY_B } }),
      lease("10.244.6.0-24", "10.244.6.0/24", {
        publicIP: "172.31.0.6",
        backendType: "vxlan",
        backendData: {},
      }),
      lease("10.244.7.0-24", "10.244.7.0/24", {
        publicIP: "172.31.0.7",
        backendData: { PublicKey: KEY_C, Port: 70000 },
      }),
      lease("10.244.8.0-24", "10.244.8.0/24", { backendData: { PublicKey: KEY_C } }),
    ];
    const { state, problems } = wireguardDesiredState(plan(), own, peers);
    assert.deepEqual(
      (state["wg-peer"] as { publicKey: string }[]).map((p) => p.publicKey),
      [KEY_B],
    );
    assert.deepEqual(problems, [
      {
        key: "10.244.3.0-24",
        reason: 'its BackendData.PublicKey "not-a-key" is not a WireGuard public key (32 bytes in base64)',
      },
      { key: "10.244.4.0-24", reason: "its public key is this host's own" },
      { key: "10.244.5.0-24", reason: "its public key is already the peer of lease 10.244.2.0-24" },
      {
        key: "10.244.6.0-24",
        reason:
          "it runs the vxlan backend; this network's hosts use wireguard, so its pods are unreachable from here",
      },
      { key: "10.244.7.0-24", reason: "its BackendData.Port 70000 is not a UDP port" },
      { key: "10.244.8.0-24", reason: "it has no PublicIP to reach it at" },
    ]);
  });

  it("dual-stack: Mode separate uses flannel-wg-v6 on ListenPortV6; Mode auto one device with both subnets", () => {
    const v6 = { device: "flannel-wg-v6", network: parseCIDR("fd44::/56")!, listenPort: 51821 };
    const peer = lease(
      "10.244.2.0-24&fd44:0:0:2::-64",
      "10.244.2.0/24",
      {
        publicIP: "172.31.0.2",
        publicIPv6: "fd31::2",
        backendData: { PublicKey: KEY_B, Port: 51820 },
        backendV6Data: { PublicKey: KEY_B, Port: 51821 },
      },
      "fd44:0:0:2::/64",
    );
    const separate = wireguardDesiredState(plan({ ipv6: v6 }), own, [peer]);
    assert.deepEqual(separate.problems, []);
    assert.deepEqual(
      (separate.state.route as { dst: string; dev: string }[]).map((r) => `${r.dst} ${r.dev}`),
      ["10.244.0.0/16 flannel-wg", "fd44::/56 flannel-wg-v6"],
    );
    assert.deepEqual(
      (separate.state["wg-peer"] as { device: string; endpoint: string; allowedIPs: string[] }[]).map(
        (p) => `${p.device} ${p.endpoint} ${p.allowedIPs}`,
      ),
      ["flannel-wg 172.31.0.2:51820 10.244.2.0/24", "flannel-wg-v6 [fd31::2]:51821 fd44:0:0:2::/64"],
    );
    const single = { ...v6, device: "flannel-wg", listenPort: 51820 };
    for (const [mode, endpoint] of [
      ["auto", "172.31.0.2:51820"],
      ["ipv4", "172.31.0.2:51820"],
      ["ipv6", "[fd31::2]:51820"],
    ] as const) {
      const { state, problems } = wireguardDesiredState(plan({ mode, ipv6: single }), own, [peer]);
      assert.deepEqual(problems, []);
      assert.deepEqual(state["wg-device"], [
        { device: "flannel-wg", privateKey: PRIVATE, listenPort: 51820 },
      ]);
      assert.deepEqual(
        (state["wg-peer"] as { device: string; endpoint: string; allowedIPs: string[] }[]).map(
          (p) => `${p.device} ${p.endpoint} ${p.allowedIPs}`,
        ),
        [`flannel-wg ${endpoint} 10.244.2.0/24,fd44:0:0:2::/64`],
        mode,
      );
    }
  });

  it("Mode auto picks IPv6 only for public IPv6 on both ends with a private peer IPv4 (flannel's selectMode)", () => {
    const peer = (v4: string, v6: string | undefined) =>
      lease("k", "10.244.2.0/24", { publicIP: v4, publicIPv6: v6 });
    assert.equal(autoFamily(peer("10.0.0.2", undefined), "10.0.0.1", "2001:db8::1"), 4);
    assert.equal(autoFamily(peer("10.0.0.2", "2001:db8::2"), "10.0.0.1", "2001:db8::1"), 6);
    assert.equal(autoFamily(peer("192.0.2.2", "2001:db8::2"), "10.0.0.1", "2001:db8::1"), 4);
    assert.equal(autoFamily(peer("10.0.0.2", "fd00::2"), "10.0.0.1", "2001:db8::1"), 4);
    assert.equal(autoFamily(peer("10.0.0.2", "2001:db8::2"), "10.0.0.1", "fd00::1"), 4);
  });
});

describe("wireguard kinds over a device", () => {
  const hex = (b64: string) => Buffer.from(b64, "base64").toString("hex");

  /** An in-memory device with the WireguardControl interface, recording what was sent. */
  function fakeControl() {
    const sent: string[] = [];
    const device: UapiDevice = {
      privateKey: hex(PRIVATE),
      listenPort: 51820,
      peers: [
        {
          publicKey: hex(KEY_B),
          presharedKey: "0".repeat(64),
          endpoint: "172.31.0.2:51820",
          keepaliveSeconds: 0,
          allowedIPs: ["10.244.2.0/24"],
        },
      ],
    };
    const control: WireguardControl = {
      datapath: "test",
      names: ["flannel-wg"],
      async ensureAll() {},
      async get(name) {
        return name === "flannel-wg" ? device : undefined;
      },
      async setDevice(name, key, port) {
        sent.push(`device ${name} ${key} ${port}`);
      },
      async setPeer(name, peer) {
        sent.push(`peer ${name} ${peer.publicKey} ${peer.presharedKey} ${peer.endpoint} ${peer.allowedIPs}`);
      },
      async removePeer(name, key) {
        sent.push(`remove ${name} ${key}`);
      },
      close() {},
    };
    return { control, sent };
  }

  it("puts a new peer with a persistent keepalive after a random delay within the spread, others at once", async () => {
    const { control, sent } = fakeControl();
    const peers = wgPeerKind(() => control, 400);
    const peer = {
      device: "flannel-wg",
      publicKey: KEY_C,
      presharedKey: undefined,
      endpoint: "172.31.0.3:51820",
      keepaliveSeconds: 5,
      allowedIPs: ["10.244.3.0/24"],
    };
    const random = Math.random;
    Math.random = () => 0.5;
    try {
      let started = performance.now();
      await peers.put(peer);
      const delayed = performance.now() - started;
      assert.ok(delayed >= 190 && delayed < 390, `half the spread: ${delayed} ms`);
      started = performance.now();
      await peers.put({ ...peer, keepaliveSeconds: 0 });
      assert.ok(performance.now() - started < 150, "no keepalive, no first handshake of its own: no delay");
    } finally {
      Math.random = random;
    }
    assert.equal(sent.length, 2);
  });

  it("reads peers and settings back in base64 and writes them in hex", async () => {
    const { control, sent } = fakeControl();
    const peers = wgPeerKind(() => control);
    const devices = wgDeviceKind(() => control);
    assert.deepEqual(await peers.readActual({} as never), [
      {
        device: "flannel-wg",
        publicKey: KEY_B,
        presharedKey: undefined,
        endpoint: "172.31.0.2:51820",
        keepaliveSeconds: 0,
        allowedIPs: ["10.244.2.0/24"],
      },
    ]);
    assert.deepEqual(await devices.readActual({} as never), [
      { device: "flannel-wg", privateKey: PRIVATE, listenPort: 51820 },
    ]);
    await peers.put({
      device: "flannel-wg",
      publicKey: KEY_C,
      presharedKey: KEY_B,
      endpoint: "172.31.0.3:51820",
      keepaliveSeconds: 0,
      allowedIPs: ["10.244.3.0/24"],
    });
    await peers.remove({ device: "flannel-wg", publicKey: KEY_B } as never);
    await peers.remove({ device: "gone", publicKey: KEY_B } as never);
    await devices.put({ device: "flannel-wg", privateKey: PRIVATE, listenPort: 4000 });
    assert.deepEqual(sent, [
      `peer flannel-wg ${hex(KEY_C)} ${hex(KEY_B)} 172.31.0.3:51820 10.244.3.0/24`,
      `remove flannel-wg ${hex(KEY_B)}`,
      `device flannel-wg ${hex(PRIVATE)} 4000`,
    ]);
    // Before setUp there is no device: nothing to read, and a put says why it fails.
    assert.deepEqual(await wgPeerKind(() => undefined).readActual({} as never), []);
    await assert.rejects(
      wgDeviceKind(() => undefined).put({ device: "flannel-wg", privateKey: PRIVATE, listenPort: 1 }),
      /not set up yet/,
    );
  });
});

describe("wireguard backend object", () => {
  const ext = {
    name: "eth0",
    index: 2,
    mtu: 1500,
    ipv4: "172.31.0.1",
    ipv6: "fd31::1",
    publicIP: "172.31.0.1",
    publicIPv6: "fd31::1",
    connected: [],
  };
  const make = (json: string) => {
    const config = parseNetworkConfig(json);
    const netlink = {} as RtNetlink;
    const { create } = configureBackend(config);
    return create({
      config,
      extIface: ext,
      netlink,
      kernel: createKernelKinds(netlink),
      log() {},
      warn() {},
    });
  };
  const own = lease("10.244.1.0-24&fd44:0:0:1::-64", "10.244.1.0/24", {}, "fd44:0:0:1::/64");

  it("owns flannel-wg and flannel-wg-v6 in Mode separate, one device otherwise, and tells doctor what they look like", () => {
    const dual = '"Network":"10.244.0.0/16","EnableIPv6":true,"IPv6Network":"fd44::/56"';
    const separate = make(`{${dual},"Backend":{"Type":"wireguard"}}`);
    assert.deepEqual(separate.ownedDevices, ["flannel-wg", "flannel-wg-v6"]);
    assert.deepEqual(
      separate.kinds.map((k) => k.name),
      ["route", "wg-device", "wg-peer"],
    );
    const devices = separate.expectedDevices!(own);
    assert.deepEqual(
      devices.map((d) => `${d.name} ${d.mtu} ${d.overhead} ${d.addresses}`),
      ["flannel-wg 1420 80 10.244.1.0/32", "flannel-wg-v6 1420 80 fd44:0:0:1::/128"],
    );
    const link = { name: "flannel-wg", kind: "vxlan", mtu: 1450, up: false } as Link;
    assert.deepEqual(devices[0]!.differences(link), [
      "is a vxlan device, not wireguard-go's TUN or a kernel wireguard device",
      "has MTU 1450, not 1420",
      "is down",
    ]);
    assert.deepEqual(devices[0]!.differences({ ...link, kind: "tun", mtu: 1420, up: true }), []);
    const auto = make(`{${dual},"Backend":{"Type":"wireguard","Mode":"auto","MTU":1400}}`);
    assert.deepEqual(auto.ownedDevices, ["flannel-wg"]);
    assert.deepEqual(
      auto.expectedDevices!(own).map((d) => `${d.name} ${d.mtu} ${d.addresses}`),
      ["flannel-wg 1320 10.244.1.0/32,fd44:0:0:1::/128"],
    );
  });
});
