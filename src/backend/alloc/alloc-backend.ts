/**
 * The alloc backend, as flannel's: it only takes a subnet lease and writes subnet.env. It creates no
 * device and programs nothing for peers; something else (a cloud controller, static routes) carries the
 * packets. Like flannel's, the lease has no BackendType and no BackendData, and pods get the external
 * interface's MTU.
 */
import { addressOnlyAttrs, type Lease, type LeaseAttrs } from "../../lease/lease.js";
import type { Backend, BackendContext, BackendRegistration, BackendSetUp, DesiredPeers } from "../backend.js";

export const allocRegistration: BackendRegistration = {
  type: "alloc",
  // alloc has no keys of its own.
  configure: () => (context) => new AllocBackend(context),
};

/** What alloc publishes: the public address only (flannel also sets just PublicIP). Pure. */
export function allocLeaseAttrs(context: Pick<BackendContext, "config" | "extIface">): LeaseAttrs {
  const { config, extIface } = context;
  // flannel's alloc leaves PublicIPv6 null (and cannot run IPv6-only); weft publishes it when IPv6 is on.
  return addressOnlyAttrs(
    config.ipv4 ? extIface.publicIP : undefined,
    config.ipv6 ? extIface.publicIPv6 : undefined,
  );
}

export class AllocBackend implements Backend {
  readonly type = "alloc";
  readonly kinds = [];
  readonly ownedDevices = [];
  readonly routeDevices = [];

  constructor(private readonly context: BackendContext) {}

  async setUp(): Promise<BackendSetUp> {
    return { attrs: allocLeaseAttrs(this.context), mtu: this.context.extIface.mtu };
  }

  async attachLease(_lease: Lease): Promise<void> {}

  desiredState(_own: Lease, _peers: Iterable<Lease>): DesiredPeers {
    return { state: {}, problems: [] };
  }
}
