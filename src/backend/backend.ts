/**
 * A backend decides how packets reach peers' subnets. Setting up devices is its only side effect; for
 * peers it only computes the desired kernel state, which the reconciler applies. This mirrors flannel's
 * pkg/backend, with the per-event programming replaced by a pure desiredState().
 */
import type { NetworkConfig } from "../config/network-config.js";
import type { IPNetwork } from "../ip/ip-network.js";
import type { Lease, LeaseAttrs } from "../lease/lease.js";
import type { KernelState } from "../reconcile/kernel-state.js";
import type { StoredBackendData } from "../subnet/subnet-manager.js";

/** The host's interface to the other hosts (flanneld's "external interface"). */
export interface ExternalInterface {
  readonly name: string;
  readonly index: number;
  readonly mtu: number;
  /** Addresses on the interface, used as the local VTEP address. */
  readonly ipv4: string | undefined;
  readonly ipv6: string | undefined;
  /** Addresses peers use to reach us (--public-ip, else the interface's). */
  readonly publicIP: string | undefined;
  readonly publicIPv6: string | undefined;
  /** Networks directly attached to the interface: a peer inside one is on our L2. */
  readonly connected: readonly IPNetwork[];
}

export interface PeerProblem {
  readonly key: string;
  readonly reason: string;
}

export interface DesiredPeers {
  readonly state: KernelState;
  /** Peers that could not be programmed, with why (logged once by the daemon). */
  readonly problems: readonly PeerProblem[];
}

export interface Backend {
  readonly type: string;
  /** Creates or adopts devices; returns what to publish in our lease and the MTU pods get. */
  setUp(): Promise<{ attrs: LeaseAttrs; mtu: number }>;
  /** Finishes devices once the lease is known (e.g. the vxlan device's address). Idempotent. */
  attachLease(lease: Lease): Promise<void>;
  /** The kernel entries wanted for these peers. Pure. */
  desiredState(own: Lease, peers: Iterable<Lease>): DesiredPeers;
  /** Devices whose neighbour and FDB entries belong to this backend. */
  readonly ownedDevices: readonly string[];
  /** Devices our peer routes go through; stale routes to pod subnets on these are removed. */
  readonly routeDevices: readonly string[];
}

export interface BackendContext {
  readonly config: NetworkConfig;
  readonly extIface: ExternalInterface;
  readonly log: (message: string) => void;
  /** What this host published in an earlier run, if the store keeps it (kube mode), to reuse e.g. MACs. */
  readonly stored?: StoredBackendData | undefined;
}
