/**
 * The cluster's network config and leases, read once from the store weftd's flags select: etcd through
 * the same client and decoders weftd uses (raw values too, to tell who wrote them, and etcd lease TTLs),
 * or the Kubernetes API through the kube subnet manager's first node list.
 */
import { type NetworkConfig, parseNetworkConfig } from "../config/network-config.js";
import type { IPNetwork } from "../ip/ip-network.js";
import type { Lease } from "../lease/lease.js";
import { retry } from "../retry/backoff.js";
import { decodeRawLease } from "../subnet/lease-table.js";
import { openSubnetManager, type StoreFlags } from "../subnet/registry.js";
import { UserError } from "../user-error.js";
import { leaseWriter } from "./lease-writer.js";

export interface ListedLease {
  /** The key below <prefix>/subnets/ (etcd) or the node name (kube). */
  readonly key: string;
  readonly subnet: IPNetwork | undefined;
  readonly ipv6Subnet: IPNetwork | undefined;
  /** The decoded lease; undefined when its value cannot be read (then `problem` says why). */
  readonly lease: Lease | undefined;
  readonly problem: string | undefined;
  readonly reservation: boolean;
  /** Seconds until the etcd lease expires; undefined for reservations and in kube mode. */
  readonly expiresInSeconds: number | undefined;
  /** Who wrote it, as far as the stored form tells (see lease-writer.ts). */
  readonly writer: string;
}

export interface LeaseListing {
  readonly store: "etcd" | "kube";
  readonly config: NetworkConfig;
  readonly leases: readonly ListedLease[];
}

/** How long a one-shot command waits for a store that does not answer. */
const LIST_DEADLINE_MS = 15_000;

/** A one-shot command retries a transient store failure (lost leader, refused connection) a few times. */
function withRetries<T>(step: () => Promise<T>): Promise<T> {
  return retry(step, {
    backoff: { minMs: 500, maxMs: 3000 },
    attempts: 5,
    isFatal: (err) => err instanceof UserError,
  });
}

export async function readLeases(flags: StoreFlags, env: NodeJS.ProcessEnv): Promise<LeaseListing> {
  return flags.bool("kube-subnet-mgr") ? readKubeLeases(flags, env) : readEtcdLeases(flags);
}

async function readEtcdLeases(flags: StoreFlags): Promise<LeaseListing> {
  const { connectEtcdStore, etcdPrefix } = await import("../subnet/etcd/open-etcd-subnet-manager.js");
  const store = await connectEtcdStore(flags);
  try {
    const prefix = etcdPrefix(flags);
    const configText = await withRetries(() => store.get(`${prefix}/config`));
    if (configText === undefined) {
      throw new UserError(
        `no network config at ${prefix}/config`,
        "check --etcd-endpoints and --etcd-prefix (FLANNELD_ETCD_ENDPOINTS, FLANNELD_ETCD_PREFIX)",
      );
    }
    const config = parseNetworkConfig(configText);
    const subnets = `${prefix}/subnets/`;
    const { values } = await withRetries(() => store.list(subnets));
    const ttls = new Map<string, number>();
    const leases: ListedLease[] = [];
    for (const kv of values) {
      const reservation = kv.leaseId === "0";
      const decoded = decodeRawLease({
        subnetKey: kv.key.slice(subnets.length),
        value: kv.value,
        reservation,
      });
      let expiresInSeconds: number | undefined;
      if (!reservation) {
        if (!ttls.has(kv.leaseId))
          ttls.set(kv.leaseId, await withRetries(() => store.leaseTimeToLive(kv.leaseId)));
        expiresInSeconds = ttls.get(kv.leaseId);
      }
      leases.push({
        key: kv.key.slice(subnets.length),
        subnet: decoded.ok ? decoded.lease.subnet : decoded.subnets?.subnet,
        ipv6Subnet: decoded.ok ? decoded.lease.ipv6Subnet : decoded.subnets?.ipv6Subnet,
        lease: decoded.ok ? decoded.lease : undefined,
        problem: decoded.ok ? undefined : decoded.reason,
        reservation,
        expiresInSeconds,
        writer: leaseWriter(kv.value, decoded.ok ? decoded.lease.attrs : undefined),
      });
    }
    return { store: "etcd", config, leases };
  } finally {
    store.close();
  }
}

/** The kube manager's first list of nodes; nodes without a usable pod CIDR are left out, as in weftd. */
async function readKubeLeases(flags: StoreFlags, env: NodeJS.ProcessEnv): Promise<LeaseListing> {
  const manager = await openSubnetManager({ flags, env, log: () => undefined, logError: () => undefined });
  try {
    const config = await manager.getNetworkConfig();
    const warnings: string[] = [];
    const first = await new Promise<ReadonlyMap<string, Lease>>((resolve, reject) => {
      const timer = setTimeout(
        () =>
          reject(
            new UserError(
              `the Kubernetes API gave no node list within ${LIST_DEADLINE_MS / 1000} s${warnings.length > 0 ? ` (${warnings.at(-1)})` : ""}`,
              "check --kube-api-url or --kubeconfig-file",
            ),
          ),
        LIST_DEADLINE_MS,
      );
      manager.watchLeases({
        onLeases: (leases) => {
          clearTimeout(timer);
          resolve(leases);
        },
        onOwnLease: () => undefined,
        onWarning: (message) => warnings.push(message),
        onFatal: (err) => {
          clearTimeout(timer);
          reject(err);
        },
      });
    });
    const leases = [...first.values()].map(
      (lease): ListedLease => ({
        key: lease.key,
        subnet: lease.subnet,
        ipv6Subnet: lease.ipv6Subnet,
        lease,
        problem: undefined,
        reservation: lease.reservation,
        expiresInSeconds: undefined,
        // Annotations are written the same by weft and flanneld.
        writer: "weft or flanneld (node annotations)",
      }),
    );
    return { store: "kube", config, leases };
  } finally {
    await manager.close();
  }
}
