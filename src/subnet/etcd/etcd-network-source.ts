/**
 * Multi-network mode on etcd, as flanneld v0.7 lays it out: network <name> has its config at
 * <prefix>/<name>/config and its leases under <prefix>/<name>/subnets/. One connection serves every
 * network's manager; the network list is a list of <prefix>/ for <name>/config keys, then a watch.
 */
import type { NetworkListWatcher, NetworkSource } from "../network-source.js";
import type { SubnetManager } from "../subnet-manager.js";
import type { EtcdStore } from "./etcd-store.js";
import { EtcdSubnetManager, type EtcdSubnetManagerOptions } from "./etcd-subnet-manager.js";
import { ListWatch } from "./list-watch.js";

/** The network a key names, if it is <prefix>/<network>/config. */
export function networkOfConfigKey(prefix: string, key: string): string | undefined {
  if (!key.startsWith(`${prefix}/`)) return undefined;
  const rest = key.slice(prefix.length + 1).split("/");
  return rest.length === 2 && rest[1] === "config" && rest[0] !== "" ? rest[0] : undefined;
}

export class EtcdNetworkSource implements NetworkSource {
  readonly name = "etcd";
  private closed = false;
  private listWatch: ListWatch | undefined;

  constructor(
    private readonly store: EtcdStore,
    private readonly options: Omit<EtcdSubnetManagerOptions, "sharedStore">,
  ) {}

  managerFor(network: string): SubnetManager {
    return new EtcdSubnetManager(this.store, {
      ...this.options,
      prefix: `${this.options.prefix}/${network}`,
      sharedStore: true,
    });
  }

  watchNetworks(watcher: NetworkListWatcher): void {
    void this.run(watcher);
  }

  private async run(watcher: NetworkListWatcher): Promise<void> {
    if (this.closed) return;
    const prefix = this.options.prefix;
    const names = new Set<string>();
    this.listWatch = new ListWatch(this.store, `${prefix}/`, {
      what: "the networks",
      onList: (values) => {
        names.clear();
        for (const kv of values) {
          const name = networkOfConfigKey(prefix, kv.key);
          if (name !== undefined) names.add(name);
        }
        watcher.onNetworks(new Set(names));
      },
      onPut: (kv) => {
        const name = networkOfConfigKey(prefix, kv.key);
        if (name === undefined || names.has(name)) return;
        names.add(name);
        watcher.onNetworks(new Set(names));
      },
      onDelete: (key) => {
        // `etcdctl rm --recursive <prefix>/<name>` deletes the config key too.
        const name = networkOfConfigKey(prefix, key);
        if (name === undefined || !names.delete(name)) return;
        watcher.onNetworks(new Set(names));
      },
      onWarning: (message) => watcher.onWarning(message),
    });
    await this.listWatch.run();
  }

  async close(): Promise<void> {
    this.closed = true;
    await this.listWatch?.close();
    this.store.close();
  }
}
