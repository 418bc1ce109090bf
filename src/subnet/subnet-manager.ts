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
}

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

export interface SubnetManager {
  readonly name: string;
  getNetworkConfig(): Promise<NetworkConfig>;
  /** Acquires this host's lease (reusing one that carries our address) and keeps it renewed. */
  acquireLease(request: LeaseRequest): Promise<Lease>;
  /** Starts watching; must not lose a change: it lists, watches from there, and re-lists after trouble. */
  watchLeases(watcher: LeaseWatcher): void;
  close(): Promise<void>;
}
