// `weft leases --kube-subnet-mgr` against the in-process test API server: the nodes weftd would route,
// read through the kube subnet manager with weftd's flags, as a table and as JSON.
import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { readLeases } from "../../src/cli/lease-source.js";
import { leasesCommand } from "../../src/cli/leases-command.js";
import { parseFlags } from "../../src/daemon/flags.js";
import { nodeObject, type RunningApi, startApiInProcess } from "../kube-api/in-process.js";

const P = "flannel.alpha.coreos.com";
const annotations = (ip: string, mac: string) => ({
  [`${P}/kube-subnet-manager`]: "true",
  [`${P}/backend-type`]: "vxlan",
  [`${P}/backend-data`]: `{"VNI":1,"VtepMAC":"${mac}"}`,
  [`${P}/public-ip`]: ip,
});

describe("weft leases in kube mode", { timeout: 60_000 }, () => {
  let api: RunningApi;
  let netConf: string;
  before(async () => {
    api = await startApiInProcess();
    netConf = join(api.dir, "net-conf.json");
    writeFileSync(netConf, '{"Network":"10.244.0.0/16","Backend":{"Type":"vxlan"}}');
    await api.call(
      "POST",
      "/api/v1/nodes",
      nodeObject("n1", ["10.244.1.0/24"], "172.31.0.1", annotations("172.31.0.1", "02:00:00:00:00:01")),
    );
    await api.call(
      "POST",
      "/api/v1/nodes",
      nodeObject("n2", ["10.244.2.0/24"], "172.31.0.2", annotations("172.31.0.2", "02:00:00:00:00:02")),
    );
    // Not annotated by a subnet manager: weftd does not route it, so it is not listed.
    await api.call("POST", "/api/v1/nodes", nodeObject("n3", ["10.244.3.0/24"], "172.31.0.3"));
  });
  after(async () => {
    await api?.close();
  });

  test("lists the annotated nodes' leases with weftd's flags", async () => {
    const flags = parseFlags(
      ["--kube-subnet-mgr", `--kubeconfig-file=${api.weftKubeconfig}`, `--net-config-path=${netConf}`],
      {},
    );
    const listing = await readLeases(flags, { NODE_NAME: "n1" });
    let out = "";
    assert.equal(await leasesCommand(listing, { output: "json", svgFile: undefined }, (t) => (out += t)), 0);
    const json = JSON.parse(out);
    assert.equal(json.store, "kube");
    assert.deepEqual(
      json.leases.map((l: Record<string, unknown>) => [
        l.subnet,
        l.publicIP,
        l.vtep,
        l.reservation,
        l.expiresInSeconds,
      ]),
      [
        ["10.244.1.0/24", "172.31.0.1", "02:00:00:00:00:01", false, null],
        ["10.244.2.0/24", "172.31.0.2", "02:00:00:00:00:02", false, null],
      ],
    );
    out = "";
    await leasesCommand(listing, { output: "table", svgFile: undefined }, (t) => (out += t));
    assert.match(out, /^kube · network 10\.244\.0\.0\/16 · backend vxlan · 2 lease\(s\)\n/);
    assert.match(
      out,
      /10\.244\.2\.0\/24 +172\.31\.0\.2 +vxlan +02:00:00:00:00:02 +- \(node\) +weft or flanneld/,
    );
  });
});
