/**
 * Client/server mode (flanneld v0.7's --listen / --remote): a weftd server in the fabric namespace holds
 * the etcd connection, three weftd clients on vxlan get their leases through it and reach each other;
 * the server restarts under them; TLS with client certificates.
 */
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { describe, it } from "node:test";
import { readReference } from "../helpers/reference.js";
import { wireMessages } from "../helpers/wire-transcript.js";
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

/** A curl -i answer with what differs by run blanked: dates, cursors, etcd indexes, and each lease. */
function normalize(answer: string): string {
  const [head, ...rest] = answer.replace(/\r\n/g, "\n").split("\n\n");
  const body = rest.join("\n\n").replace(/\(curl rc=0\)$/, "");
  const headers = head!
    .split("\n")
    // Node's HTTP/1.1 server always names keep-alive; Go's leaves it implicit.
    .filter((l) => !/^(Connection|Keep-Alive):/.test(l))
    .map((l) => l.replace(/^Date: .*/, "Date: <date>"))
    // Cursors and etcd indexes differ in digits: the length is checked against the body instead.
    .map((l) => {
      if (!l.startsWith("Content-Length: ")) return l;
      assert.equal(Number(l.slice(16)), Buffer.byteLength(body), `Content-Length of ${head}`);
      return "Content-Length: <n>";
    });
  const blanked = body
    .replace(/\{"Subnet":.*?"Expiration":"[^"]*"\}/g, "<lease>")
    .replace(/"cursor":"\d+"/g, '"cursor":"<n>"')
    .replace(/\) \[\d+\]$/, ") [<n>]");
  return `${headers.join("\n")}\n\n${blanked.replace(/\n$/, "")}`;
}

describe("weftd client/server mode", { timeout: 240_000 }, () => {
  it("answers the requests of the v0.7 reference as flanneld v0.7.0's server did", async () => {
    const reference = readReference("flanneld-v0.7.0", "client-server.txt");
    await withLab({ hosts: 3, tag: "remoteref" }, async (lab) => {
      await lab.startEtcd();
      // As in the reference, unrelated writes first, so that next=5 is older than anything the server saw.
      for (let i = 0; i < 6; i++) await lab.etcdctl(["put", `/weft-junk/k${i}`, "x"]);
      await lab.etcdctl(["put", `${PREFIX}/config`, '{"Network":"10.66.0.0/16","Backend":{"Type":"vxlan"}}']);
      const server = await startServer(lab, ["-v=1"]);
      await server.waitForOutput(/running as server/, 10_000);
      const clients = await Promise.all(
        lab.hosts.slice(0, 2).map((h) => lab.startWeftd(h, [`--remote=${SERVER}`])),
      );
      const [h1lease] = await waitForLeases(lab, clients, 20_000, lab.hosts.slice(0, 2));
      const h1key = `${h1lease!.base}.0-24`;
      let compared = 0;
      for (const [heading, expected] of reference) {
        const m = /^curl -s -i http:\/\/172\.29\.0\.254:8888(\S+)/.exec(heading);
        if (!m) continue;
        const path = m[1]!.replace("10.66.49.0-24", h1key);
        const url = `http://${SERVER}${path}`;
        const out = await lab.run(lab.host(3), ["curl", "-s", "-i", "-m", "5", url]);
        assert.equal(normalize(out), normalize(expected), `curl ${path}`);
        compared++;
      }
      assert.equal(compared, 9, "every curl of the reference was compared");

      // A renewal as v0.7's client sends it (PUT with the lease): a new expiration, a new etcd lease.
      // Lease IDs exceed 2^53: read as text.
      const leaseIdOf = async () =>
        /"lease":(\d+)/.exec(await lab.etcdctl(["get", `${SUBNETS}${h1key}`, "-w", "json"]))?.[1];
      const before = await leaseIdOf();
      const current = JSON.parse(
        await lab.run(lab.host(3), ["curl", "-s", "-m", "5", `http://${SERVER}/v1/_/leases/${h1key}`]),
      ) as { snapshot: Array<Record<string, unknown>> };
      const sent = JSON.stringify(current.snapshot[0]);
      const renewed = await lab.run(lab.host(3), [
        "curl",
        "-s",
        "-m",
        "5",
        "-X",
        "PUT",
        "-H",
        "Content-Type: application/json",
        "-d",
        sent,
        `http://${SERVER}/v1/_/leases/${h1key}`,
      ]);
      const answer = JSON.parse(renewed) as { Subnet: string; Attrs: unknown; Expiration: string };
      assert.equal(answer.Subnet, `${h1lease!.base}.0/24`);
      assert.deepEqual(answer.Attrs, current.snapshot[0]!.Attrs);
      assert.ok(Date.parse(answer.Expiration) > Date.now() + 23 * 3600_000, answer.Expiration);
      const after = await leaseIdOf();
      assert.ok(
        before && after && after !== before,
        `renewed under a new etcd lease (${before} -> ${after})`,
      );

      // What weftd's client asked is what flanneld v0.7.0's client h1 asked (its renewal after 60 s apart).
      const shape = (line: string) =>
        line.replace(/\/leases\/[0-9.]+-\d+/, "/leases/<subnet>").replace(/next=\d+/, "next=<n>");
      const v07 = wireMessages("client-server-wire.txt")
        .filter((m) => m.from === "client" && m.source === "172.29.0.1" && !m.startLine.startsWith("PUT"))
        .map((m) => shape(m.startLine.replace(/ HTTP\/1\.1$/, "")));
      const ours = [
        ...server.output().matchAll(/\] (GET|POST|PUT|DELETE) (\S+) - 200 \(172\.31\.0\.1\)$/gm),
      ].map((m) => shape(`${m[1]} ${m[2]}`));
      assert.deepEqual([...new Set(ours)].sort(), [...new Set(v07)].sort());

      // The networks' long poll: a network whose config appears is announced as v0.7 announced cyan.
      const list = JSON.parse(
        await lab.run(lab.host(3), ["curl", "-s", "-m", "5", `http://${SERVER}/v1/`]),
      ) as {
        cursor: string;
      };
      const poll = lab.run(lab.host(3), [
        "curl",
        "-s",
        "-m",
        "10",
        `http://${SERVER}/v1/?next=${list.cursor}`,
      ]);
      await lab.etcdctl([
        "put",
        `${PREFIX}/cyan/config`,
        '{"Network":"10.60.0.0/16","Backend":{"Type":"vxlan","VNI":6}}',
      ]);
      assert.match(
        await poll,
        /^\{"events":\[\{"type":"added","lease":\{"Subnet":"0\.0\.0\.0\/0","Attrs":\{"PublicIP":"0\.0\.0\.0"\},"Expiration":"0001-01-01T00:00:00Z"\},"network":"cyan"\}\],"snapshot":null,"cursor":"\d+"\}\n$/,
      );
    });
  });

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
      // ONE etcd watch serves every client's long polls (etcd counts its watchers).
      const metrics = await lab.run(lab.fabric, ["curl", "-s", "-m", "5", `${lab.etcdEndpoint}/metrics`]);
      const watchers = Number(/^etcd_debugging_mvcc_watcher_total (\d+)/m.exec(metrics)?.[1]);
      assert.equal(watchers, 1, "etcd watchers with 3 clients long-polling");
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

  it("--listen=fd:// serves on the socket systemd passes (socket activation)", async () => {
    await withLab({ hosts: 1, tag: "remotefd" }, async (lab) => {
      await lab.startEtcd();
      await lab.etcdctl(["put", `${PREFIX}/config`, VXLAN]);
      const server = await lab.spawn(lab.fabric, [
        "systemd-socket-activate",
        "-l",
        SERVER,
        ...weftdCommand(),
        "--listen=fd://",
        `--etcd-endpoints=${lab.etcdEndpoint}`,
      ]);
      const answer = await lab.run(lab.host(1), ["curl", "-s", "-m", "10", `http://${SERVER}/v1/_/config`]);
      assert.equal(
        answer,
        '{"Network":"10.244.0.0/16","SubnetMin":"10.244.1.0","SubnetMax":"10.244.255.0","SubnetLen":24,"Backend":{"Type":"vxlan"}}\n',
      );
      await server.waitForOutput(/running as server on the socket from systemd \(fd 3\)/, 5_000);
    });
  });

  it("multi-network through the server: --remote --networks=blue,green, one lease and .env per network", async () => {
    await withLab({ hosts: 2, tag: "remotemn" }, async (lab) => {
      await lab.startEtcd();
      await lab.etcdctl([
        "put",
        `${PREFIX}/blue/config`,
        '{"Network":"10.10.0.0/16","Backend":{"Type":"vxlan","VNI":2}}',
      ]);
      await lab.etcdctl([
        "put",
        `${PREFIX}/green/config`,
        '{"Network":"10.20.0.0/16","Backend":{"Type":"host-gw"}}',
      ]);
      const server = await startServer(lab);
      await server.waitForOutput(/running as server/, 10_000);
      const clients = await Promise.all(
        lab.hosts.map((h) =>
          lab.startWeftd(h, [
            `--remote=${SERVER}`,
            "--networks=blue,green",
            `--subnet-dir=${join(lab.hostDir(h), "networks")}`,
          ]),
        ),
      );
      for (const [i, host] of lab.hosts.entries()) {
        for (const network of ["blue", "green"]) {
          await waitFor(
            `${host.name}'s ${network}.env`,
            async () => {
              if (!clients[i]!.running) throw new Error(clients[i]!.output());
              return existsSync(join(lab.hostDir(host), "networks", `${network}.env`));
            },
            20_000,
          );
        }
      }
      for (const [network, net] of [
        ["blue", "10.10."],
        ["green", "10.20."],
      ] as const) {
        const leases = await lab.etcdGetPrefix(`${PREFIX}/${network}/subnets/`);
        assert.equal(leases.length, 2, `${network}: a lease per host through the server`);
        assert.ok(leases.every((kv) => kv.key.includes(`/subnets/${net}`)));
      }
      // Each network's peers: blue's over flannel.2, green's via the peer host (host-gw).
      const blue = await lab.etcdGetPrefix(`${PREFIX}/blue/subnets/`);
      const green = await lab.etcdGetPrefix(`${PREFIX}/green/subnets/`);
      const peerOf = (kvs: typeof blue, ip: string) =>
        kvs
          .find((kv) => (JSON.parse(kv.value) as { PublicIP: string }).PublicIP === ip)!
          .key.split("/")
          .pop()!
          .replace("-", "/");
      const h1 = lab.host(1);
      await waitFor(
        "h1's routes to h2's blue and green subnets",
        async () => {
          const routes = await routeDestinations(lab, h1);
          return routes.includes(peerOf(blue, "172.31.0.2")) && routes.includes(peerOf(green, "172.31.0.2"));
        },
        15_000,
      );
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
      assert.ok(bad.running, "the refused client keeps trying");
      await bad.waitForOutput(
        /waiting for the network config from https:\/\/172\.31\.0\.254:8888\/v1\/_: .*retrying every second/,
        10_000,
      );
      await server.waitForOutput(/TLS handshake failed/, 5_000);
      assert.equal(await readLease(lab, h2!), undefined, "no lease without a client certificate");
      // Plain HTTP to the TLS port gets Go's answer, so a client without TLS flags says what is wrong.
      await bad.stop();
      const plain = await lab.startWeftd(h2!, [`--remote=${SERVER}`]);
      await plain.waitForOutput(
        /waiting for the network config from http:\/\/172\.31\.0\.254:8888\/v1\/_: 400 Bad Request: Client sent an HTTP request to an HTTPS server\.; retrying every second/,
        10_000,
      );
      const raw = await lab.run(h2!, ["curl", "-s", "-i", "-m", "5", `http://${SERVER}/v1/_/config`]);
      assert.equal(raw, "HTTP/1.0 400 Bad Request\r\n\r\nClient sent an HTTP request to an HTTPS server.\n");
      assert.equal((await lab.etcdGetPrefix(SUBNETS)).length, 1);
    });
  });
});
