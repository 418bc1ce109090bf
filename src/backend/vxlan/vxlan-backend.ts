/** The vxlan backend: one device per enabled family, peers reached through VXLAN (or directly on our L2). */
import { formatIP } from "../../ip/ip-address.js";
import { networkAddress } from "../../ip/ip-network.js";
import type { Lease } from "../../lease/lease.js";
import type { RtNetlink } from "../../netlink/index.js";
import type { AnyStateKind } from "../../reconcile/state-kind.js";
import { UserError } from "../../user-error.js";
import type {
  Backend,
  BackendContext,
  BackendRegistration,
  BackendSetUp,
  DesiredPeers,
  ExpectedDevice,
} from "../backend.js";
import { PeerStateCache } from "../peer-state-cache.js";
import { makeVxlanBackendData, readVtepMac } from "./vxlan-backend-data.js";
import {
  parseVxlanConfig,
  type VxlanConfig,
  vxlanDeviceMtu,
  vxlanDeviceName,
  vxlanOverhead,
} from "./vxlan-config.js";
import { type VxlanFamilyPlan, vxlanDesiredState } from "./vxlan-desired.js";
import {
  ensureVtepAddress,
  ensureVxlanDevice,
  type VxlanDeviceSpec,
  vxlanDifferences,
} from "./vxlan-device.js";

export const vxlanRegistration: BackendRegistration = {
  type: "vxlan",
  configure: (config) => {
    const settings = parseVxlanConfig(config.backend);
    return (context) => new VxlanBackend(context, settings);
  },
  // flanneld writes the v4 pair only when there is v4 data, the v6 pair with v6 data and address.
  leaseRules: { v4: "with-data", v6: "with-data" },
};

export class VxlanBackend implements Backend {
  readonly type = "vxlan";
  readonly kinds: readonly AnyStateKind[];
  private readonly netlink: RtNetlink;
  private readonly families: VxlanFamilyPlan[];
  /** MACs we publish, per family, so a device made anew gets the same one. */
  private readonly macs = new Map<4 | 6, string>();
  private readonly peerStates = new PeerStateCache();

  constructor(
    private readonly context: BackendContext,
    private readonly settings: VxlanConfig,
  ) {
    this.netlink = context.netlink;
    this.kinds = [context.kernel.route, context.kernel.neigh, context.kernel.fdb];
    this.families = [];
    if (context.config.ipv4) this.families.push({ family: 4, device: vxlanDeviceName(4, this.settings.vni) });
    if (context.config.ipv6) this.families.push({ family: 6, device: vxlanDeviceName(6, this.settings.vni) });
    // After a reboot the device is gone; making it with the MAC we published keeps peers' FDB entries valid.
    if (context.stored?.backendType === "vxlan") {
      for (const [family, data] of [
        [4, context.stored.v4],
        [6, context.stored.v6],
      ] as const) {
        const stored = readVtepMac(data);
        if ("mac" in stored) this.macs.set(family, stored.mac);
      }
    }
  }

  get ownedDevices(): string[] {
    return this.families.map((f) => f.device);
  }

  get routeDevices(): string[] {
    return [...this.ownedDevices, this.context.extIface.name];
  }

  private deviceSpec(family: 4 | 6, device: string): VxlanDeviceSpec {
    const ext = this.context.extIface;
    const local = family === 4 ? ext.ipv4 : ext.ipv6;
    if (!local)
      throw new UserError(
        `the external interface ${ext.name} has no IPv${family} address for the vxlan device`,
      );
    const mtu = vxlanDeviceMtu(family, this.settings.mtu, ext);
    return {
      name: device,
      vni: this.settings.vni,
      local,
      devIndex: ext.index,
      port: this.settings.port,
      learning: this.settings.learning,
      gbp: this.settings.gbp,
      mtu,
      mac: this.macs.get(family),
    };
  }

  async setUp(): Promise<BackendSetUp> {
    const data = new Map<4 | 6, unknown>();
    // flanneld reports the IPv4 device's MTU when IPv4 is on (1450, not the IPv6 device's 1430).
    let mtu = 0;
    for (const { family, device } of this.families) {
      const spec = this.deviceSpec(family, device);
      const { link, created } = await ensureVxlanDevice(this.netlink, spec, this.context.log);
      this.context.log(
        `${created ? "created" : "kept"} vxlan device ${device} (VNI ${spec.vni}, MAC ${link.mac})`,
      );
      if (!link.mac) throw new Error(`vxlan device ${device} has no MAC address`);
      this.macs.set(family, link.mac);
      data.set(family, makeVxlanBackendData(this.settings.vni, link.mac));
      if (mtu === 0) mtu = link.mtu;
    }
    const ext = this.context.extIface;
    return {
      attrs: {
        publicIP: this.context.config.ipv4 ? ext.publicIP : undefined,
        publicIPv6: this.context.config.ipv6 ? ext.publicIPv6 : undefined,
        backendType: "vxlan",
        backendData: data.get(4),
        backendV6Data: data.get(6),
      },
      mtu,
    };
  }

  async attachLease(lease: Lease): Promise<void> {
    for (const { family, device } of this.families) {
      // Publish the MAC the lease carries, so a device deleted by hand comes back with it.
      const published = readVtepMac(family === 4 ? lease.attrs.backendData : lease.attrs.backendV6Data);
      if ("mac" in published) this.macs.set(family, published.mac);
      const { link, created } = await ensureVxlanDevice(
        this.netlink,
        this.deviceSpec(family, device),
        this.context.log,
      );
      if (created) this.context.log(`re-created vxlan device ${device} with MAC ${link.mac}`);
      const subnet = family === 4 ? lease.subnet : lease.ipv6Subnet;
      if (subnet) await ensureVtepAddress(this.netlink, link.index, subnet);
    }
  }

  expectedDevices(own: Lease): ExpectedDevice[] {
    return this.families.map(({ family, device }) => {
      const spec = this.deviceSpec(family, device);
      const subnet = family === 4 ? own.subnet : own.ipv6Subnet;
      const published = readVtepMac(family === 4 ? own.attrs.backendData : own.attrs.backendV6Data);
      return {
        name: device,
        overhead: vxlanOverhead(family),
        mtu: spec.mtu,
        addresses: subnet ? [`${formatIP(networkAddress(subnet))}/${family === 4 ? 32 : 128}`] : [],
        publishedMac: "mac" in published ? published.mac : undefined,
        differences: (link) => vxlanDifferences(link, spec),
      };
    });
  }

  desiredState(own: Lease, peers: Iterable<Lease>): DesiredPeers {
    const { families, context } = this;
    return this.peerStates.collect(own, peers, (peer) =>
      vxlanDesiredState(own, [peer], families, this.settings.directRouting, context.extIface),
    );
  }
}
