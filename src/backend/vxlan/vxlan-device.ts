/**
 * The vxlan device (flannel.<VNI>), kept across restarts: an existing device with the same parameters is
 * adopted as it is, MAC included, so peers' FDB entries for us stay valid; an incompatible one is
 * replaced. Its only address is the subnet's .0 as a host address (/32, /128), as flanneld sets it.
 */
import { writeFile } from "node:fs/promises";
import { formatIP, ipEquals, parseIP } from "../../ip/ip-address.js";
import { type IPNetwork, networkAddress } from "../../ip/ip-network.js";
import { RT_SCOPE_UNIVERSE } from "../../netlink/constants.js";
import type { Link, RtNetlink, VxlanInfo } from "../../netlink/index.js";

/** The kernel's default VXLAN port, which it uses when none is given (flannel's Port 0). */
const KERNEL_DEFAULT_PORT = 8472;

export interface VxlanDeviceSpec {
  readonly name: string;
  readonly vni: number;
  readonly local: string;
  readonly devIndex: number;
  readonly port: number;
  readonly learning: boolean;
  readonly gbp: boolean;
  readonly mtu: number;
  /** Create with this MAC (the one our lease publishes) when the device has to be made anew. */
  readonly mac: string | undefined;
}

function sameAddress(a: string | undefined, b: string): boolean {
  const pa = a === undefined ? undefined : parseIP(a);
  const pb = parseIP(b);
  return pa !== undefined && pb !== undefined && ipEquals(pa, pb);
}

export function isCompatible(link: Link, spec: VxlanDeviceSpec): boolean {
  const v: VxlanInfo | undefined = link.vxlan;
  if (link.kind !== "vxlan" || !v) return false;
  return (
    v.vni === spec.vni &&
    sameAddress(v.local, spec.local) &&
    v.devIndex === spec.devIndex &&
    (v.port ?? KERNEL_DEFAULT_PORT) === (spec.port || KERNEL_DEFAULT_PORT) &&
    Boolean(v.learning) === spec.learning &&
    Boolean(v.gbp) === spec.gbp
  );
}

/** What makes `link` incompatible with `spec` (isCompatible's tests, spelled out), and a wrong MTU. */
export function vxlanDifferences(link: Link, spec: VxlanDeviceSpec): string[] {
  const v = link.vxlan;
  if (link.kind !== "vxlan" || !v) return [`it is a ${link.kind ?? "plain"} device, not vxlan`];
  const found: string[] = [];
  const port = v.port ?? KERNEL_DEFAULT_PORT;
  const wantedPort = spec.port || KERNEL_DEFAULT_PORT;
  if (v.vni !== spec.vni) found.push(`VNI ${v.vni}, expected ${spec.vni}`);
  if (port !== wantedPort) found.push(`port ${port}, expected ${wantedPort}`);
  if (!sameAddress(v.local, spec.local))
    found.push(`local address ${v.local ?? "none"}, expected ${spec.local}`);
  if (v.devIndex !== spec.devIndex) found.push(`bound to device #${v.devIndex}, expected #${spec.devIndex}`);
  if (Boolean(v.learning) !== spec.learning)
    found.push(`learning ${Boolean(v.learning)}, expected ${spec.learning}`);
  if (Boolean(v.gbp) !== spec.gbp) found.push(`gbp ${Boolean(v.gbp)}, expected ${spec.gbp}`);
  if (link.mtu !== spec.mtu) found.push(`MTU ${link.mtu}, expected ${spec.mtu}`);
  if (!link.up) found.push("it is down");
  return found;
}

/** Makes sure the device exists, matches `spec`, is up; returns it and whether it was (re)created. */
export async function ensureVxlanDevice(
  netlink: RtNetlink,
  spec: VxlanDeviceSpec,
  log: (message: string) => void,
): Promise<{ link: Link; created: boolean }> {
  let link = await netlink.linkFind(spec.name);
  let created = false;
  if (link && !isCompatible(link, spec)) {
    log(`device ${spec.name} exists with other vxlan parameters; replacing it`);
    await netlink.linkDel(link.index);
    link = undefined;
  }
  if (!link) {
    await netlink.linkAdd({
      kind: "vxlan",
      name: spec.name,
      mtu: spec.mtu,
      // flanneld creates the device with no transmit queue; `ip link` then shows no qlen, as in the reference.
      txqlen: 0,
      ...(spec.mac ? { mac: spec.mac } : {}),
      vxlan: {
        vni: spec.vni,
        local: spec.local,
        devIndex: spec.devIndex,
        ...(spec.port ? { port: spec.port } : {}),
        learning: spec.learning,
        gbp: spec.gbp,
      },
    });
    created = true;
    link = await netlink.linkGet(spec.name);
  }
  if (link.mtu !== spec.mtu) await netlink.linkSetMtu(link.index, spec.mtu);
  await ignoreRouterAdvertisements(spec.name);
  if (!link.up) await netlink.linkSetUp(link.index);
  return { link: await netlink.linkGet(link.index), created };
}

/**
 * As flanneld: no router advertisement arriving through the overlay configures addresses or routes on the
 * device. Best effort, as in flanneld: a kernel without IPv6 has no such file.
 */
async function ignoreRouterAdvertisements(device: string): Promise<void> {
  await writeFile(`/proc/sys/net/ipv6/conf/${device}/accept_ra`, "0").catch(() => {});
}

/** Leaves exactly one global address on the device: the subnet's network address as a host route. */
export async function ensureVtepAddress(netlink: RtNetlink, index: number, subnet: IPNetwork): Promise<void> {
  const wanted = formatIP(networkAddress(subnet));
  const hostLen = subnet.family === 4 ? 32 : 128;
  const family = subnet.family;
  const current = (await netlink.addrList(family, index)).filter(
    (a) => a.index === index && a.scope === RT_SCOPE_UNIVERSE,
  );
  let present = false;
  for (const a of current) {
    if (sameAddress(a.address, wanted) && a.prefixlen === hostLen) present = true;
    else await netlink.addrDel({ index, address: a.address, prefixlen: a.prefixlen });
  }
  if (!present) await netlink.addrAdd({ index, address: wanted, prefixlen: hostLen });
}
