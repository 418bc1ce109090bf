/** The ipip backend: IPv4-in-IPv4 through flannel.ipip, peers routed via their PublicIP onlink. */

import { ConfigError } from "../../config/network-config.js";
import { formatIP } from "../../ip/ip-address.js";
import { networkAddress } from "../../ip/ip-network.js";
import type { Lease } from "../../lease/lease.js";
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
// The same "one /32 address on our device" rule as the vxlan device.
import { ensureVtepAddress } from "../vxlan/vxlan-device.js";
import { IPIP_DEVICE, IPIP_OVERHEAD, type IpipConfig, parseIpipConfig } from "./ipip-config.js";
import { ipipDesiredState } from "./ipip-desired.js";
import { ensureIpipDevice, type IpipDeviceSpec, ipipDifferences } from "./ipip-device.js";

export const ipipRegistration: BackendRegistration = {
  type: "ipip",
  configure: (config) => {
    const settings = parseIpipConfig(config.backend);
    // As in flannel: IPv4 only.
    if (!config.ipv4)
      throw new ConfigError("the ipip backend carries IPv4 only: set Network and leave EnableIPv4 on");
    return (context) => new IpipBackend(context, settings);
  },
};

export class IpipBackend implements Backend {
  readonly type = "ipip";
  readonly kinds: readonly AnyStateKind[];
  readonly ownedDevices = [IPIP_DEVICE];
  private readonly peerStates = new PeerStateCache();

  constructor(
    private readonly context: BackendContext,
    private readonly settings: IpipConfig,
  ) {
    this.kinds = [context.kernel.route];
  }

  get routeDevices(): string[] {
    return [IPIP_DEVICE, this.context.extIface.name];
  }

  private deviceSpec(): IpipDeviceSpec {
    const ext = this.context.extIface;
    if (!ext.ipv4)
      throw new UserError(`the external interface ${ext.name} has no IPv4 address for the ipip device`);
    const mtu = ext.mtu - IPIP_OVERHEAD;
    if (mtu <= 0) throw new UserError(`MTU ${ext.mtu} of ${ext.name} is too small for the ipip backend`);
    return { local: ext.ipv4, mtu };
  }

  async setUp(): Promise<BackendSetUp> {
    if (this.context.config.ipv6)
      this.context.warn("the ipip backend carries IPv4 only; IPv6Network is leased but not routed");
    const { link, created } = await ensureIpipDevice(
      this.context.netlink,
      this.deviceSpec(),
      this.context.log,
    );
    this.context.log(`${created ? "created" : "kept"} ipip device ${IPIP_DEVICE} (MTU ${link.mtu})`);
    return {
      attrs: {
        publicIP: this.context.extIface.publicIP,
        publicIPv6: undefined,
        backendType: "ipip",
        backendData: undefined,
        backendV6Data: undefined,
      },
      mtu: link.mtu,
    };
  }

  async attachLease(lease: Lease): Promise<void> {
    const { link } = await ensureIpipDevice(this.context.netlink, this.deviceSpec(), this.context.log);
    if (lease.subnet) await ensureVtepAddress(this.context.netlink, link.index, lease.subnet);
  }

  expectedDevices(own: Lease): ExpectedDevice[] {
    const spec = this.deviceSpec();
    return [
      {
        name: IPIP_DEVICE,
        overhead: IPIP_OVERHEAD,
        mtu: spec.mtu,
        addresses: own.subnet ? [`${formatIP(networkAddress(own.subnet))}/32`] : [],
        publishedMac: undefined,
        differences: (link) => ipipDifferences(link, spec),
      },
    ];
  }

  desiredState(own: Lease, peers: Iterable<Lease>): DesiredPeers {
    return this.peerStates.collect(own, peers, (peer) =>
      ipipDesiredState(own, [peer], this.settings.directRouting, this.context.extIface),
    );
  }
}
