/**
 * The store side of multi-network mode (flanneld v0.7): one subnet manager per network, all sharing one
 * store connection, and the names of the networks that have a config, kept up to date. etcd serves it
 * from <prefix>/<network>/...; a remote (client/server) manager can serve the same interface.
 */
import type { SubnetManager } from "./subnet-manager.js";

export interface NetworkListWatcher {
  /** Every network with a config, after each change; the first call is the initial list. */
  onNetworks(names: ReadonlySet<string>): void;
  onWarning(message: string): void;
}

export interface NetworkSource {
  readonly name: string;
  /** A manager for one network (config, lease, watch); closing it leaves the shared connection open. */
  managerFor(network: string): SubnetManager;
  /** Lists the networks, watches for changes, and lists again after any break (--watch-networks). */
  watchNetworks(watcher: NetworkListWatcher): void;
  /** Stops the watch and closes the shared connection. */
  close(): Promise<void>;
}
