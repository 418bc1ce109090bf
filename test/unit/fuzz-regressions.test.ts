// The defects the fuzz suite found (outside the lease and config parsers, which other branches fix), each
// pinned by one example.
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { parseCommandLine } from "../../src/backend/extension/command-line.js";
import { configureBackend } from "../../src/backend/registry.js";
import { udpForwardingTable } from "../../src/backend/udp/udp-desired.js";
import { parseVxlanConfig } from "../../src/backend/vxlan/vxlan-config.js";
import { parseWireguardConfig } from "../../src/backend/wireguard/wireguard-config.js";
import { ConfigError, parseNetworkConfig } from "../../src/config/network-config.js";
import { formatCIDR, parseCIDR } from "../../src/ip/ip-network.js";
import { type ExecPluginConfig, parseExecCredential } from "../../src/kube/exec-credential.js";
import type { KubeClient, WatchEvent } from "../../src/kube/kube-client.js";
import { loadKubeconfig } from "../../src/kube/kubeconfig.js";
import { parseSubnetKey } from "../../src/lease/lease-key.js";
import { readPreviousSubnets } from "../../src/lease/subnet-env.js";
import { annotationNames } from "../../src/subnet/kube/kube-annotations.js";
import { checkOwnSubnets, nodeSubnets, nodeToLease } from "../../src/subnet/kube/node-lease.js";
import { NodeWatch } from "../../src/subnet/kube/node-watch.js";
import { chooseFreeSubnet, takenBy } from "../../src/subnet/subnet-choice.js";
import { UserError } from "../../src/user-error.js";

const deep = JSON.parse("[".repeat(5000) + "]".repeat(5000)) as unknown;

describe("errors about untrusted values stay short and on one line", () => {
  it("a backend key of the wrong type: deep nesting is described, not stringified", () => {
    assert.throws(
      () => parseVxlanConfig({ VNI: deep }),
      (err: unknown) =>
        err instanceof ConfigError &&
        err.message ===
          "invalid network config: Backend.VNI of the vxlan backend must be a whole number from 0 to 16777215, not an array of 1",
    );
    assert.throws(
      () => parseVxlanConfig({ GBP: "x\n".repeat(100_000) }),
      (err: unknown) => err instanceof ConfigError && err.message.length < 200 && !err.message.includes("\n"),
    );
  });

  it("an unknown Backend.Type is quoted bounded, with control characters escaped", () => {
    const config = parseNetworkConfig('{"Network":"10.244.0.0/16"}');
    assert.throws(
      () => configureBackend({ ...config, backendType: `vx\nlan${"x".repeat(1_000_000)}` }),
      (err: unknown) =>
        err instanceof ConfigError &&
        err.message.startsWith('invalid network config: unknown backend type "vx\\nlan') &&
        err.message.includes("… (1000006 characters)") &&
        err.message.length < 300,
    );
    assert.throws(
      () => configureBackend({ ...config, backendType: "carrier-pigeon" }),
      /unknown backend type "carrier-pigeon" in Backend\.Type/,
    );
  });

  it("a node's name, pod CIDRs and public-ip annotation are bounded and escaped in the reasons", () => {
    const config = parseNetworkConfig('{"Network":"10.244.0.0/16","Backend":{"Type":"vxlan"}}');
    const names = annotationNames("flannel.alpha.coreos.com");
    const node = (name: string, podCIDRs: string[], annotations: Record<string, string> = {}) => ({
      name,
      resourceVersion: "1",
      podCIDRs,
      annotations,
    });
    const forged = node("n1\n2026-12-01 forged line", []);
    assert.equal(
      checkOwnSubnets(forged, { subnet: undefined, ipv6Subnet: undefined }, config),
      "node n1\\n2026-12-01 forged line has no IPv4 pod CIDR (spec.podCIDRs: []) but the config enables IPv4",
    );
    const many = nodeSubnets(
      node(
        "n",
        Array.from({ length: 10_000 }, (_, i) => `10.244.${i % 256}.0/24`),
      ),
    );
    assert.ok("error" in many);
    assert.equal(
      many.error,
      'node n has more than two pod CIDRs ["10.244.0.0/24", "10.244.1.0/24", "10.244.2.0/24", … 10000 in all]',
    );
    const peer = node("p", ["10.244.4.0/24"], {
      [names.kubeSubnetManager]: "true",
      [names.backendType]: "vxlan",
      [names.publicIP]: "x".repeat(1_000_000),
    });
    const skipped = nodeToLease(peer, names, config);
    assert.ok(
      "skip" in skipped && skipped.skip.length < 200,
      "skip" in skipped ? skipped.skip.slice(0, 200) : "",
    );
  });

  it("a 1 MB --kube-annotation-prefix is refused at once (the form check is quadratic)", () => {
    const started = performance.now();
    assert.throws(
      () => annotationNames("a".repeat(1_000_000)),
      /is too long: an annotation prefix has at most 253/,
    );
    assert.ok(performance.now() - started < 1000);
    assert.equal(annotationNames("example.com/weft").backendData, "example.com/weft-backend-data");
  });
});

describe("subnet.env read back by weftd", () => {
  it("a subnet of the wrong family is not taken for the previous subnet", async () => {
    const dir = mkdtempSync(join(tmpdir(), "weft-subnet-env-"));
    try {
      const path = join(dir, "subnet.env");
      writeFileSync(path, "FLANNEL_SUBNET=fd44::1/64\nFLANNEL_IPV6_SUBNET=10.244.3.1/24\n");
      assert.deepEqual(await readPreviousSubnets(path), { subnet: undefined, ipv6Subnet: undefined });
      writeFileSync(path, "FLANNEL_SUBNET=10.244.3.1/24\nFLANNEL_IPV6_SUBNET=fd44:0:0:3::1/64\n");
      const prev = await readPreviousSubnets(path);
      assert.equal(prev.subnet && formatCIDR(prev.subnet), "10.244.3.0/24");
      assert.equal(prev.ipv6Subnet && formatCIDR(prev.ipv6Subnet), "fd44:0:0:3::/64");
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("choosing a free subnet", () => {
  it("skips a held network that covers the whole range at once (an IPv6 /8 of /64s)", () => {
    const config = parseNetworkConfig('{"EnableIPv4":false,"EnableIPv6":true,"IPv6Network":"fd00::/8"}');
    const held = takenBy([parseSubnetKey("0.0.0.0-0&fd00::-9")!]);
    const started = performance.now();
    const chosen = chooseFreeSubnet(config.ipv6!, held.v6, () => 0);
    assert.ok(performance.now() - started < 1000);
    // The first free /64 is the first one after the held /9.
    assert.equal(chosen && formatCIDR(chosen), "fd80::/64");
    const whole = takenBy([parseSubnetKey("0.0.0.0-0&fd00::-8")!]);
    assert.equal(
      chooseFreeSubnet(config.ipv6!, whole.v6, () => 0),
      undefined,
    );
  });

  it("still takes the first free one among exact-size leases and odd-size reservations", () => {
    const config = parseNetworkConfig('{"Network":"10.244.0.0/16"}');
    const held = takenBy(
      ["10.244.1.0-24", "10.244.2.0-23", "10.244.4.128-25"].map((k) => parseSubnetKey(k)!),
    );
    assert.equal(formatCIDR(chooseFreeSubnet(config.ipv4!, held.v4, () => 0)!), "10.244.5.0/24");
  });
});

describe("the udp and extension backends", () => {
  it("udp: a peer naming another backend is reported with that name bounded and escaped", () => {
    const lease = (key: string, backendType: string) => ({
      key,
      subnet: parseCIDR(key.replace("-", "/")),
      ipv6Subnet: undefined,
      attrs: {
        publicIP: "172.31.0.2",
        publicIPv6: undefined,
        backendType,
        backendData: undefined,
        backendV6Data: undefined,
      },
      reservation: false,
    });
    const own = lease("10.244.1.0-24", "udp");
    const { problems } = udpForwardingTable(
      own,
      [own, lease("10.244.2.0-24", `vx\nlan${"x".repeat(100_000)}`)],
      8285,
    );
    assert.equal(problems.length, 1);
    assert.ok(problems[0]!.reason.startsWith("it runs the vx\\nlan"), problems[0]!.reason.slice(0, 80));
    assert.ok(problems[0]!.reason.length < 250);
    const vxlan = udpForwardingTable(own, [own, lease("10.244.3.0-24", "vxlan")], 8285);
    assert.match(vxlan.problems[0]!.reason, /^it runs the vxlan backend;/);
  });

  it("wireguard: an unknown Mode is quoted bounded and escaped", () => {
    assert.throws(
      () => parseWireguardConfig({ Mode: `auto\u001b[31m${"x".repeat(100_000)}` }),
      (err: unknown) =>
        err instanceof ConfigError &&
        err.message.includes('not "auto\\u001b[31m') &&
        err.message.length < 300,
    );
  });

  it("extension: a 1 MB command of distinct shell words is refused at once, naming a bounded few", () => {
    const text = Array.from({ length: 100_000 }, (_, i) => `#${i}`).join(" ");
    const started = performance.now();
    const parsed = parseCommandLine(`run ${text} ~${"h".repeat(1000)}`);
    assert.ok(performance.now() - started < 2000);
    assert.ok(!parsed.ok);
    assert.equal(parsed.problem, 'uses shell syntax: a comment ("#0"), a comment ("#1"), a comment ("#2")');
    const home = parseCommandLine(`~${"h".repeat(1000)}\u2028`);
    assert.ok(
      !home.ok && home.problem === `uses shell syntax: a home directory (~) ("~${"h".repeat(23)}…")`,
      !home.ok ? home.problem : "",
    );
  });
});

describe("the Kubernetes node watch", () => {
  it("a null line, a BOOKMARK without object or an ERROR with a null object ends the watch with a reason, not a throw", async () => {
    for (const line of [null, { type: "BOOKMARK" }, { type: "ERROR", object: null }]) {
      let thrown: unknown;
      let watches = 0;
      const client = {
        request: async () => ({ metadata: { resourceVersion: "1" }, items: [] }),
        watch: async (_path: string, onEvent: (event: WatchEvent) => void) => {
          let end: (outcome: "end") => void = () => {};
          const done = new Promise<"end">((resolve) => {
            end = resolve;
          });
          // As the real client does: events come from the stream's data callback, after watch() returned.
          if (++watches === 1)
            setImmediate(() => {
              try {
                onEvent(line as unknown as WatchEvent);
              } catch (err) {
                thrown = err;
              }
              end("end");
            });
          return { done, close: () => end("end") };
        },
      } as unknown as KubeClient;
      const warnings: string[] = [];
      const watch = new NodeWatch(client, "p/", { onChange: () => {}, onWarning: (m) => warnings.push(m) });
      watch.start();
      await watch.whenSynced();
      for (let i = 0; i < 10; i++) await new Promise((r) => setImmediate(r));
      watch.close();
      assert.equal(thrown, undefined, `${JSON.stringify(line)} threw ${String(thrown)}`);
      if (line?.type !== "BOOKMARK")
        assert.ok(
          warnings.some((w) => /node watch interrupted/.test(w)),
          warnings.join("; "),
        );
    }
  });
});

describe("kubeconfig files and exec plugins", () => {
  it("an exec plugin printing a deeply nested kind gets one UserError, not a stack overflow", () => {
    const config = {
      apiVersion: "client.authentication.k8s.io/v1",
      describe: "the exec plugin of user u",
    } as ExecPluginConfig;
    const deepKind = `{"kind":${"[".repeat(5000)}${"]".repeat(5000)}}`;
    assert.throws(
      () => parseExecCredential(config, deepKind),
      (err: unknown) =>
        err instanceof UserError &&
        err.message === "the exec plugin of user u printed kind an array of 1, not ExecCredential",
    );
    assert.throws(
      () => parseExecCredential(config, '{"kind":"Other"}'),
      /printed kind "Other", not ExecCredential/,
    );
  });

  it("1 MB of YAML errors on one line (a million quotes) gets the first one, with its line and column, at once", async () => {
    const dir = mkdtempSync(join(tmpdir(), "weft-kubeconfig-"));
    try {
      const path = join(dir, "kubeconfig");
      writeFileSync(path, '"'.repeat(1 << 20));
      // The library's prettyErrors copied the whole line for each of the 524,287 errors: minutes, not seconds.
      const started = performance.now();
      await assert.rejects(loadKubeconfig(path), (err: unknown) => {
        assert.ok(err instanceof UserError);
        assert.equal(
          err.message,
          `cannot parse kubeconfig ${path}: Unexpected double-quoted-scalar at node end at line 1, column 3`,
        );
        return true;
      });
      assert.ok(performance.now() - started < 20_000, `took ${Math.round(performance.now() - started)} ms`);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("a certificate path with control characters is escaped in the error", async () => {
    const dir = mkdtempSync(join(tmpdir(), "weft-kubeconfig-"));
    try {
      const path = join(dir, "kubeconfig");
      writeFileSync(
        path,
        [
          "apiVersion: v1",
          "current-context: c",
          "clusters: [{name: c, cluster: {server: 'https://10.0.0.1:6443', certificate-authority: \"ca\\n2026 forged.crt\"}}]",
          "contexts: [{name: c, context: {cluster: c, user: u}}]",
          "users: [{name: u, user: {token: t}}]",
        ].join("\n"),
      );
      await assert.rejects(loadKubeconfig(path), (err: unknown) => {
        assert.ok(err instanceof UserError);
        assert.ok(!err.message.includes("\n"), err.message);
        assert.match(err.message, /ca\\n2026 forged\.crt: ENOENT/);
        return true;
      });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
