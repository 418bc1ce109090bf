/**
 * Operator input weftd refuses with one clear, bounded error (issue 7, items 6 and 7): networks flannel
 * rejects, values of any size or with control characters, flags that cannot work, a vxlan MTU the kernel
 * would refuse, TLS files that are not PEM; and the logger's escaping as the last line of defence.
 */
import assert from "node:assert/strict";
import { execFileSync, spawnSync } from "node:child_process";
import { once } from "node:events";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { parseVxlanConfig, vxlanDeviceMtu } from "../../src/backend/vxlan/vxlan-config.js";
import { ConfigError, parseNetworkConfig } from "../../src/config/network-config.js";
import { FlagError, parseFlags } from "../../src/daemon/flags.js";
import { startHealthServer } from "../../src/daemon/health-server.js";
import { createLogger, LOG_MESSAGE_MAX } from "../../src/daemon/logger.js";
import { loadKubeconfig } from "../../src/kube/kubeconfig.js";
import { EtcdStore } from "../../src/subnet/etcd/etcd-store.js";
import { UserError } from "../../src/user-error.js";
import { repoRoot } from "../helpers/reference.js";
import { makePki } from "../lab/lab-pki.js";

const weftd = join(repoRoot, "dist/src/daemon/weftd-main.js");

function configError(text: string): string {
  try {
    parseNetworkConfig(text);
  } catch (err) {
    assert.ok(err instanceof ConfigError, `a ConfigError, not ${String(err)}`);
    return err.message;
  }
  assert.fail(`accepted: ${text.slice(0, 100)}`);
}

describe("network config: what flannel rejects", () => {
  it('refuses "Network":"0.0.0.0/0" and any other /0, as flannel does', () => {
    for (const network of ["0.0.0.0/0", "10.1.2.3/0"]) {
      assert.equal(
        configError(JSON.stringify({ Network: network, Backend: { Type: "vxlan" } })),
        'invalid network config: Network 0.0.0.0/0 is every address, not a pod network (flannel rejects it too); give a range such as "10.244.0.0/16"',
      );
    }
    // The smallest prefix flannel takes is still fine.
    assert.equal(parseNetworkConfig('{"Network":"0.0.0.0/1"}').ipv4?.subnetLen, 24);
  });

  it('refuses "IPv6Network":"::/0"', () => {
    const message = configError(
      JSON.stringify({ Network: "10.244.0.0/16", EnableIPv6: true, IPv6Network: "::/0" }),
    );
    assert.match(message, /^invalid network config: IPv6Network ::\/0 is every address, not a pod network/);
    assert.ok(
      parseNetworkConfig(JSON.stringify({ EnableIPv4: false, EnableIPv6: true, IPv6Network: "fd00::/56" }))
        .ipv6,
    );
  });
});

describe("config values of any size and content are bounded and escaped in errors", () => {
  it("a 1 MB Network value gives a short message", () => {
    const message = configError(JSON.stringify({ Network: "x".repeat(1_000_000) }));
    assert.ok(message.length < 300, `${message.length} characters`);
    assert.match(
      message,
      /^invalid network config: Network "x{64}… \(1000000 characters\)" is not an IPv4 network/,
    );
  });

  it("control characters cannot forge a log line", () => {
    const forged = "10.0.0.0\nE1201 12:00:00.000000 1 weftd] forged";
    const message = configError(JSON.stringify({ Network: forged }));
    assert.ok(!message.includes("\n"), message);
    assert.match(message, /Network "10\.0\.0\.0\\nE1201/);
  });

  it("a deeply nested value is described, not walked", () => {
    const deep = `${"[".repeat(100_000)}${"]".repeat(100_000)}`;
    assert.match(configError(`{"Network":${deep}}`), /Network an array of 1 is not an IPv4 network/);
    assert.match(
      configError(`{"Network":"10.244.0.0/16","SubnetLen":${deep}}`),
      /SubnetLen must be a whole number.*an array of 1/,
    );
  });

  it("backend keys quote bounded values", () => {
    assert.throws(
      () => parseVxlanConfig({ Type: "vxlan", VNI: "9".repeat(100_000) }),
      (err: unknown) =>
        err instanceof ConfigError &&
        err.message.length < 300 &&
        /Backend.VNI .*\(100000 characters\)/.test(err.message),
    );
  });
});

describe("vxlan MTU", () => {
  const eth0 = { name: "eth0", mtu: 1500 };

  it("defaults to the interface's MTU less the overhead; Backend.MTU is the outgoing packets' MTU", () => {
    assert.equal(vxlanDeviceMtu(4, parseVxlanConfig({}).mtu, eth0), 1450);
    assert.equal(vxlanDeviceMtu(6, 0, eth0), 1430);
    assert.equal(vxlanDeviceMtu(4, 1400, eth0), 1350);
    assert.equal(vxlanDeviceMtu(4, 1500, eth0), 1450);
  });

  it("refuses what the kernel would refuse with EINVAL, naming the key, the interface and the limit", () => {
    const mtu = parseVxlanConfig({ Type: "vxlan", MTU: 65535 }).mtu;
    assert.throws(
      () => vxlanDeviceMtu(4, mtu, eth0),
      (err: unknown) =>
        err instanceof ConfigError &&
        err.message ===
          "invalid network config: Backend.MTU 65535 of the vxlan backend does not fit eth0, whose MTU is 1500: the encapsulated packets must fit it; set Backend.MTU to 1500 or less, or leave it out",
    );
    assert.throws(() => vxlanDeviceMtu(6, 1501, eth0), /set Backend.MTU to 1500 or less/);
    assert.throws(() => parseVxlanConfig({ MTU: 67 }), /Backend.MTU 67 of the vxlan backend is below 68/);
    assert.throws(
      () => parseVxlanConfig({ MTU: 65536 }),
      /Backend.MTU of the vxlan backend must be a whole number from 0 to 65535, not 65536/,
    );
    assert.throws(
      () => vxlanDeviceMtu(4, 0, { name: "tiny0", mtu: 100 }),
      /the MTU 100 of tiny0 leaves the IPv4 vxlan device 50 bytes, below the 68 IPv4 needs/,
    );
  });
});

describe("weftd flags checked up front", () => {
  function flagError(argv: string[]): string {
    try {
      parseFlags(argv, {});
    } catch (err) {
      assert.ok(err instanceof FlagError, String(err));
      return err.message;
    }
    assert.fail(`accepted ${argv.join(" ")}`);
  }

  it("--healthz-port out of range", () => {
    assert.equal(
      flagError(["--healthz-port=99999"]),
      "--healthz-port 99999 is not a TCP port: use 1 to 65535, or 0 for none",
    );
    assert.match(flagError(["--healthz-port=-1"]), /--healthz-port -1 is not a TCP port/);
    assert.equal(parseFlags(["--healthz-port=65535"], {}).int("healthz-port"), 65535);
  });

  it("--healthz-ip that is not an IP address (no DNS lookup, no advice about the port)", () => {
    assert.equal(
      flagError(["--healthz-ip=not-an-ip"]),
      '--healthz-ip "not-an-ip" is not an IP address: use one of this host\'s addresses, or 0.0.0.0 for all',
    );
    assert.match(
      flagError(["--healthz-ip", `a\n${"b".repeat(10_000)}`]),
      /^--healthz-ip "a\\nb+… \(10002 characters\)"/,
    );
    assert.equal(parseFlags(["--healthz-ip=::1"], {}).string("healthz-ip"), "::1");
  });

  it("an environment value is checked the same way", () => {
    assert.throws(
      () => parseFlags([], { FLANNELD_HEALTHZ_PORT: "70000" }),
      /--healthz-port 70000 is not a TCP port/,
    );
  });

  it("unknown flags and bad syntax are bounded and escaped", () => {
    const unknown = flagError([`--${"x\n".repeat(100_000)}`]);
    assert.match(unknown, /^flag provided but not defined: -(x\\n)+x?… \(200000 characters\)$/);
    assert.ok(!unknown.includes("\n"));
    assert.match(
      flagError([`---${"y\u2028".repeat(1000)}`]),
      /^bad flag syntax: ---(y\\u2028)+.*… \(2003 characters\)$/,
    );
    assert.ok(flagError([`--ip-masq=${"x\u2028".repeat(100_000)}`]).length < 200);
    assert.throws(
      () => parseFlags([], { FLANNELD_V: "x\n".repeat(100_000) }),
      (err: unknown) => {
        return err instanceof FlagError && err.message.length < 200 && !err.message.includes("\n");
      },
    );
  });

  it("numbers beyond what int64 (and a JS number, exactly) holds are out of range, as Go says", () => {
    assert.match(
      flagError([`-healthz-port=${"9".repeat(400)}`]),
      /^invalid number "9+… \(400 characters\)" for -healthz-port: value out of range$/,
    );
    assert.match(flagError(["-v=9007199254740993"]), /value out of range/);
    assert.match(flagError([`-v=0x${"f".repeat(20)}`]), /value out of range/);
    assert.match(flagError(["-v=0x_"]), /^invalid number "0x_" for -v$/);
    assert.equal(parseFlags(["-v=9007199254740991"], {}).int("v"), 9007199254740991);
    assert.equal(parseFlags(["-v=0x1F"], {}).int("v"), 31);
    assert.equal(parseFlags(["-v=017"], {}).int("v"), 15);
    assert.equal(parseFlags(["-v=-0b101"], {}).int("v"), -5);
  });

  it("weftd itself exits with one line for them, before touching anything", async () => {
    for (const [flag, expected] of [
      [
        "--healthz-port=99999",
        "weftd: --healthz-port 99999 is not a TCP port: use 1 to 65535, or 0 for none (see weftd --help)\n",
      ],
      [
        "--healthz-ip=not-an-ip",
        `weftd: --healthz-ip "not-an-ip" is not an IP address: use one of this host's addresses, or 0.0.0.0 for all (see weftd --help)\n`,
      ],
    ] as const) {
      const result = spawnSync(process.execPath, [weftd, flag], { encoding: "utf8", timeout: 10_000 });
      assert.equal(result.status, 1);
      assert.equal(result.stderr, expected);
    }
  });

  it("a bad number is bounded", () => {
    assert.match(
      flagError([`--healthz-port=${"x".repeat(5000)}`]),
      /^invalid number "x{64}… \(5000 characters\)" for -healthz-port$/,
    );
  });
});

describe("health server listen errors", () => {
  it("a port in use says so and suggests another port", async () => {
    const busy = createServer();
    busy.listen(0, "127.0.0.1");
    await once(busy, "listening");
    const port = (busy.address() as { port: number }).port;
    try {
      await assert.rejects(
        startHealthServer("127.0.0.1", port, { ready: () => true, metrics: () => "" }),
        (err: unknown) =>
          err instanceof UserError &&
          err.message === `cannot serve health checks on 127.0.0.1:${port}: the port is in use` &&
          err.hint === "choose another --healthz-port",
      );
    } finally {
      busy.close();
    }
  });

  it("an address this host does not have names --healthz-ip", async () => {
    // 192.0.2.1 (TEST-NET-1) is on no interface here: nothing is sent, bind() fails.
    await assert.rejects(
      startHealthServer("192.0.2.1", 19999, { ready: () => true, metrics: () => "" }),
      (err: unknown) =>
        err instanceof UserError &&
        /no interface of this host has that address/.test(err.message) &&
        /--healthz-ip/.test(err.hint ?? ""),
    );
  });
});

describe("logger", () => {
  it("escapes control characters in every message, so no value can start a forged line", () => {
    const lines: string[] = [];
    const log = createLogger(0, (l) => lines.push(l));
    log.warn("lease 10.244.1.0-24: bad\nE1201 12:00:00.000000 1 weftd] forged\r\u0000\u2028");
    assert.equal(lines.length, 1);
    assert.equal(lines[0]!.split("\n").length, 2, "one line, ended by one newline");
    assert.match(lines[0]!, /bad\\nE1201 12:00:00\.000000 1 weftd\] forged\\r\\u0000\\u2028\n$/);
  });

  it("bounds a huge message", () => {
    const lines: string[] = [];
    createLogger(0, (l) => lines.push(l)).error("x".repeat(1_000_000));
    assert.ok(lines[0]!.length < LOG_MESSAGE_MAX + 100, `${lines[0]!.length}`);
    assert.match(lines[0]!, /… \(1000000 characters\)\n$/);
  });
});

describe("TLS files that are not PEM are refused when read", () => {
  const dir = mkdtempSync(join(tmpdir(), "weft-tls-"));
  after(() => rmSync(dir, { recursive: true, force: true }));
  const etcd = (extra: Record<string, string>) =>
    EtcdStore.connect({
      endpoints: ["https://127.0.0.1:2379"],
      caFile: undefined,
      certFile: undefined,
      keyFile: undefined,
      username: undefined,
      password: undefined,
      callTimeoutMs: 1000,
      ...extra,
    });

  it("etcd: a CA, certificate or key file that is not PEM", async () => {
    const notPem = join(dir, "not-pem.crt");
    writeFileSync(notPem, "this is not a certificate\n");
    const broken = join(dir, "broken.crt");
    writeFileSync(broken, "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n");
    await assert.rejects(
      etcd({ caFile: notPem }),
      (err: unknown) =>
        err instanceof UserError &&
        err.message ===
          `the etcd CA file (--etcd-cafile) ${notPem} holds no PEM certificate (no "-----BEGIN CERTIFICATE-----" block)`,
    );
    await assert.rejects(etcd({ caFile: broken }), /broken\.crt: certificate 1 of 1 cannot be read/);
    await assert.rejects(
      etcd({ certFile: notPem }),
      /certificate \(--etcd-certfile\) .* holds no PEM certificate/,
    );
    await assert.rejects(etcd({ keyFile: notPem }), /key \(--etcd-keyfile\) .* is not a PEM private key/);
    await assert.rejects(
      etcd({ caFile: "/dev/zero" }),
      /^UserError: cannot read the etcd CA file \(--etcd-cafile\) \/dev\/zero: not a regular file$/,
    );
  });

  it("etcd: real PEM files are taken", async () => {
    const pki = await makePki(dir);
    const store = await etcd({ caFile: pki.ca, certFile: pki.clientCert, keyFile: pki.clientKey });
    store.close();
  });

  it("kube: a kubeconfig whose CA is not PEM, or which names a FIFO", { timeout: 10_000 }, async () => {
    const file = join(dir, "kubeconfig");
    writeFileSync(
      file,
      [
        "apiVersion: v1",
        "kind: Config",
        "current-context: c",
        "contexts:",
        "- name: c",
        "  context:",
        "    cluster: k",
        "    user: u",
        "clusters:",
        "- name: k",
        "  cluster:",
        "    server: https://10.0.0.1:6443",
        `    certificate-authority-data: ${Buffer.from("not a certificate").toString("base64")}`,
        "users:",
        "- name: u",
        "  user:",
        "    token: abc",
        "",
      ].join("\n"),
    );
    await assert.rejects(
      loadKubeconfig(file),
      /the CA of cluster k in .*kubeconfig holds no PEM certificate/,
    );

    // A file it names that never answers (a FIFO with no writer) fails at once instead of blocking.
    const fifo = join(dir, "cert-fifo");
    execFileSync("mkfifo", [fifo]);
    const text = readFileSync(file, "utf8")
      .replace(/ {4}certificate-authority-data: .*\n/, "")
      .replace("    token: abc", `    client-certificate: ${fifo}`);
    writeFileSync(file, text);
    await assert.rejects(
      loadKubeconfig(file),
      /cannot read the client certificate named in .*cert-fifo: EINVAL/,
    );
  });
});
