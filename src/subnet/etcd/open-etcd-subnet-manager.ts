/**
 * Builds the etcd subnet manager from weftd's flags (flanneld's default store): the etcd-only checks
 * (endpoint URLs, the renew margin) live here, not in the daemon. Loaded only in etcd mode: the client is
 * the biggest dependency weftd has.
 */
import { UserError } from "../../user-error.js";
import type { NetworkSource } from "../network-source.js";
import type { StoreContext, StoreFlags } from "../registry.js";
import type { SubnetManager } from "../subnet-manager.js";
import { EtcdNetworkSource } from "./etcd-network-source.js";
import { EtcdStore } from "./etcd-store.js";
import { EtcdSubnetManager } from "./etcd-subnet-manager.js";

/** flanneld's lease lifetime. */
const LEASE_TTL_SECONDS = 24 * 60 * 60;
const CALL_TIMEOUT_MS = 5000;

export function etcdEndpoints(text: string): string[] {
  const endpoints = text
    .split(",")
    .map((e) => e.trim())
    .filter((e) => e !== "");
  for (const endpoint of endpoints) {
    if (!/^https?:\/\/[^/]+/.test(endpoint)) {
      throw new UserError(
        `--etcd-endpoints has ${JSON.stringify(endpoint)}, which is not a URL`,
        "write endpoints like http://10.0.0.1:2379",
      );
    }
  }
  return endpoints;
}

function renewMarginMinutes(flags: StoreFlags): number {
  const margin = flags.int("subnet-lease-renew-margin");
  if (margin <= 0 || margin >= 24 * 60) {
    throw new UserError(`--subnet-lease-renew-margin ${margin} is out of range`, "use 1 to 1439 minutes");
  }
  return margin;
}

export async function openEtcdStore({ flags, log, logError }: StoreContext): Promise<SubnetManager> {
  const margin = renewMarginMinutes(flags);
  const store = await connectEtcdStore(flags);
  return new EtcdSubnetManager(store, {
    prefix: etcdPrefix(flags),
    leaseTtlSeconds: LEASE_TTL_SECONDS,
    renewMarginSeconds: margin * 60,
    log,
    logError,
  });
}

/** Multi-network mode: network <name> lives under <prefix>/<name>/, all over one connection. */
export async function openEtcdNetworks({ flags, log, logError }: StoreContext): Promise<NetworkSource> {
  const margin = renewMarginMinutes(flags);
  const store = await connectEtcdStore(flags);
  return new EtcdNetworkSource(store, {
    prefix: etcdPrefix(flags),
    leaseTtlSeconds: LEASE_TTL_SECONDS,
    renewMarginSeconds: margin * 60,
    log,
    logError,
  });
}

/** <prefix> without a trailing slash: config at <prefix>/config, leases under <prefix>/subnets/. */
export function etcdPrefix(flags: StoreFlags): string {
  return flags.string("etcd-prefix").replace(/\/+$/, "");
}

/** The etcd client weftd's --etcd-* flags describe (also for `weft leases` and `weft doctor`). */
export function connectEtcdStore(flags: StoreFlags): Promise<EtcdStore> {
  return EtcdStore.connect({
    endpoints: etcdEndpoints(flags.string("etcd-endpoints")),
    caFile: flags.string("etcd-cafile") || undefined,
    certFile: flags.string("etcd-certfile") || undefined,
    keyFile: flags.string("etcd-keyfile") || undefined,
    username: flags.string("etcd-username") || undefined,
    password: flags.string("etcd-password") || undefined,
    callTimeoutMs: CALL_TIMEOUT_MS,
  });
}
