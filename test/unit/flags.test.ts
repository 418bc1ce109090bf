import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { resolve } from "node:path";
import { describe, it } from "node:test";
import { promisify } from "node:util";
import { FlagError, parseFlags, usage } from "../../src/daemon/flags.js";
import { repoRoot } from "../helpers/reference.js";

const run = promisify(execFile);
const weftd = resolve(repoRoot, "dist/src/daemon/weftd-main.js");

describe("weftd flags", () => {
  it("has flanneld's defaults", () => {
    const flags = parseFlags([], {});
    assert.equal(flags.string("etcd-endpoints"), "http://127.0.0.1:4001,http://127.0.0.1:2379");
    assert.equal(flags.string("etcd-prefix"), "/coreos.com/network");
    assert.equal(flags.string("subnet-file"), "/run/flannel/subnet.env");
    assert.equal(flags.int("subnet-lease-renew-margin"), 60);
    assert.equal(flags.int("iptables-resync"), 5);
    assert.equal(flags.bool("iptables-forward-rules"), true);
    assert.equal(flags.bool("ip-masq"), false);
    assert.equal(flags.string("kube-annotation-prefix"), "flannel.alpha.coreos.com");
    assert.equal(flags.string("net-config-path"), "/etc/kube-flannel/net-conf.json");
    assert.equal(flags.bool("set-node-network-unavailable"), true);
    assert.equal(flags.string("healthz-ip"), "0.0.0.0");
    assert.equal(flags.int("healthz-port"), 0);
    assert.deepEqual(flags.list("iface"), []);
  });

  it("accepts --flag=value, --flag value, -flag=value and bare booleans like Go", () => {
    const flags = parseFlags(
      [
        "--etcd-prefix=/a",
        "--subnet-file",
        "/tmp/s.env",
        "-iptables-resync=7",
        "-ip-masq",
        "--iptables-forward-rules=false",
        "-v",
        "2",
      ],
      {},
    );
    assert.equal(flags.string("etcd-prefix"), "/a");
    assert.equal(flags.string("subnet-file"), "/tmp/s.env");
    assert.equal(flags.int("iptables-resync"), 7);
    assert.equal(flags.bool("ip-masq"), true);
    assert.equal(flags.bool("iptables-forward-rules"), false);
    assert.equal(flags.int("v"), 2);
  });

  it("collects repeated --iface and --iface-regex in order", () => {
    const flags = parseFlags(["--iface=eth1", "--iface", "10.0.0.1", "--iface-regex=^en"], {});
    assert.deepEqual(flags.list("iface"), ["eth1", "10.0.0.1"]);
    assert.deepEqual(flags.list("iface-regex"), ["^en"]);
  });

  it("reads FLANNELD_* for flags not given on the command line", () => {
    const flags = parseFlags(["--ip-masq=false"], {
      FLANNELD_IP_MASQ: "true",
      FLANNELD_ETCD_ENDPOINTS: "http://10.0.0.1:2379",
      FLANNELD_SUBNET_LEASE_RENEW_MARGIN: "120",
      FLANNELD_IFACE: "eth7",
      FLANNELD_KUBE_SUBNET_MGR: "1",
    });
    assert.equal(flags.bool("ip-masq"), false, "the command line wins");
    assert.equal(flags.string("etcd-endpoints"), "http://10.0.0.1:2379");
    assert.equal(flags.int("subnet-lease-renew-margin"), 120);
    assert.deepEqual(flags.list("iface"), ["eth7"]);
    assert.equal(flags.bool("kube-subnet-mgr"), true);
  });

  it("stops at the first non-flag argument or --", () => {
    assert.deepEqual(parseFlags(["-ip-masq", "extra", "--v=3"], {}).rest, ["extra", "--v=3"]);
    assert.deepEqual(parseFlags(["--", "--ip-masq"], {}).rest, ["--ip-masq"]);
  });

  it("rejects bad flags with one clear message", () => {
    const cases: Array<[string[], Record<string, string>, RegExp]> = [
      [["--no-such-flag"], {}, /flag provided but not defined: -no-such-flag/],
      [["--ip-masq=maybe"], {}, /invalid boolean value "maybe" for -ip-masq/],
      [["--iptables-resync=soon"], {}, /invalid number "soon" for -iptables-resync/],
      [["--subnet-file"], {}, /flag needs an argument: -subnet-file/],
      [["---x"], {}, /bad flag syntax/],
      [[], { FLANNELD_IPTABLES_RESYNC: "x" }, /invalid number "x" for FLANNELD_IPTABLES_RESYNC/],
    ];
    for (const [argv, env, pattern] of cases) {
      assert.throws(
        () => parseFlags(argv, env),
        (e: unknown) => e instanceof FlagError && pattern.test(e.message),
        argv.join(" "),
      );
    }
  });

  it("documents every flag in --help", () => {
    const text = usage("weftd");
    for (const name of [
      "etcd-endpoints",
      "iface-can-reach",
      "ip-masq-fully-random-disable",
      "kube-subnet-mgr",
      "ip-blackhole-route",
    ]) {
      assert.match(text, new RegExp(`-${name}\\b`));
    }
  });

  it("exits 1 with one line and no stack trace for a bad flag, and answers --version", async () => {
    const err = await run(process.execPath, [weftd, "--bogus"]).then(
      () => assert.fail("weftd accepted --bogus"),
      (e: { code: number; stderr: string }) => e,
    );
    assert.equal(err.code, 1);
    assert.equal(err.stderr, "weftd: flag provided but not defined: -bogus (see weftd --help)\n");
    const { stdout } = await run(process.execPath, [weftd, "--version"]);
    assert.match(stdout, /^weft \d+\.\d+\.\d+/);
  });
});
