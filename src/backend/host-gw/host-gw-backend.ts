/** The host-gw backend: no device of its own; each peer's subnet is routed via the peer host. */
import type { Lease, LeaseAttrs } from "../../lease/lease.js";
import type { Backend, BackendContext, DesiredPeers } from "../backend.js";
import { PeerStateCache } from "../peer-state-cache.js";
import { hostGwDesiredState } from "./host-gw-desired.js";

export class HostGwBackend implements Backend {
  readonly type = "host-gw";
  readonly ownedDevices: string[] = [];
  private readonly families: (4 | 6)[] = [];
  private readonly peerStates = new PeerStateCache();

  constructor(private readonly context: BackendContext) {
    if (context.config.ipv4) this.families.push(4);
    if (context.config.ipv6) this.families.push(6);
  }

  get routeDevices(): string[] {
    return [this.context.extIface.name];
  }

  async setUp(): Promise<{ attrs: LeaseAttrs; mtu: number }> {
    const ext = this.context.extIface;
    return {
      attrs: {
        publicIP: this.context.config.ipv4 ? ext.publicIP : undefined,
        publicIPv6: this.context.config.ipv6 ? ext.publicIPv6 : undefined,
        backendType: "host-gw",
        backendData: undefined,
        backendV6Data: undefined,
      },
      mtu: ext.mtu,
    };
  }

  async attachLease(): Promise<void> {}

  desiredState(own: Lease, peers: Iterable<Lease>): DesiredPeers {
    return this.peerStates.collect(own, peers, (peer) =>
      hostGwDesiredState(own, [peer], this.families, this.context.extIface),
    );
  }
}
