/**
 * Multi-network mode on etcd, as flanneld v0.7 lays it out: network <name> has its config at
 * <prefix>/<name>/config and its leases under <prefix>/<name>/subnets/. One connection serves every
 * network's manager; the network list is a list of <prefix>/ for <name>/config keys, then a watch.
 */
import { Backoff, sleep } from "../../retry/backoff.js";
import { describeError } from "../../user-error.js";
import type { NetworkListWatcher, NetworkSource } from "../network-source.js";
import type { SubnetManager } from "../subnet-manager.js";
import type { EtcdStore } from "./etcd-store.js";
import { EtcdSubnetManager, type EtcdSubnetManagerOptions } from "./etcd-subnet-manager.js";

const LIST_RETRY = { minMs: 500, maxMs: 5000 };

/** The network a key names, if it is <prefix>/<network>/config. */
export function networkOfConfigKey(prefix: string, key: string): string | undefined {
  if (!key.startsWith(`${prefix}/`)) return undefined;
  const rest = key.slice(prefix.length + 1).split("/");
  return rest.length === 2 && rest[1] === "config" && rest[0] !== "" ? rest[0] : undefined;
}

export class EtcdNetworkSource implements NetworkSource {
  readonly name = "etcd";
  private closed = false;
  private stopWatch: (() => Promise<void>) | undefined;

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
    const prefix = this.options.prefix;
    const backoff = new Backoff(LIST_RETRY);
    while (!this.closed) {
      try {
        const listed = await this.store.list(`${prefix}/`);
        const names = new Set<string>();
        for (const kv of listed.values) {
          const name = networkOfConfigKey(prefix, kv.key);
          if (name !== undefined) names.add(name);
        }
        watcher.onNetworks(new Set(names));
        let broken!: () => void;
        const brokenPromise = new Promise<void>((resolve) => (broken = resolve));
        const handle = await this.store.watchPrefix(`${prefix}/`, listed.revision + 1n, {
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
          onBroken: (reason) => {
            watcher.onWarning(`etcd watch of the networks interrupted (${reason}); listing again`);
            broken();
          },
        });
        this.stopWatch = async () => {
          await handle.close();
          broken();
        };
        backoff.reset();
        await brokenPromise;
        await handle.close();
      } catch (err) {
        if (this.closed) return;
        const delayMs = backoff.next();
        watcher.onWarning(
          `cannot list the networks from etcd (${describeError(err)}); retrying in ${delayMs} ms`,
        );
        await sleep(delayMs);
      }
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    await this.stopWatch?.();
    this.store.close();
  }
}
