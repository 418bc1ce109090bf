/**
 * A 3-member etcd cluster, and the member both weftds use cut off from the other two (its peer links
 * dropped, its clients still connected): weftd must notice that member has no leader and move to another,
 * or a lease put through a healthy member never reaches it (the watch on the cut-off member stays silent).
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { EtcdCluster } from "./etcd-cluster.js";
import type { Lab, LabHost } from "./lab.js";
import { withLab } from "./lab.js";
import {
  addPods,
  PREFIX,
  routeDestinations,
  VXLAN,
  waitFor,
  waitForFullMesh,
  waitForLeases,
} from "./weft-cluster.js";

const PROGRAM_WITHIN_MS = 5_000;
// A lease of a host that does not exist: nothing is ever sent to it, only routes and FDB entries made.
const PEER_MAC = "9a:00:00:00:00:09";
const PEER_IP = "172.31.0.9";
const PEER_VALUE = `{"PublicIP":"${PEER_IP}","PublicIPv6":null,"BackendType":"vxlan","BackendData":{"VNI":1,"VtepMAC":"${PEER_MAC}"}}`;

async function programmed(lab: Lab, host: LabHost, subnet: string): Promise<boolean> {
  if (!(await routeDestinations(lab, host)).includes(subnet)) return false;
  const fdb = await lab.run(host, ["bridge", "fdb", "show", "dev", "flannel.1"]);
  return fdb.includes(`${PEER_MAC} dst ${PEER_IP}`);
}

/** Cuts off the member both weftds use, a follower or the leader, and puts a lease through another. */
async function cutOffMember(leads: boolean): Promise<void> {
  await withLab({ hosts: 2, tag: "quorum" }, async (lab) => {
    // etcd ends watches that need a leader after three election timeouts without one: 500 ms keeps
    // that part (about 2 s) well inside the 5 s, as it is etcd's, not weft's.
    const cluster = await EtcdCluster.start(lab, { heartbeatMs: 50, electionMs: 500 });
    const [cutOff, healthy] = [cluster.member("m1"), cluster.member("m2")];
    await cluster.setRole(cutOff, leads);
    await cluster.etcdctl(healthy, ["put", `${PREFIX}/config`, VXLAN]);
    const endpoints = `--etcd-endpoints=${cluster.endpoints(cutOff)}`;
    const weftds = await Promise.all(lab.hosts.map((h) => lab.startWeftd(h, [endpoints])));
    const leases = await waitForLeases(lab, weftds, 15_000);
    await waitForFullMesh(lab, leases, 15_000, weftds);
    // A subnet neither weftd took.
    const peerSubnet = ["10.244.250.0/24", "10.244.251.0/24"].find((s) =>
      leases.every((l) => l.subnet !== s),
    )!;
    const peerKey = peerSubnet.replace("/", "-");
    const pods = await addPods(lab, leases);

    // 60 pings over 12 s from host 1's pod to host 2's, across the cut.
    const ping = await lab.spawn(lab.host(1), [
      "ping",
      "-n",
      "-i",
      "0.2",
      "-c",
      "60",
      "-W",
      "1",
      "-w",
      "30",
      "-I",
      pods[0]!,
      pods[1]!,
    ]);
    await cluster.cutPeers(cutOff);
    // A put forwarded to a leader just cut off is lost inside etcd: the writer waits for the healthy
    // members to lead (at once for a cut-off follower, after an election for a cut-off leader).
    await cluster.waitForLeader(cluster.members.filter((m) => m !== cutOff));
    const putAt = Date.now();
    await cluster.etcdctl(healthy, ["put", `${PREFIX}/subnets/${peerKey}`, PEER_VALUE]);
    for (const [i, host] of lab.hosts.entries()) {
      const left = PROGRAM_WITHIN_MS - (Date.now() - putAt);
      await waitFor(
        `${host.name} to program ${peerKey}`,
        () => programmed(lab, host, peerSubnet),
        left,
      ).catch((err: Error) => {
        throw new Error(`${err.message}\nweftd log:\n${weftds[i]!.output()}`);
      });
    }
    const tookMs = Date.now() - putAt;
    assert.ok(tookMs <= PROGRAM_WITHIN_MS, `programmed on both hosts ${tookMs} ms after the put`);

    // The cut was real: the member the weftds used never saw the put.
    const seenByCutOff = await cluster.etcdctl(cutOff, [
      "get",
      "--consistency=s",
      "--print-value-only",
      `${PREFIX}/subnets/${peerKey}`,
    ]);
    assert.equal(seenByCutOff.trim(), "", "the cut-off member has not got the lease");
    for (const w of weftds) {
      assert.match(w.output(), new RegExp(`etcd at ${cutOff.clientUrl}: Watch/Watch: etcdserver: no leader`));
      assert.ok(w.running, `weftd still runs:\n${w.output()}`);
    }

    const { code } = await ping.exited;
    const summary = /(\d+) packets transmitted, (\d+) received/.exec(ping.output());
    assert.ok(summary, ping.output());
    assert.equal(summary[2], summary[1], `no ping lost across the cut (exit ${code}):\n${ping.output()}`);
    const role = leads ? "leader" : "follower";
    console.log(
      `cut-off ${role}: programmed on both hosts ${tookMs} ms after the put; no ping lost of ${summary[1]}`,
    );
  });
}

describe("weftd with a 3-member etcd", { timeout: 240_000 }, () => {
  it("moves off a follower cut off from the others and programs a lease put elsewhere within 5 s", () =>
    cutOffMember(false));
  it("moves off the leader cut off from the others and programs a lease put elsewhere within 5 s", () =>
    cutOffMember(true));
});
