/** Builds the remote subnet manager from weftd's --remote flags (loaded only when --remote is given). */
import { UserError } from "../../user-error.js";
import type { NetworkSource } from "../network-source.js";
import type { StoreContext } from "../registry.js";
import type { SubnetManager } from "../subnet-manager.js";
import { RemoteNetworkSource } from "./remote-network-source.js";
import { RemoteSubnetManager } from "./remote-subnet-manager.js";
import { readRemoteTlsFiles } from "./remote-tls.js";

function remoteOptions({ flags, log }: StoreContext) {
  const server = flags.string("remote");
  if (!/^(\[[^\]]+\]|[^:/\s]+):[0-9]{1,5}$/.test(server)) {
    throw new UserError(
      `--remote=${server} is not host:port`,
      "give the server's address, e.g. --remote=10.0.0.1:8888",
    );
  }
  const margin = flags.int("subnet-lease-renew-margin");
  if (margin <= 0 || margin >= 24 * 60) {
    throw new UserError(`--subnet-lease-renew-margin ${margin} is out of range`, "use 1 to 1439 minutes");
  }
  return { server, tls: readRemoteTlsFiles(flags), renewMarginSeconds: margin * 60, log };
}

export async function openRemoteStore(context: StoreContext, network = "_"): Promise<SubnetManager> {
  return new RemoteSubnetManager({ ...remoteOptions(context), network });
}

/** --remote with --networks: every network through the same server. */
export async function openRemoteNetworks(context: StoreContext): Promise<NetworkSource> {
  return new RemoteNetworkSource(remoteOptions(context));
}
