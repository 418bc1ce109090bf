/**
 * The wireguard backend, lease- and wire-compatible with flanneld's (pkg/backend/wireguard): devices
 * flannel-wg (and flannel-wg-v6 in Mode separate), the key in /run/flannel/wgkey ($WIREGUARD_KEY_FILE),
 * BackendData {"PublicKey","Port"}, the Network routed through the device, one WireGuard peer per lease.
 * The datapath is the kernel's WireGuard (generic netlink) where the kernel has it, else userspace
 * WireGuard: wireguard-go, which weftd starts, supervises and configures over its UAPI socket, so the
 * backend works on kernels without the module (flannel cannot). Kinds: route (kernel), wg-device and
 * wg-peer (read from and written to the device through either datapath).
 * Lifecycle: setUp loads the key and makes the devices; attachLease gives them MTU, address and up
 * (and starts wireguard-go again after it died); close leaves the devices (and wireguard-go) running.
 */

import { ConfigError } from "../../config/network-config.js";
import { formatIP } from "../../ip/ip-address.js";
import { networkAddress } from "../../ip/ip-network.js";
import type { Lease } from "../../lease/lease.js";
import type { AnyStateKind } from "../../reconcile/state-kind.js";
import type {
  Backend,
  BackendContext,
  BackendRegistration,
  BackendSetUp,
  DesiredPeers,
  ExpectedDevice,
} from "../backend.js";
import { ensureVtepAddress } from "../vxlan/vxlan-device.js";
import {
  parseWireguardConfig,
  WG_DEVICE,
  WG_DEVICE_V6,
  WIREGUARD_OVERHEAD,
  type WireguardConfig,
  wireguardMtu,
} from "./wireguard-config.js";
import type { WireguardControl } from "./wireguard-control.js";
import { makeWireguardLeaseData, type WireguardPlan, wireguardDesiredState } from "./wireguard-desired.js";
import { wgDeviceKind } from "./wireguard-device-kind.js";
import { WireguardDevices } from "./wireguard-devices.js";
import { KernelWireguard } from "./wireguard-kernel.js";
import { DEFAULT_KEY_FILE, encodeKey, type KeyPair, loadOrCreateKey } from "./wireguard-key.js";
import { PEER_SPREAD_MS, wgPeerKind } from "./wireguard-peer-kind.js";

export const wireguardRegistration: BackendRegistration = {
  type: "wireguard",
  configure(config) {
    const settings = parseWireguardConfig(config.backend);
    if (settings.mode === "ipv6" && !config.ipv6)
      throw new ConfigError(
        "Backend.Mode of the wireguard backend is ipv6, but the network has no IPv6Network",
      );
    if (settings.mode === "ipv4" && !config.ipv4)
      throw new ConfigError(
        "Backend.Mode of the wireguard backend is ipv4, but IPv4 is off (EnableIPv4 false)",
      );
    return (context) => new WireguardBackend(context, settings);
  },
  // flanneld writes BackendData only with IPv4 on, BackendV6Data only with IPv6 on.
  leaseRules: { v4: "with-data", v6: "with-data" },
};

export class WireguardBackend implements Backend {
  readonly type = "wireguard";
  readonly kinds: readonly AnyStateKind[];
  readonly ownedDevices: readonly string[];
  readonly routeDevices: readonly string[];
  private control: WireguardControl | undefined;
  private readonly mtu: number;
  private key: KeyPair | undefined;
  private plan: WireguardPlan | undefined;

  constructor(
    private readonly context: BackendContext,
    private readonly settings: WireguardConfig,
  ) {
    const { config } = context;
    const names: string[] = [];
    if (settings.mode === "separate") {
      if (config.ipv4) names.push(WG_DEVICE);
      if (config.ipv6) names.push(WG_DEVICE_V6);
    } else names.push(WG_DEVICE);
    this.ownedDevices = names;
    this.routeDevices = names;
    this.mtu = wireguardMtu(settings, context.extIface.mtu);
    const control = () => this.control;
    this.kinds = [context.kernel.route, wgDeviceKind(control), wgPeerKind(control, PEER_SPREAD_MS)];
  }

  private get keyFile(): string {
    return process.env.WIREGUARD_KEY_FILE || DEFAULT_KEY_FILE;
  }

  async setUp(): Promise<BackendSetUp> {
    const { config, extIface: ext, log } = this.context;
    const s = this.settings;
    this.key = await loadOrCreateKey(this.keyFile);
    const publicKey = encodeKey(this.key.publicKey);
    log(
      `${this.key.created ? "created" : "loaded"} the WireGuard key ${this.keyFile} (public key ${publicKey})`,
    );
    const single = s.mode !== "separate";
    this.plan = {
      mode: s.mode,
      ipv4: config.ipv4 && { device: WG_DEVICE, network: config.ipv4.network, listenPort: s.listenPort },
      ipv6: config.ipv6 && {
        device: single ? WG_DEVICE : WG_DEVICE_V6,
        network: config.ipv6.network,
        listenPort: single ? s.listenPort : s.listenPortV6,
      },
      privateKey: encodeKey(this.key.privateKey),
      publicKey,
      presharedKey: s.psk ? encodeKey(s.psk) : undefined,
      keepaliveSeconds: s.keepaliveSeconds,
      publicIP: ext.publicIP,
      publicIPv6: ext.publicIPv6,
    };
    this.control = await this.chooseDatapath();
    await this.control.ensureAll();
    log(`${this.control.datapath} runs ${this.ownedDevices.join(" and ")} (MTU ${this.mtu}, mode ${s.mode})`);
    return {
      attrs: {
        publicIP: config.ipv4 ? ext.publicIP : undefined,
        publicIPv6: config.ipv6 ? ext.publicIPv6 : undefined,
        backendType: "wireguard",
        // As flanneld: the IPv6 data names ListenPortV6 in every Mode.
        backendData: config.ipv4 ? makeWireguardLeaseData(publicKey, s.listenPort) : undefined,
        backendV6Data: config.ipv6 ? makeWireguardLeaseData(publicKey, s.listenPortV6) : undefined,
      },
      mtu: this.mtu,
    };
  }

  /**
   * wireguard-go when it already runs the device (adopted after a weftd restart), else the kernel's
   * WireGuard where the kernel makes wireguard devices, else wireguard-go (where flannel would fail).
   */
  private async chooseDatapath(): Promise<WireguardControl> {
    const { netlink, log, warn } = this.context;
    const userspace = new WireguardDevices(this.ownedDevices, netlink, log, warn);
    for (const name of this.ownedDevices) if (await userspace.get(name)) return userspace;
    if (await KernelWireguard.available(netlink, this.ownedDevices[0]!))
      return new KernelWireguard(this.ownedDevices, netlink, log);
    log("this kernel has no WireGuard (no wireguard device type); using wireguard-go");
    return userspace;
  }

  async attachLease(lease: Lease): Promise<void> {
    const { netlink } = this.context;
    await this.control!.ensureAll();
    for (const name of this.ownedDevices) {
      const link = await netlink.linkGet(name);
      if (link.mtu !== this.mtu) await netlink.linkSetMtu(link.index, this.mtu);
      const plan = this.plan!;
      if (lease.subnet && plan.ipv4?.device === name)
        await ensureVtepAddress(netlink, link.index, lease.subnet);
      if (lease.ipv6Subnet && plan.ipv6?.device === name)
        await ensureVtepAddress(netlink, link.index, lease.ipv6Subnet);
      if (!link.up) await netlink.linkSetUp(link.index);
    }
  }

  /** For `weft doctor`: the devices as attachLease leaves them (either datapath's device type). */
  expectedDevices(own: Lease): ExpectedDevice[] {
    const { config } = this.context;
    const single = this.settings.mode !== "separate";
    return this.ownedDevices.map((name) => {
      const subnets = [
        (name === WG_DEVICE && config.ipv4 && own.subnet) || undefined,
        ((name === WG_DEVICE_V6 || single) && config.ipv6 && own.ipv6Subnet) || undefined,
      ].filter((s) => s !== undefined);
      return {
        name,
        overhead: WIREGUARD_OVERHEAD,
        mtu: this.mtu,
        addresses: subnets.map((s) => `${formatIP(networkAddress(s))}/${s.family === 4 ? 32 : 128}`),
        publishedMac: undefined,
        differences: (link) => {
          const wrong: string[] = [];
          if (link.kind !== "tun" && link.kind !== "wireguard")
            wrong.push(
              `is a ${link.kind ?? "plain"} device, not wireguard-go's TUN or a kernel wireguard device`,
            );
          if (link.mtu !== this.mtu) wrong.push(`has MTU ${link.mtu}, not ${this.mtu}`);
          if (!link.up) wrong.push("is down");
          return wrong;
        },
      };
    });
  }

  desiredState(own: Lease, peers: Iterable<Lease>): DesiredPeers {
    if (!this.plan) return { state: {}, problems: [] };
    return wireguardDesiredState(this.plan, own, peers);
  }

  metricLines(): string[] {
    return [
      "# HELP weft_wireguard_go_starts_total wireguard-go processes this weftd started.",
      "# TYPE weft_wireguard_go_starts_total counter",
      `weft_wireguard_go_starts_total ${this.control instanceof WireguardDevices ? this.control.starts : 0}`,
    ];
  }

  async close(): Promise<void> {
    this.control?.close();
  }
}
