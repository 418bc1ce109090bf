/**
 * /run/flannel/subnet.env, which the CNI plugin and other tools read. The text is byte-identical to what
 * flanneld writes for the same lease; the file is replaced atomically so readers never see half of it.
 */
import { open, rename, unlink } from "node:fs/promises";
import { basename, dirname, join } from "node:path";
import { makeDirectories } from "../fs/make-directories.js";
import { readSmallFile } from "../fs/read-small-file.js";
import { formatIP } from "../ip/ip-address.js";
import { firstHost, formatCIDR, type IPNetwork, parseCIDR } from "../ip/ip-network.js";
import { UserError } from "../user-error.js";

export interface SubnetEnv {
  readonly network: IPNetwork | undefined;
  readonly subnet: IPNetwork | undefined;
  readonly ipv6Network: IPNetwork | undefined;
  readonly ipv6Subnet: IPNetwork | undefined;
  readonly mtu: number;
  readonly ipMasq: boolean;
}

/** The subnet as written in subnet.env: its first host address with the subnet's prefix. */
function gatewayCIDR(subnet: IPNetwork): string {
  return `${formatIP(firstHost(subnet))}/${subnet.prefixLen}`;
}

export function formatSubnetEnv(env: SubnetEnv): string {
  let text = "";
  if (env.network && env.subnet) {
    text += `FLANNEL_NETWORK=${formatCIDR(env.network)}\nFLANNEL_SUBNET=${gatewayCIDR(env.subnet)}\n`;
  }
  if (env.ipv6Network && env.ipv6Subnet) {
    text += `FLANNEL_IPV6_NETWORK=${formatCIDR(env.ipv6Network)}\nFLANNEL_IPV6_SUBNET=${gatewayCIDR(env.ipv6Subnet)}\n`;
  }
  return `${text}FLANNEL_MTU=${env.mtu}\nFLANNEL_IPMASQ=${env.ipMasq}\n`;
}

/**
 * Writes via a hidden temp file in the same directory (flanneld's name, `.<file>`), fsynced, then renamed
 * over the target. Fails with one UserError naming the file; the temp file never stays behind.
 */
export async function writeSubnetEnv(path: string, env: SubnetEnv): Promise<void> {
  const dir = dirname(path);
  const temp = join(dir, `.${basename(path)}`);
  let tempCreated = false;
  try {
    makeDirectories(dir, 0o755);
    const file = await open(temp, "w", 0o644);
    tempCreated = true;
    try {
      await file.writeFile(formatSubnetEnv(env));
      await file.sync();
    } finally {
      await file.close();
    }
    await rename(temp, path);
  } catch (err) {
    if (tempCreated) await unlink(temp).catch(() => undefined);
    throw subnetFileError(path, err);
  }
}

function subnetFileError(path: string, err: unknown): UserError {
  const code = (err as NodeJS.ErrnoException).code;
  const reason = code === "EISDIR" ? "it is a directory" : ((err as Error).message ?? String(err));
  return new UserError(
    `cannot write the subnet file ${path}: ${reason}`,
    "point --subnet-file at a file in a writable directory (default /run/flannel/subnet.env)",
  );
}

/** The subnets a previous run wrote, used to ask for the same ones again; undefined parts when absent. */
export async function readPreviousSubnets(
  path: string,
): Promise<{ subnet: IPNetwork | undefined; ipv6Subnet: IPNetwork | undefined }> {
  let text: string;
  try {
    // Bounded and non-blocking: a --subnet-file of /dev/zero or a FIFO must not hang weftd's start.
    text = readSmallFile(path, 1024 * 1024).toString("utf8");
  } catch {
    return { subnet: undefined, ipv6Subnet: undefined };
  }
  const vars = parseEnvLines(text);
  // parseCIDR masks the host part, so "10.244.63.1/24" gives back the subnet 10.244.63.0/24.
  // A value of the other family (a hand-edited or foreign file) is no previous subnet at all.
  const toNetwork = (value: string | undefined, family: 4 | 6) => {
    const network = value === undefined ? undefined : parseCIDR(value);
    return network?.family === family ? network : undefined;
  };
  return {
    subnet: toNetwork(vars.get("FLANNEL_SUBNET"), 4),
    ipv6Subnet: toNetwork(vars.get("FLANNEL_IPV6_SUBNET"), 6),
  };
}

export function parseEnvLines(text: string): Map<string, string> {
  const vars = new Map<string, string>();
  for (const line of text.split("\n")) {
    const eq = line.indexOf("=");
    if (eq > 0 && !line.startsWith("#")) vars.set(line.slice(0, eq).trim(), line.slice(eq + 1).trim());
  }
  return vars;
}
