/**
 * weftd on wireguard in a lab host. wireguard-go's UAPI socket directory /var/run/wireguard is fixed
 * (no flag or variable in wireguard-go 0.0.20220316) and all lab hosts share the machine's filesystem,
 * so each host's weftd (and the wireguard-go it starts) runs in its own mount namespace with a per-host
 * directory bound on /run/wireguard; weftd itself is unchanged. `wg` by hand enters it with nsenter.
 */
import { mkdirSync, readFileSync, rmdirSync } from "node:fs";
import { join } from "node:path";
import { type Lab, type LabHost, type LabProcess, mergeFlags, weftdCommand } from "./lab.js";

export const wireguardKeyFile = (lab: Lab, host: LabHost) => join(lab.hostDir(host), "wgkey");

export async function startWireguardWeftd(
  lab: Lab,
  host: LabHost,
  args: readonly string[] = [],
): Promise<LabProcess> {
  const dir = join(lab.hostDir(host), "wireguard");
  mkdirSync(dir, { recursive: true });
  const flags = mergeFlags(
    [`--etcd-endpoints=${lab.etcdEndpoint}`, "--iface=eth0", `--subnet-file=${lab.subnetFile(host)}`],
    args,
  );
  const script = 'mkdir -p /run/wireguard && mount --bind "$1" /run/wireguard && shift && exec "$@"';
  return lab.spawn(
    host,
    ["unshare", "-m", "--propagation", "private", "sh", "-c", script, "sh", dir, ...weftdCommand(), ...flags],
    { env: { WIREGUARD_KEY_FILE: wireguardKeyFile(lab, host) } },
  );
}

/** The pid of the host's wireguard-go, if one runs. */
export async function wireguardGoPid(lab: Lab, host: LabHost): Promise<number | undefined> {
  const pids = (await lab.run(host, ["ip", "netns", "pids", host.name]).catch(() => ""))
    .split("\n")
    .filter(Boolean);
  for (const pid of pids) {
    try {
      if (readFileSync(`/proc/${pid}/comm`, "utf8").trim() === "wireguard-go") return Number(pid);
    } catch {}
  }
  return undefined;
}

/**
 * Removes the empty /run/wireguard the mount needed as its mount point, once the lab is gone (kept when
 * anything is in it or still mounted on it: then it is not ours alone).
 */
export function removeWireguardMountPoint(): void {
  try {
    rmdirSync("/run/wireguard");
  } catch {}
}
