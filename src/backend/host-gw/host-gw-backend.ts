/** The host-gw backend: no device of its own; each peer's subnet is routed via the peer host. */
import type { Lease } from "../../lease/lease.js";
import type { AnyStateKind } from "../../reconcile/state-kind.js";
import type { Backend, BackendContext, BackendRegistration, BackendSetUp, DesiredPeers } from "../backend.js";
import { PeerStateCache } from "../peer-state-cache.js";
import { hostGwDesiredState } from "./host-gw-desired.js";

export const hostGwRegistration: BackendRegistration = {
  type: "host-gw",
  // host-gw has no keys of its own.
  configure: () => (context) => new HostGwBackend(context),
  // flanneld writes the v6 pair for host-gw whenever the host has an IPv6 address.
  leaseRules: { v4: "always", v6: "with-address" },
};

export class HostGwBackend implements Backend {
  readonly type = "host-gw";
  readonly kinds: readonly AnyStateKind[];
  readonly ownedDevices: string[] = [];
  private readonly families: (4 | 6)[] = [];
  private readonly peerStates = new PeerStateCache();

  constructor(private readonly context: BackendContext) {
    this.kinds = [context.kernel.route];
    if (context.config.ipv4) this.families.push(4);
    if (context.config.ipv6) this.families.push(6);
  }

  get routeDevices(): string[] {
    return [this.context.extIface.name];
  }

  async setUp(): Promise<BackendSetUp> {
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
