/**
 * Subnet managers by store, beside the backend registry: etcd (the default), the Kubernetes API
 * (--kube-subnet-mgr), a flanneld v0.7-style server (--remote). Each entry checks its own flags and loads its client only
 * when selected, so weftd carries no store code it does not use. Add a store here: one entry.
 */
import { UserError } from "../user-error.js";
import type { NetworkSource } from "./network-source.js";
import type { SubnetManager } from "./subnet-manager.js";

/** The flag values a store reads (weftd's Flags, without depending on the daemon). */
export interface StoreFlags {
  string(name: string): string;
  int(name: string): number;
  bool(name: string): boolean;
}

export interface StoreContext {
  readonly flags: StoreFlags;
  readonly env: NodeJS.ProcessEnv;
  readonly log: (message: string) => void;
  /** For what an operator must act on (e.g. another host took our lease key over). */
  readonly logError: (message: string) => void;
}

export interface SubnetManagerRegistration {
  readonly name: string;
  /** Whether the flags choose this store. */
  selected(flags: StoreFlags): boolean;
  /** Checks the store's flags (UserError naming the flag) and opens the manager. */
  open(context: StoreContext): Promise<SubnetManager>;
  /** Multi-network mode (--networks, --watch-networks), for a store that has it (flanneld v0.7). */
  openNetworks?(context: StoreContext): Promise<NetworkSource>;
}

const STORES: readonly SubnetManagerRegistration[] = [
  {
    name: "remote",
    selected: (flags) => flags.string("remote") !== "",
    open: async (context) =>
      (await import("./remote/open-remote-subnet-manager.js")).openRemoteStore(context),
    openNetworks: async (context) =>
      (await import("./remote/open-remote-subnet-manager.js")).openRemoteNetworks(context),
  },
  {
    name: "kube",
    selected: (flags) => flags.bool("kube-subnet-mgr"),
    open: async (context) => (await import("./kube/open-kube-subnet-manager.js")).openKubeStore(context),
  },
  // The default when no other store is selected, as in flanneld.
  {
    name: "etcd",
    selected: () => true,
    open: async (context) => (await import("./etcd/open-etcd-subnet-manager.js")).openEtcdStore(context),
    openNetworks: async (context) =>
      (await import("./etcd/open-etcd-subnet-manager.js")).openEtcdNetworks(context),
  },
];

export function openSubnetManager(context: StoreContext): Promise<SubnetManager> {
  const store = STORES.find((s) => s.selected(context.flags))!;
  return store.open(context);
}

/** The selected store's multi-network source; a store without the mode is refused by name. */
export function openNetworkSource(context: StoreContext): Promise<NetworkSource> {
  const store = STORES.find((s) => s.selected(context.flags))!;
  if (!store.openNetworks) {
    throw new UserError(
      `multi-network mode (--networks, --watch-networks) is not available with the ${store.name} subnet manager`,
      "use etcd, or run one weftd per network",
    );
  }
  return store.openNetworks(context);
}
