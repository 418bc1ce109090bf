/**
 * Client/server mode (flanneld v0.7's --listen / --remote): a weftd server in the fabric namespace holds
 * the etcd connection, three weftd clients on vxlan get their leases through it and reach each other;
 * the server restarts under them; TLS with client certificates.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { type Lab, type LabProcess, weftdCommand, withLab } from "./lab.js";
import { makePki } from "./lab-pki.js";
import {
  addPods,
  assertFullMeshPing,
  PREFIX,
  readLease,
  routeDestinations,
  VXLAN,
  waitFor,
  waitForFullMesh,
  waitForLeases,
} from "./weft-cluster.js";

const SUBNETS = `${PREFIX}/subnets/`;
const SERVER = "172.31.0.254:8888";

function startServer(lab: Lab, extra: readonly string[] = []): Promise<LabProcess> {
  return lab.spawn(lab.fabric, [
    ...weftdCommand(),
    `--listen=${SERVER}`,
    `--etcd-endpoints=${lab.etcdEndpoint}`,
    ...extra,
  ]);
}

describe("weftd client/server mode", { timeout: 240_000 }, () => {
  it("3 clients lease through the server, reach each other, and survive a server restart", async () => {
    await withLab({ hosts: 3, tag: "remote" }, async (lab) => {
      await lab.startEtcd();
      await lab.etcdctl(["put", `${PREFIX}/config`, VXLAN]);
      let server = await startServer(lab);
      await server.waitForOutput(/running as server/, 10_000);
      const clients = await Promise.all(lab.hosts.map((h) => lab.startWeftd(h, [`--remote=${SERVER}`])));
      const leases = await waitForLeases(lab, clients, 20_000);
      await waitForFullMesh(lab, leases, 20_000, clients);

      // The leases are in etcd, written by the server in weft's (flanneld's) form, one per client.
      const stored = await lab.etcdGetPrefix(SUBNETS);
      assert.equal(stored.length, 3);
      for (const [i, host] of lab.hosts.entries()) {
        const kv = stored.find((s) => s.key === `${SUBNETS}${leases[i]!.base}.0-24`);
        assert.ok(kv, `lease of ${host.name} in etcd`);
        const value = JSON.parse(kv.value) as { PublicIP: string; BackendType: string };
        assert.equal(value.PublicIP, host.ip);
        assert.equal(value.BackendType, "vxlan");
      }
      const pods = await addPods(lab, leases);
      await assertFullMeshPing(lab, pods);

      // Server down: clients wait with a clear line, keep their leases and datapath.
      await server.stop();
      await clients[0]!.waitForOutput(
        /watching leases from http:\/\/172\.31\.0\.254:8888\/v1\/_: .*ECONNREFUSED.*retrying every second/,
        10_000,
      );
      assert.ok(
        clients.every((c) => c.running),
        "clients keep running while the server is down",
      );
      server = await startServer(lab);
      await server.waitForOutput(/running as server/, 10_000);
      await clients[0]!.waitForOutput(/is reachable again/, 10_000);

      // A lease added after the restart reaches every client (the watch resumed).
      const newcomer = "10.244.250.0/24";
      await lab.etcdctl([
        "put",
        `${SUBNETS}10.244.250.0-24`,
        '{"PublicIP":"172.31.0.77","PublicIPv6":null,"BackendType":"vxlan","BackendData":{"VNI":1,"VtepMAC":"ee:11:22:33:44:55"}}',
      ]);
      for (const host of lab.hosts) {
        await waitFor(
          `route to ${newcomer} on ${host.name}`,
          async () => (await routeDestinations(lab, host)).includes(newcomer),
          15_000,
        );
      }
      for (const [i, host] of lab.hosts.entries()) {
        assert.deepEqual(await readLease(lab, host), leases[i], `${host.name} kept its lease`);
      }
      assert.equal((await lab.etcdGetPrefix(SUBNETS)).length, 4);
      await assertFullMeshPing(lab, pods);

      // Our lease revoked on the server: the client takes it again (the same subnet is free).
      await lab.etcdctl(["del", `${SUBNETS}${leases[1]!.base}.0-24`]);
      await clients[1]!.waitForOutput(/has been revoked; acquiring a lease again/, 10_000);
      await waitFor(
        "the revoked lease back in etcd",
        async () =>
          (await lab.etcdGetPrefix(SUBNETS)).some((kv) => kv.key === `${SUBNETS}${leases[1]!.base}.0-24`),
        10_000,
      );
      assert.ok(clients[1]!.running, clients[1]!.output());
    });
  });

  it("TLS: a client with a certificate gets a lease, a client without one is refused", async () => {
    await withLab({ hosts: 2, tag: "remotetls" }, async (lab) => {
      await lab.startEtcd();
      await lab.etcdctl(["put", `${PREFIX}/config`, VXLAN]);
      const pki = await makePki(lab.tempDir);
      const server = await startServer(lab, [
        `--remote-cafile=${pki.ca}`,
        `--remote-certfile=${pki.serverCert}`,
        `--remote-keyfile=${pki.serverKey}`,
      ]);
      await server.waitForOutput(/running as server .*client certificates required/, 10_000);
      const [h1, h2] = lab.hosts;
      const good = await lab.startWeftd(h1!, [
        `--remote=${SERVER}`,
        `--remote-cafile=${pki.ca}`,
        `--remote-certfile=${pki.clientCert}`,
        `--remote-keyfile=${pki.clientKey}`,
      ]);
      const bad = await lab.startWeftd(h2!, [`--remote=${SERVER}`, `--remote-cafile=${pki.ca}`]);
      const [lease] = await waitForLeases(lab, [good], 20_000, [h1!]);
      assert.ok(lease);
      await bad.waitForOutput(
        /waiting for the network config from https:\/\/172\.31\.0\.254:8888\/v1\/_: .*retrying every second/,
        10_000,
      );
      await server.waitForOutput(/TLS handshake failed/, 5_000);
      assert.equal(await readLease(lab, h2!), undefined, "no lease without a client certificate");
      assert.ok(bad.running, "the refused client keeps trying");
      assert.equal((await lab.etcdGetPrefix(SUBNETS)).length, 1);
    });
  });
});
