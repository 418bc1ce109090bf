/**
 * A 3-member etcd cluster in the lab: each member in its own namespace on the fabric bridge (172.31.1.N),
 * so one member's peer links can be cut while its clients still reach it, as when a member is partitioned
 * from the others but not from the hosts.
 */
import { join } from "node:path";
import type { Lab, LabProcess } from "./lab.js";
import { sleep } from "./weft-cluster.js";

const ETCD_BINARY = "/usr/bin/etcd";
const START_TIMEOUT_MS = 30_000;
export const CLIENT_PORT = 2379;
export const PEER_PORT = 2380;

export interface EtcdMember {
  /** m1, m2, ... */
  readonly name: string;
  readonly namespace: string;
  readonly ip: string;
  readonly clientUrl: string;
  readonly process: LabProcess;
}

export interface EtcdClusterOptions {
  readonly size?: number;
  /**
   * etcd's --heartbeat-interval and --election-timeout. A member ends watches that require a leader once
   * it has had none for three election timeouts, so this sets how soon a cut-off member lets go.
   */
  readonly heartbeatMs?: number;
  readonly electionMs?: number;
}

export class EtcdCluster {
  private constructor(
    private readonly lab: Lab,
    readonly members: readonly EtcdMember[],
  ) {}

  /** Starts the members together and waits until every one is healthy. */
  static async start(lab: Lab, options: EtcdClusterOptions = {}): Promise<EtcdCluster> {
    const size = options.size ?? 3;
    const ips = Array.from({ length: size }, (_, i) => `172.31.1.${i + 1}`);
    const initialCluster = ips.map((ip, i) => `m${i + 1}=http://${ip}:${PEER_PORT}`).join(",");
    const env: Record<string, string> = process.arch === "arm64" ? { ETCD_UNSUPPORTED_ARCH: "arm64" } : {};
    const members: EtcdMember[] = [];
    for (const [i, ip] of ips.entries()) {
      const name = `m${i + 1}`;
      const namespace = await lab.addFabricNode(name, ip);
      const clientUrl = `http://${ip}:${CLIENT_PORT}`;
      const argv = [
        ETCD_BINARY,
        `--name=${name}`,
        `--data-dir=${join(lab.tempDir, `etcd-${name}`)}`,
        `--listen-client-urls=${clientUrl}`,
        `--advertise-client-urls=${clientUrl}`,
        `--listen-peer-urls=http://${ip}:${PEER_PORT}`,
        `--initial-advertise-peer-urls=http://${ip}:${PEER_PORT}`,
        `--initial-cluster=${initialCluster}`,
        `--initial-cluster-token=${lab.name}`,
        "--initial-cluster-state=new",
        `--heartbeat-interval=${options.heartbeatMs ?? 100}`,
        `--election-timeout=${options.electionMs ?? 1000}`,
      ];
      const process = await lab.spawn(namespace, argv, { env });
      members.push({ name, namespace, ip, clientUrl, process });
    }
    const cluster = new EtcdCluster(lab, members);
    await cluster.waitHealthy();
    return cluster;
  }

  /** Every member's client URL, comma-separated, in member order (as --etcd-endpoints takes them). */
  endpoints(first?: EtcdMember): string {
    const ordered = first ? [first, ...this.members.filter((m) => m !== first)] : this.members;
    return ordered.map((m) => m.clientUrl).join(",");
  }

  member(name: string): EtcdMember {
    const member = this.members.find((m) => m.name === name);
    if (!member) throw new Error(`no etcd member ${name}`);
    return member;
  }

  /** etcdctl (API v3) against one member only, from the fabric; resolves with stdout. */
  etcdctl(member: EtcdMember, args: readonly string[], timeoutMs = 10_000): Promise<string> {
    return this.lab.run(
      this.lab.fabric,
      ["etcdctl", `--endpoints=${member.clientUrl}`, "--dial-timeout=2s", "--command-timeout=5s", ...args],
      { timeoutMs, env: { ETCDCTL_API: "3" } },
    );
  }

  /** The member that leads by its own endpoint status, asking only `among` (default: all). */
  async leader(among: readonly EtcdMember[] = this.members): Promise<EtcdMember | undefined> {
    for (const member of among) {
      // "http://172.31.1.1:2379, 8e9e05c52164694d, 3.4.23, 20 kB, true, false, 2, 8, 8, "
      const line = await this.etcdctl(member, ["endpoint", "status", "-w", "simple"]).catch(() => "");
      if (line.split(",")[4]?.trim() === "true") return member;
    }
    return undefined;
  }

  /** Makes `member` the leader (leads: true) or a follower (false), moving leadership if needed. */
  async setRole(member: EtcdMember, leads: boolean): Promise<void> {
    const deadline = Date.now() + 15_000;
    for (;;) {
      const leader = await this.leader();
      if (leader !== undefined && (leader === member) === leads) return;
      if (Date.now() > deadline)
        throw new Error(`could not make ${member.name} ${leads ? "the leader" : "a follower"}`);
      if (leader) {
        const target = leads ? member : this.members.find((m) => m !== member)!;
        await this.etcdctl(leader, ["move-leader", await this.memberId(target)]).catch(() => "");
      }
      await sleep(200);
    }
  }

  /**
   * Cuts `member` off from the others: its peer traffic (port 2380, both ways) is dropped in its own
   * namespace. Clients still reach it on 2379.
   */
  async cutPeers(member: EtcdMember): Promise<void> {
    const rules = [
      "*filter",
      `-A INPUT -p tcp --dport ${PEER_PORT} -j DROP`,
      `-A INPUT -p tcp --sport ${PEER_PORT} -j DROP`,
      `-A OUTPUT -p tcp --dport ${PEER_PORT} -j DROP`,
      `-A OUTPUT -p tcp --sport ${PEER_PORT} -j DROP`,
      "COMMIT",
      "",
    ].join("\n");
    await this.lab.run(member.namespace, ["iptables-restore", "--noflush"], { input: rules });
  }

  /** Waits until one of `members` leads (after a cut, the side with quorum elects one). */
  async waitForLeader(members: readonly EtcdMember[], timeoutMs = 10_000): Promise<EtcdMember> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const leader = await this.leader(members);
      if (leader) return leader;
      if (Date.now() > deadline) {
        throw new Error(`none of ${members.map((m) => m.name).join(", ")} leads after ${timeoutMs} ms`);
      }
      await sleep(100);
    }
  }

  private async memberId(member: EtcdMember): Promise<string> {
    const line = await this.etcdctl(member, ["endpoint", "status", "-w", "simple"]);
    const id = line.split(",")[1]?.trim();
    if (!id || !/^[0-9a-f]+$/.test(id)) throw new Error(`no member ID in ${JSON.stringify(line)}`);
    return id;
  }

  private async waitHealthy(): Promise<void> {
    const deadline = Date.now() + START_TIMEOUT_MS;
    for (;;) {
      for (const member of this.members) {
        if (!member.process.running) {
          throw new Error(
            `etcd ${member.name} exited while starting:\n${member.process.output().slice(-3000)}`,
          );
        }
      }
      const healthy = await Promise.all(
        this.members.map((m) =>
          this.etcdctl(m, ["endpoint", "health"], 5_000).then(
            () => true,
            () => false,
          ),
        ),
      );
      if (healthy.every(Boolean)) return;
      if (Date.now() > deadline) {
        const logs = this.members.map((m) => `${m.name}:\n${m.process.output().slice(-1500)}`).join("\n");
        throw new Error(`etcd cluster not healthy within ${START_TIMEOUT_MS} ms\n${logs}`);
      }
      await sleep(200);
    }
  }
}
