/**
 * The ipip device flannel.ipip as flanneld makes it: local = the external interface's address (so it is
 * not the namespace's catch-all tunl0), any remote, ttl inherit, pmtudisc off; MTU = interface - 20; one
 * address, the subnet's .0/32. A device of ours with another local/remote is replaced; a device of
 * another kind with our name is the user's: weft does not delete it and says so.
 */
import { type Link, type LinkSpec, NetlinkError, type RtNetlink } from "../../netlink/index.js";
import { UserError } from "../../user-error.js";
import { IPIP_DEVICE } from "./ipip-config.js";

export interface IpipDeviceSpec {
  readonly local: string;
  readonly mtu: number;
}

export function ipipLinkSpec(spec: IpipDeviceSpec): LinkSpec {
  return {
    kind: "ipip",
    name: IPIP_DEVICE,
    iptun: { local: spec.local, ttl: 0, tos: 0, pmtudisc: false },
  };
}

/** What makes `link` differ from the wanted device; empty: it is ours as wanted. */
export function ipipDifferences(link: Link, spec: IpipDeviceSpec): string[] {
  if (link.kind !== "ipip" || !link.iptun) return [`it is a ${link.kind ?? "plain"} device, not ipip`];
  const found: string[] = [];
  if (link.iptun.local !== spec.local)
    found.push(`local address ${link.iptun.local ?? "any"}, expected ${spec.local}`);
  if (link.iptun.remote !== undefined) found.push(`remote address ${link.iptun.remote}, expected any`);
  if (link.mtu !== spec.mtu) found.push(`MTU ${link.mtu}, expected ${spec.mtu}`);
  if (!link.up) found.push("it is down");
  return found;
}

/** EOPNOTSUPP: the kernel has no "ipip" link kind (module missing). */
function noIpipModule(error: unknown): boolean {
  return error instanceof NetlinkError && (error.code === "EOPNOTSUPP" || error.errno === 95);
}

export async function ensureIpipDevice(
  netlink: RtNetlink,
  spec: IpipDeviceSpec,
  log: (message: string) => void,
): Promise<{ link: Link; created: boolean }> {
  let link = await netlink.linkFind(IPIP_DEVICE);
  let created = false;
  if (link && (link.kind !== "ipip" || !link.iptun)) {
    throw new UserError(
      `${IPIP_DEVICE} exists but is a ${link.kind ?? "plain"} device, not ipip: remove it (ip link del ${IPIP_DEVICE}) and weftd will make its own`,
    );
  }
  if (link && (link.iptun?.local !== spec.local || link.iptun?.remote !== undefined)) {
    log(`${IPIP_DEVICE} exists with other tunnel addresses; replacing it`);
    await netlink.linkDel(link.index);
    link = undefined;
  }
  if (!link) {
    try {
      await netlink.linkAdd(ipipLinkSpec(spec));
    } catch (error) {
      if (noIpipModule(error))
        throw new UserError(
          `the kernel cannot make ipip devices (no ipip module: try modprobe ipip), so the ipip backend cannot run here`,
        );
      throw error;
    }
    created = true;
    link = await netlink.linkGet(IPIP_DEVICE);
  }
  if (link.mtu !== spec.mtu) await netlink.linkSetMtu(link.index, spec.mtu);
  if (!link.up) await netlink.linkSetUp(link.index);
  return { link: await netlink.linkGet(link.index), created };
}
