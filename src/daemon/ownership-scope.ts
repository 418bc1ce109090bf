/** Which kernel entries are weft's, from the config, our lease and the backend: the daemon and `weft doctor`. */
import type { Backend } from "../backend/backend.js";
import { enabledNetworks, type NetworkConfig } from "../config/network-config.js";
import type { IPNetwork } from "../ip/ip-network.js";
import type { Lease } from "../lease/lease.js";
import type { OwnershipScope } from "../reconcile/reconciler.js";

export function ownershipScope(
  config: NetworkConfig,
  lease: Lease,
  backend: Pick<Backend, "routeDevices" | "ownedDevices">,
): OwnershipScope {
  return {
    networks: enabledNetworks(config),
    ownSubnets: [lease.subnet, lease.ipv6Subnet].filter((n): n is IPNetwork => n !== undefined),
    routeDevices: backend.routeDevices,
    ownedDevices: backend.ownedDevices,
  };
}
