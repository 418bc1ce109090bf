/**
 * The udp backend, wire-compatible with flanneld's: packets for peers' subnets reach flannel0 (a TUN)
 * through the route for the whole Network; the native forwarder sends each one as the whole payload of
 * a UDP datagram to the peer's PublicIP:Port and writes what arrives on the port to flannel0. Kinds:
 * the Network route (kernel) and the forwarding table (udp-peer, in the forwarder).
 * Lifecycle: setUp opens flannel0; attachLease gives it its address (and re-makes it when it was
 * deleted); start runs the forwarder; close stops it, and flannel0 goes with it, as when flanneld exits.
 */
import { ConfigError } from "../../config/network-config.js";
import { formatIP } from "../../ip/ip-address.js";
import { networkAddress } from "../../ip/ip-network.js";
import { addressOnlyAttrs, type Lease } from "../../lease/lease.js";
import type { AnyStateKind } from "../../reconcile/state-kind.js";
import { UserError } from "../../user-error.js";
import type { Backend, BackendContext, BackendRegistration, BackendSetUp, DesiredPeers } from "../backend.js";
import { ensureVtepAddress } from "../vxlan/vxlan-device.js";
import { type ForwarderStats, tunAddon } from "./tun-addon.js";
import { parseUdpConfig, UDP_DEVICE, type UdpConfig, udpMtu } from "./udp-config.js";
import { udpForwardingTable, udpNetworkRoute } from "./udp-desired.js";
import { configureUdpDevice, openUdpDevice } from "./udp-device.js";
import { UdpForwarder } from "./udp-forwarder.js";
import { udpMetricLines } from "./udp-metrics.js";
import { udpPeerKind } from "./udp-peer-kind.js";

const DROP_REPORT_MS = 30_000;
// Not "malformed": the kernel's own IPv6 link-local traffic on flannel0 lands there, which is expected.
type DropCounter = "noRoute" | "ttlExpired" | "sendErrors" | "tunWriteErrors";
const DROP_COUNTERS: readonly [DropCounter, string][] = [
  ["noRoute", "to subnets no peer holds (answered with ICMP net-unreachable)"],
  ["ttlExpired", "whose TTL ran out"],
  ["sendErrors", "that could not be sent to a peer"],
  ["tunWriteErrors", "that could not be written to flannel0"],
];

export const udpRegistration: BackendRegistration = {
  type: "udp",
  configure(config) {
    const settings = parseUdpConfig(config.backend);
    if (!config.ipv4) {
      throw new ConfigError("the udp backend carries IPv4 only: set Network and leave EnableIPv4 on");
    }
    return (context) => new UdpBackend(context, settings);
  },
};

export class UdpBackend implements Backend {
  readonly type = "udp";
  readonly kinds: readonly AnyStateKind[];
  readonly ownedDevices = [UDP_DEVICE];
  readonly routeDevices = [UDP_DEVICE];
  private readonly mtu: number;
  /** flannel0's fd while no forwarder holds it (after setUp, before start). */
  private tunFd: number | undefined;
  private forwarder: UdpForwarder | undefined;
  private started = false;
  private reportTimer: NodeJS.Timeout | undefined;
  private reported: ForwarderStats | undefined;
  private attaching: Promise<void> = Promise.resolve();

  constructor(
    private readonly context: BackendContext,
    private readonly settings: UdpConfig,
  ) {
    this.kinds = [context.kernel.route, udpPeerKind(() => this.forwarder)];
    this.mtu = udpMtu(context.extIface.mtu);
  }

  async setUp(): Promise<BackendSetUp> {
    const { config, extIface: ext, log, warn } = this.context;
    if (!("type" in lowerKeys(config.backend))) log("no Backend given: using udp, flannel's default");
    if (config.ipv6) warn("the udp backend carries IPv4 only; IPv6Network is leased but not routed");
    if (!ext.ipv4) {
      throw new UserError(
        `the external interface ${ext.name} has no IPv4 address for the udp backend to bind to`,
        "choose another interface with --iface",
      );
    }
    this.tunFd = await openUdpDevice(this.context.netlink, UDP_DEVICE, log);
    await configureUdpDevice(this.context.netlink, UDP_DEVICE, this.mtu);
    log(`opened TUN device ${UDP_DEVICE} (MTU ${this.mtu}, UDP port ${this.settings.port})`);
    return {
      // flanneld's udp lease carries only the PublicIP: no BackendType, no BackendData.
      attrs: addressOnlyAttrs(ext.publicIP),
      mtu: this.mtu,
    };
  }

  /** Serialized: a device repair and a re-acquired lease may both ask at once. */
  attachLease(lease: Lease): Promise<void> {
    const next = this.attaching.then(() => this.attach(lease));
    this.attaching = next.catch(() => undefined);
    return next;
  }

  private async attach(lease: Lease): Promise<void> {
    const { netlink, log } = this.context;
    const present = await netlink.linkFind(UDP_DEVICE);
    // The ICMP source is fixed when the forwarder starts; a new subnet needs a new forwarder.
    const moved = this.forwarder !== undefined && this.forwarder.options.tunAddress !== tunAddressOf(lease);
    if (!present || moved || this.forwarder?.stats()?.tunLost) {
      // Deleted under us (or our subnet changed): the old fd and its forwarder go; make flannel0 again.
      this.stopForwarder();
      this.tunFd = await openUdpDevice(netlink, UDP_DEVICE, log);
      log(`re-created TUN device ${UDP_DEVICE}`);
    }
    const link = await configureUdpDevice(netlink, UDP_DEVICE, this.mtu);
    if (lease.subnet) await ensureVtepAddress(netlink, link.index, lease.subnet);
    if (this.started && !this.forwarder) this.startForwarder(lease);
  }

  async start(lease: Lease): Promise<void> {
    this.started = true;
    if (!this.forwarder) this.startForwarder(lease);
    this.reportTimer = setInterval(() => this.reportDrops(), DROP_REPORT_MS);
    this.reportTimer.unref();
  }

  /** Logs what the forwarder dropped since the last report, at most once per interval. */
  private reportDrops(): void {
    const now = this.forwarder?.stats();
    if (!now) return;
    const before = this.reported;
    this.reported = now;
    // A new forwarder (flannel0 re-made) starts from zero.
    const grew = (key: DropCounter) => now[key] - (before && before[key] <= now[key] ? before[key] : 0);
    const parts = DROP_COUNTERS.filter(([key]) => grew(key) > 0).map(([key, what]) => `${grew(key)} ${what}`);
    if (parts.length === 0) return;
    const last = now.lastError ? ` (last error ${now.lastError})` : "";
    this.context.warn(
      `udp forwarder dropped packets in the last ${DROP_REPORT_MS / 1000} s: ${parts.join(", ")}${last}`,
    );
  }

  private startForwarder(lease: Lease): void {
    const fd = this.tunFd;
    if (fd === undefined) throw new Error(`${UDP_DEVICE} is not open`);
    this.tunFd = undefined;
    const bindAddress = this.context.extIface.ipv4!;
    try {
      this.forwarder = UdpForwarder.start(fd, {
        bindAddress,
        port: this.settings.port,
        tunAddress: tunAddressOf(lease),
      });
    } catch (err) {
      if ((err as { code?: string }).code === "EADDRINUSE") {
        throw new UserError(
          `UDP port ${this.settings.port} on ${bindAddress} is in use`,
          "stop flanneld or whatever listens there, or choose another Backend.Port for the whole network",
        );
      }
      throw err;
    }
    this.context.log(`forwarding on UDP ${bindAddress}:${this.settings.port}`);
  }

  private stopForwarder(): void {
    this.forwarder?.stop();
    this.forwarder = undefined;
    if (this.tunFd !== undefined) tunAddon().closeFd(this.tunFd);
    this.tunFd = undefined;
  }

  desiredState(own: Lease, peers: Iterable<Lease>): DesiredPeers {
    const network = this.context.config.ipv4!.network;
    const table = udpForwardingTable(own, peers, this.settings.port);
    return {
      state: { route: [udpNetworkRoute(network, UDP_DEVICE)], "udp-peer": table.entries },
      problems: table.problems,
    };
  }

  /** The forwarder's counters as /metrics lines (the daemon has no hook for backend metrics yet). */
  metricLines(): string[] {
    return udpMetricLines(this.forwarder?.stats());
  }

  async close(): Promise<void> {
    // The datapath is this process: flannel0 goes with the fd, as when flanneld exits.
    this.started = false;
    clearInterval(this.reportTimer);
    this.stopForwarder();
  }
}

/** flannel0's address, the subnet's .0: the source of our ICMP replies. */
function tunAddressOf(lease: Lease): string {
  return lease.subnet ? formatIP(networkAddress(lease.subnet)) : "0.0.0.0";
}

function lowerKeys(object: Readonly<Record<string, unknown>>): Record<string, unknown> {
  return Object.fromEntries(Object.entries(object).map(([k, v]) => [k.toLowerCase(), v]));
}
