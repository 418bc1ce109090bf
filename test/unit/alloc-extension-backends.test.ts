import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { AllocBackend } from "../../src/backend/alloc/alloc-backend.js";
import type { BackendContext, ExternalInterface } from "../../src/backend/backend.js";
import type { CommandInput } from "../../src/backend/extension/command-inputs.js";
import type { CommandLine } from "../../src/backend/extension/command-line.js";
import type { CommandOutcome } from "../../src/backend/extension/command-process.js";
import { ExtensionBackend } from "../../src/backend/extension/extension-backend.js";
import { parseExtensionConfig } from "../../src/backend/extension/extension-config.js";
import { diffPeers } from "../../src/backend/peer-change.js";
import { configureBackend } from "../../src/backend/registry.js";
import { ConfigError, type NetworkConfig, parseNetworkConfig } from "../../src/config/network-config.js";
import { parseCIDR } from "../../src/ip/ip-network.js";
import type { Lease } from "../../src/lease/lease.js";
import { encodeLeaseAttrs } from "../../src/lease/lease-json.js";

const ext: ExternalInterface = {
  name: "eth0",
  index: 2,
  mtu: 1450,
  ipv4: "172.31.0.1",
  ipv6: "fd31::1",
  publicIP: "172.31.0.9",
  publicIPv6: "fd31::9",
  connected: [parseCIDR("172.31.0.0/16")!],
};

function context(config: NetworkConfig, lines: string[] = []): BackendContext {
  return {
    config,
    extIface: ext,
    // Neither backend touches the kernel: nothing may be used from these.
    netlink: undefined as never,
    kernel: undefined as never,
    log: (m) => lines.push(`I ${m}`),
    warn: (m) => lines.push(`W ${m}`),
  };
}

function lease(key: string, publicIP: string, backendType: string | undefined, backendData?: unknown): Lease {
  return {
    key,
    subnet: parseCIDR(key.replace(/-(\d+)$/, "/$1")),
    ipv6Subnet: undefined,
    attrs: { publicIP, publicIPv6: undefined, backendType, backendData, backendV6Data: undefined },
    reservation: false,
  };
}

const config = (backend: object) =>
  parseNetworkConfig(JSON.stringify({ Network: "10.244.0.0/16", Backend: backend }));

describe("alloc backend", () => {
  it("is registered and publishes flannel's alloc lease: PublicIP only, no BackendType, no data", async () => {
    const cfg = config({ Type: "alloc" });
    const backend = configureBackend(cfg).create(context(cfg));
    assert.ok(backend instanceof AllocBackend);
    const { attrs, mtu } = await backend.setUp();
    assert.equal(encodeLeaseAttrs(attrs), '{"PublicIP":"172.31.0.9","PublicIPv6":null}');
    assert.equal(mtu, 1450, "pods get the interface MTU, as flannel's SimpleNetwork");
  });

  it("owns no kind of state, no device, and wants nothing for peers", () => {
    const cfg = config({ Type: "alloc" });
    const backend = new AllocBackend(context(cfg));
    assert.deepEqual([backend.kinds, backend.ownedDevices, backend.routeDevices], [[], [], []]);
    const own = lease("10.244.1.0-24", "172.31.0.9", undefined);
    const peer = lease("10.244.2.0-24", "172.31.0.2", undefined);
    assert.deepEqual(backend.desiredState(own, [own, peer]), { state: {}, problems: [] });
  });

  it("publishes the IPv6 address too when IPv6 is enabled", async () => {
    const cfg = parseNetworkConfig(
      '{"EnableIPv6":true,"Network":"10.244.0.0/16","IPv6Network":"fd44::/56","Backend":{"Type":"alloc"}}',
    );
    const { attrs } = await new AllocBackend(context(cfg)).setUp();
    assert.equal(encodeLeaseAttrs(attrs), '{"PublicIP":"172.31.0.9","PublicIPv6":"fd31::9"}');
  });
});

interface Call {
  readonly text: string;
  readonly input: CommandInput;
}

function fakeRun(outcomes: (call: Call) => CommandOutcome) {
  const calls: Call[] = [];
  const run = async (command: CommandLine, input: CommandInput) => {
    const call = { text: command.text, input };
    calls.push(call);
    return outcomes(call);
  };
  return { calls, run };
}

const ok = (output = ""): CommandOutcome => ({ ok: true, failure: undefined, output, truncated: false });
const failed = (output: string): CommandOutcome => ({
  ok: false,
  failure: "exit status 1",
  output,
  truncated: false,
});
const fast = { minMs: 5, maxMs: 10, jitter: 0 };

describe("extension backend", () => {
  const backendConfig = {
    Type: "extension",
    PreStartupCommand: "/opt/ext/pre",
    PostStartupCommand: "/opt/ext/post $SUBNET",
    SubnetAddCommand: "/opt/ext/add",
    SubnetRemoveCommand: "/opt/ext/remove",
  };

  it("is registered; a command with shell syntax makes configuring fail with a config error", () => {
    assert.equal(configureBackend(config(backendConfig)).registration.type, "extension");
    assert.throws(
      () => configureBackend(config({ ...backendConfig, SubnetAddCommand: "ip route add $SUBNET | tee x" })),
      (err: unknown) => err instanceof ConfigError && /Backend\.SubnetAddCommand.*a pipe/.test(err.message),
    );
  });

  it("publishes PreStartupCommand's output as BackendData, retrying it until it succeeds", async () => {
    let attempt = 0;
    const runner = fakeRun(() => (++attempt < 3 ? failed("device busy") : ok("ca:02:e3:ba:24:33")));
    const lines: string[] = [];
    const cfg = config(backendConfig);
    const backend = new ExtensionBackend(context(cfg, lines), parseExtensionConfig(cfg.backend), {
      run: runner.run,
      startupBackoff: fast,
    });
    const { attrs, mtu } = await backend.setUp();
    assert.equal(
      encodeLeaseAttrs(attrs),
      '{"PublicIP":"172.31.0.9","PublicIPv6":null,"BackendType":"extension","BackendData":"ca:02:e3:ba:24:33"}',
    );
    assert.equal(mtu, 1450);
    assert.deepEqual(runner.calls[0]!.input, { variables: {}, stdin: "\n" });
    const warnings = lines.filter((l) => l.startsWith("W "));
    assert.equal(warnings.length, 1, "the same failure is logged once");
    assert.match(warnings[0]!, /PreStartupCommand failed: exit status 1; output: device busy; retrying/);
    await backend.close();
  });

  it("without a PreStartupCommand the lease has no BackendData, as flannel's", async () => {
    const cfg = config({ Type: "extension", SubnetAddCommand: "/opt/ext/add" });
    const backend = new ExtensionBackend(context(cfg), parseExtensionConfig(cfg.backend), {
      run: fakeRun(() => ok()).run,
    });
    const { attrs } = await backend.setUp();
    assert.equal(
      encodeLeaseAttrs(attrs),
      '{"PublicIP":"172.31.0.9","PublicIPv6":null,"BackendType":"extension"}',
    );
    await backend.close();
  });

  it("runs PostStartupCommand with this host's variables before any peer's add, then adds extension peers only", async () => {
    let postDone = false;
    let postAttempts = 0;
    const runner = fakeRun((call) => {
      if (call.text.startsWith("/opt/ext/post")) {
        if (++postAttempts < 2) return failed("not yet");
        postDone = true;
      }
      if (call.text === "/opt/ext/add") assert.ok(postDone, "an add ran before PostStartupCommand succeeded");
      return ok();
    });
    const cfg = config(backendConfig);
    const backend = new ExtensionBackend(context(cfg), parseExtensionConfig(cfg.backend), {
      run: runner.run,
      startupBackoff: fast,
      peerBackoff: fast,
    });
    const { attrs } = await backend.setUp();
    const own = { ...lease("10.244.1.0-24", "172.31.0.9", "extension", "own-data"), attrs };
    const peer = lease("10.244.2.0-24", "172.31.0.2", "extension", "peer-data");
    const other = lease("10.244.3.0-24", "172.31.0.3", "vxlan", { VNI: 1 });
    const leases = new Map([own, peer, other].map((l) => [l.key, l]));
    // The table arrives while PostStartupCommand is still failing: no add may run yet.
    const starting = backend.start(own);
    backend.peersChanged(diffPeers(own, new Map(), leases.values()));
    await starting;
    await backend.settled();
    assert.deepEqual(
      runner.calls.map((c) => c.text),
      ["/opt/ext/pre", "/opt/ext/post $SUBNET", "/opt/ext/post $SUBNET", "/opt/ext/add"],
    );
    assert.deepEqual(runner.calls[1]!.input.variables, {
      NETWORK: "10.244.0.0/16",
      SUBNET: "10.244.1.0/24",
      IPV6SUBNET: "",
      PUBLIC_IP: "172.31.0.9",
      PUBLIC_IPV6: "",
    });
    assert.deepEqual(runner.calls[3]!.input, {
      variables: { SUBNET: "10.244.2.0/24", IPV6SUBNET: "", PUBLIC_IP: "172.31.0.2", PUBLIC_IPV6: "" },
      stdin: "peer-data\n",
    });
    assert.deepEqual(backend.desiredState(own, leases.values()).problems, [
      {
        key: "10.244.3.0-24",
        reason: 'its BackendType is "vxlan", not "extension"; its commands are not run',
      },
    ]);
    // The peer goes: its remove gets its variables and data.
    backend.peersChanged(diffPeers(own, new Map([[peer.key, peer]]), [own]));
    await backend.settled();
    assert.deepEqual(runner.calls[4], { text: "/opt/ext/remove", input: runner.calls[3]!.input });
    await backend.close();
  });
});
