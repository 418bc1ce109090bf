/** The pure parts of `weft leases` and `weft doctor`: writer detection, options, the SVG, the verdicts. */
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { promisify } from "node:util";
import { vxlanDifferences } from "../../src/backend/vxlan/vxlan-device.js";
import { addressSpaceSvg } from "../../src/cli/address-space-svg.js";
import { splitCommandOptions } from "../../src/cli/command-options.js";
import {
  checkChecksumOffload,
  checkForwarding,
  checkKind,
  checkMtuRoom,
  checkRpFilter,
  checkSubnetEnv,
  formatChecks,
} from "../../src/cli/doctor-report.js";
import {
  leaseWriter,
  WRITER_CURRENT,
  WRITER_OLD_FLANNELD,
  WRITER_OTHER,
} from "../../src/cli/lease-writer.js";
import type { LeaseRecord } from "../../src/cli/leases-command.js";
import { parseNetworkConfig } from "../../src/config/network-config.js";
import { parseCIDR } from "../../src/ip/ip-network.js";
import { decodeLeaseAttrs } from "../../src/lease/lease-json.js";
import type { Link } from "../../src/netlink/index.js";
import { fdbShape } from "../../src/reconcile/kinds/fdb-kind.js";
import { routeShape } from "../../src/reconcile/kinds/route-kind.js";
import {
  decodeLeaseTimeToLiveResponse,
  encodeLeaseTimeToLiveRequest,
} from "../../src/subnet/etcd/etcd-messages.js";
import { UserError } from "../../src/user-error.js";

const run = promisify(execFile);

function record(
  subnet: string,
  publicIP: string,
  backendType: string | null,
  reservation = false,
): LeaseRecord {
  return {
    key: subnet.replace("/", "-"),
    subnet,
    ipv6Subnet: null,
    publicIP,
    publicIPv6: null,
    backendType,
    vtep: null,
    backendData: null,
    reservation,
    expiresInSeconds: reservation ? null : 3600,
    expiresAt: null,
    writer: WRITER_CURRENT,
    problem: null,
  };
}

async function parsesAsXml(svg: string): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), "weft-svg-"));
  try {
    await writeFile(join(dir, "a.svg"), svg);
    await run("xmllint", ["--noout", join(dir, "a.svg")]);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

describe("lease writer", () => {
  const current =
    '{"PublicIP":"172.31.0.1","PublicIPv6":null,"BackendType":"vxlan","BackendData":{"VNI":1,"VtepMAC":"1e:b0:d9:82:fa:43"}}';
  it("tells flannel's current bytes, v0.7's form and anything else apart", () => {
    assert.equal(leaseWriter(current, decodeLeaseAttrs(current)), WRITER_CURRENT);
    const old =
      '{"PublicIP":"172.29.0.1","BackendType":"vxlan","BackendData":{"VtepMAC":"e6:ec:be:ba:7e:6e"}}';
    assert.equal(leaseWriter(old, decodeLeaseAttrs(old)), WRITER_OLD_FLANNELD);
    const spaced = current.replace(",", ", ");
    assert.equal(leaseWriter(spaced, decodeLeaseAttrs(spaced)), WRITER_OTHER);
    assert.equal(leaseWriter("not json", undefined), WRITER_OTHER);
  });
});

describe("etcd LeaseTimeToLive", () => {
  it("encodes the ID and reads the TTL", () => {
    assert.deepEqual([...encodeLeaseTimeToLiveRequest("7")], [0x08, 0x07]);
    // ID=2 (7), TTL=3 (300), grantedTTL=4 (86400)
    assert.equal(
      decodeLeaseTimeToLiveResponse(Buffer.from([0x10, 0x07, 0x18, 0xac, 0x02, 0x20, 0x80, 0xa3, 0x05])).ttl,
      300n,
    );
    assert.equal(decodeLeaseTimeToLiveResponse(Buffer.alloc(0)).ttl, -1n);
  });
});

describe("command options", () => {
  it("takes the subcommand's options and leaves weftd's flags", () => {
    const { options, daemonArgs } = splitCommandOptions(
      ["-o", "json", "--iface=eth0", "--svg=/tmp/a.svg", "-etcd-endpoints", "http://x:2379"],
      ["output", "svg"],
    );
    assert.deepEqual(
      [...options],
      [
        ["output", "json"],
        ["svg", "/tmp/a.svg"],
      ],
    );
    assert.deepEqual(daemonArgs, ["--iface=eth0", "-etcd-endpoints", "http://x:2379"]);
    assert.throws(() => splitCommandOptions(["--output"], ["output"]), UserError);
    assert.deepEqual(splitCommandOptions(["--svg", "x"], ["output"]).daemonArgs, ["--svg", "x"]);
  });
});

describe("address space SVG", () => {
  it("draws one cell per /24 of a /16 and names every lease", async () => {
    const config = parseNetworkConfig('{"Network":"10.244.0.0/16","Backend":{"Type":"vxlan"}}');
    const records = [
      record("10.244.3.0/24", "172.31.0.1", "vxlan"),
      record("10.244.200.0/24", "172.31.0.9", "vxlan", true),
      record("10.244.9.0/24", "172.31.0.2", "host-gw"),
      record("10.99.0.0/24", "172.31.0.3", "vxlan"),
      record("10.244.10.0/24", "172.31.0.4", null),
    ];
    const svg = addressSpaceSvg(config, records);
    await parsesAsXml(svg);
    assert.equal((svg.match(/<g><title>/g) ?? []).length, 256);
    for (const r of records) assert.ok(svg.includes(`${r.subnet} · host ${r.publicIP}`), r.subnet!);
    assert.match(svg, /10\.244\.0\.0\/16: 3 taken, 1 reserved, 252 free \/24 subnets/);
    assert.match(svg, /1 lease\(s\) outside 10\.244\.0\.0\/16/);
    for (const legend of [">vxlan<", ">host-gw<", ">unreadable<", ">free<"])
      assert.ok(svg.includes(legend), legend);
  });

  it("aggregates a /8 of /24s into 256 /16 blocks that still name every lease", async () => {
    const config = parseNetworkConfig('{"Network":"10.0.0.0/8","SubnetLen":24,"Backend":{"Type":"vxlan"}}');
    const records = [
      ...Array.from({ length: 256 }, (_, i) => record(`10.7.${i}.0/24`, `172.16.0.${i}`, "vxlan")),
      record("10.200.1.0/24", "172.17.0.1", "host-gw", true),
      record("10.200.2.0/24", "172.17.0.2", "host-gw"),
    ];
    const svg = addressSpaceSvg(config, records);
    await parsesAsXml(svg);
    assert.equal((svg.match(/<g><title>/g) ?? []).length, 256, "one cell per /16");
    assert.ok(svg.length < 400_000, `stays small: ${svg.length} bytes`);
    assert.match(svg, /<title>10\.7\.0\.0\/16: 256 of 256 \/24 taken/);
    assert.match(svg, /<title>10\.200\.0\.0\/16: 2 of 256 \/24 taken/);
    for (const r of records) assert.ok(svg.includes(`${r.subnet} · host ${r.publicIP}`), r.subnet!);
    assert.match(svg, /10\.0\.0\.0\/8: 257 taken, 1 reserved, 65278 free \/24 subnets/);
  });

  it("escapes what the store holds", () => {
    const config = parseNetworkConfig('{"Network":"10.244.0.0/16","Backend":{"Type":"vxlan"}}');
    const svg = addressSpaceSvg(config, [record("10.244.1.0/24", "172.31.0.1", "<script>&")]);
    assert.ok(!svg.includes("<script>"));
    assert.ok(svg.includes("&#60;script&#62;&#38;"));
  });
});

describe("doctor verdicts", () => {
  const env = {
    network: parseCIDR("10.244.0.0/16"),
    subnet: parseCIDR("10.244.5.0/24"),
    ipv6Network: undefined,
    ipv6Subnet: undefined,
    mtu: 1450,
    ipMasq: true,
  };
  const good =
    "FLANNEL_NETWORK=10.244.0.0/16\nFLANNEL_SUBNET=10.244.5.1/24\nFLANNEL_MTU=1450\nFLANNEL_IPMASQ=true\n";

  it("subnet.env: ok, stale, missing", () => {
    assert.equal(checkSubnetEnv("/run/flannel/subnet.env", good, env).status, "ok");
    const stale = checkSubnetEnv("/f", good.replace("5.1", "9.1"), env);
    assert.equal(stale.status, "fail");
    assert.match(stale.detail, /FLANNEL_SUBNET=10\.244\.9\.1\/24, expected 10\.244\.5\.1\/24/);
    assert.match(checkSubnetEnv("/f", undefined, env).detail, /\/f does not exist/);
  });

  it("kinds: missing, wrong and stale entries, as the reconciler diffs them", () => {
    const want = [
      { dev: "flannel.1", mac: "aa:aa:aa:aa:aa:01", dst: "172.31.0.2" },
      { dev: "flannel.1", mac: "aa:aa:aa:aa:aa:02", dst: "172.31.0.3" },
    ];
    assert.equal(checkKind(fdbShape, want, want).status, "ok");
    const bad = checkKind(fdbShape, want, [
      { dev: "flannel.1", mac: "aa:aa:aa:aa:aa:01", dst: "172.31.0.77" },
      { dev: "flannel.1", mac: "aa:aa:aa:aa:aa:09", dst: "172.31.0.9" },
    ]);
    assert.equal(bad.status, "fail");
    assert.match(
      bad.detail,
      /wrong: fdb aa:aa:aa:aa:aa:01 dst 172\.31\.0\.77 dev flannel\.1, expected fdb aa:aa:aa:aa:aa:01 dst 172\.31\.0\.2/,
    );
    assert.match(bad.detail, /missing: fdb aa:aa:aa:aa:aa:02/);
    assert.match(bad.detail, /stale: fdb aa:aa:aa:aa:aa:09/);
    const route = { dst: "10.244.9.0/24", gateway: "10.244.9.0", dev: "flannel.1", onlink: true };
    assert.match(checkKind(routeShape, [route], []).detail, /missing: route 10\.244\.9\.0\/24/);
  });

  it("MTU room, forwarding, rp_filter, checksum offload", () => {
    assert.equal(checkMtuRoom("flannel.1", 1450, 50, "eth0", 1500).status, "ok");
    assert.match(checkMtuRoom("flannel.1", 1450, 50, "eth0", 1400).fix ?? "", /at most 1350/);
    assert.equal(checkForwarding(4, "1\n").status, "ok");
    assert.equal(checkForwarding(4, "0\n").status, "fail");
    assert.equal(checkForwarding(6, undefined).status, "skip");
    assert.equal(
      checkRpFilter(
        new Map([
          ["all", "0"],
          ["eth0", "2"],
        ]),
      ).status,
      "ok",
    );
    const strict = checkRpFilter(
      new Map([
        ["all", "1"],
        ["eth0", "0"],
      ]),
    );
    assert.equal(strict.status, "warn", "conf/all raises every device to its value");
    assert.match(strict.detail, /eth0 strict/);
    const on = "Features for flannel.1:\ntx-checksumming: on\n\ttx-checksum-ip-generic: on\n";
    assert.equal(checkChecksumOffload("flannel.1", "6.1.0", on).status, "warn");
    assert.equal(
      checkChecksumOffload(
        "flannel.1",
        "6.1.0",
        on.replace(": on\n", ": off\n").replace("generic: on", "generic: off"),
      ).status,
      "ok",
    );
    assert.equal(checkChecksumOffload("flannel.1", "6.1.0", undefined).status, "skip");
  });

  it("formats fixes under failures and counts them", () => {
    const text = formatChecks([
      { name: "ip-forward", status: "fail", detail: "off", fix: "sysctl -w net.ipv4.ip_forward=1" },
      { name: "route", status: "ok", detail: "3 routes" },
    ]);
    assert.match(text, /^FAIL {2}ip-forward {2}off\n {18}fix: sysctl/);
    assert.match(text, /1 problem\(s\) found\n$/);
  });
});

describe("vxlan device differences", () => {
  const spec = {
    name: "flannel.1",
    vni: 1,
    local: "172.31.0.1",
    devIndex: 2,
    port: 0,
    learning: false,
    gbp: false,
    mtu: 1450,
    mac: undefined,
  };
  const link = (changes: Partial<Link> = {}, vxlan: Partial<NonNullable<Link["vxlan"]>> = {}): Link =>
    ({
      index: 5,
      name: "flannel.1",
      kind: "vxlan",
      mtu: 1450,
      up: true,
      vxlan: { vni: 1, local: "172.31.0.1", devIndex: 2, port: 8472, learning: false, gbp: false, ...vxlan },
      ...changes,
    }) as Link;
  it("names each difference", () => {
    assert.deepEqual(vxlanDifferences(link(), spec), []);
    assert.deepEqual(vxlanDifferences(link({ mtu: 1500 }, { vni: 2, port: 4789 }), spec), [
      "VNI 2, expected 1",
      "port 4789, expected 8472",
      "MTU 1500, expected 1450",
    ]);
    assert.deepEqual(vxlanDifferences(link({ kind: "dummy", vxlan: undefined }), spec), [
      "it is a dummy device, not vxlan",
    ]);
  });
});
