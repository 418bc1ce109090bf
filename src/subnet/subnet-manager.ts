/**
 * A subnet manager keeps this host's lease in a cluster store (etcd, or the Kubernetes API) and tells the
 * daemon about every lease in the cluster. It is the only part that knows which store is used.
 */
import type { NetworkConfig } from "../config/network-config.js";
import type { IPNetwork } from "../ip/ip-network.js";
import type { Lease, LeaseAttrs } from "../lease/lease.js";

export interface LeaseRequest {
  readonly attrs: LeaseAttrs;
  /** Subnets a previous run held (from subnet.env), tried first when no lease carries our address. */
  readonly previousSubnet: IPNetwork | undefined;
  readonly previousIPv6Subnet: IPNetwork | undefined;
  /** The backend's rules for a store that publishes field by field (kube annotations). */
  readonly leaseRules?: LeasePublishRules | undefined;
}

/**
 * Which lease fields a backend has published, as flannel's kube manager decides per backend type:
 * backend-data and public-ip always, or only when the backend has IPv4 data (vxlan, wireguard); the
 * IPv6 pair never (flannel's default), only with IPv6 data and an IPv6 address (vxlan, wireguard), or
 * whenever there is an IPv6 address (host-gw).
 */
export interface LeasePublishRules {
  readonly v4: "always" | "with-data";
  readonly v6: "never" | "with-data" | "with-address";
}

/** flannel's rules for a backend that states none. */
export const DEFAULT_LEASE_RULES: LeasePublishRules = { v4: "always", v6: "never" };

export interface LeaseWatcher {
  /** Every lease in the cluster, ours included, after each change; the first call is the initial list. */
  onLeases(leases: ReadonlyMap<string, Lease>): void;
  /** Our own lease changed (re-acquired after it vanished, or renewed): the daemon refreshes from it. */
  onOwnLease(lease: Lease): void;
  /** Something the daemon should log; the manager keeps going. */
  onWarning(message: string): void;
  /** The manager cannot go on (e.g. our lease is gone and cannot be re-acquired). */
  onFatal(err: Error): void;
}

/** Backend data this host published in an earlier run (kube mode: our Node's annotations), by family. */
export interface StoredBackendData {
  readonly backendType?: string;
  readonly v4?: unknown;
  readonly v6?: unknown;
}

export interface SubnetManager {
  readonly name: string;
  getNetworkConfig(): Promise<NetworkConfig>;
  /** Acquires this host's lease (reusing one that carries our address) and keeps it renewed. */
  acquireLease(request: LeaseRequest): Promise<Lease>;
  /** Starts watching; must not lose a change: it lists, watches from there, and re-lists after trouble. */
  watchLeases(watcher: LeaseWatcher): void;
  /**
   * Optional: what this host published before (e.g. vxlan's {"VNI":1,"VtepMAC":"..."}), so a backend set up
   * after a reboot can recreate its device with the same MAC and peers' FDB entries stay valid. Call after
   * getNetworkConfig and before the backend's setUp.
   */
  storedBackendData?(): Promise<StoredBackendData>;
  /**
   * Optional: the daemon calls this once the datapath is programmed; kube mode then sets the node's
   * NetworkUnavailable condition to False (--set-node-network-unavailable). Resolves once done (retries
   * inside until then or until close).
   */
  networkReady?(): Promise<void>;
  close(): Promise<void>;
}
