/**
 * flannel0, the udp backend's TUN device, as flanneld makes it: IFF_TUN without packet info, not
 * persistent (it lives as long as our fd), MTU = external MTU - 28, up, one address: the subnet's .0 as
 * a /32. One difference, measured (BENCHMARKS.md): the transmit queue is 2000 packets, not the kernel's
 * 500, so bursts wait while the forwarder thread waits for a CPU instead of being dropped and resent.
 */
import { writeFile } from "node:fs/promises";
import type { Link, RtNetlink } from "../../netlink/index.js";
import { UserError } from "../../user-error.js";
import { tunAddon } from "./tun-addon.js";

export const UDP_TX_QUEUE_LEN = 2000;

/** A restart may find the old weftd still closing its fd; wait this long before calling it a conflict. */
const BUSY_WAIT_MS = 5000;
const BUSY_POLL_MS = 100;

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

function errnoOf(err: unknown): string | undefined {
  return (err as { code?: string }).code;
}

/** Opens flannel0 (creating it), replacing a device of that name that is not a TUN; returns the fd. */
export async function openUdpDevice(
  netlink: RtNetlink,
  name: string,
  log: (message: string) => void,
): Promise<number> {
  const started = Date.now();
  for (;;) {
    try {
      return tunAddon().openTun(name, UDP_TX_QUEUE_LEN);
    } catch (err) {
      const code = errnoOf(err);
      if (code === "EINVAL") {
        const link = await netlink.linkFind(name);
        if (link && link.kind !== "tun") {
          log(`device ${name} exists but is a ${link.kind ?? "plain"} device, not a TUN; replacing it`);
          await netlink.linkDel(link.index);
          continue;
        }
      }
      if (code === "EBUSY" && Date.now() - started < BUSY_WAIT_MS) {
        await sleep(BUSY_POLL_MS);
        continue;
      }
      throw describeOpenError(name, code, err as Error);
    }
  }
}

function describeOpenError(name: string, code: string | undefined, err: Error): Error {
  switch (code) {
    case "EBUSY":
      return new UserError(
        `the TUN device ${name} is held by another process`,
        "stop the other flanneld or weftd on this host; only one can run the udp backend",
      );
    case "ENOENT":
    case "ENODEV":
      return new UserError("/dev/net/tun is missing", "load the tun module (modprobe tun)");
    case "EPERM":
    case "EACCES":
      return new UserError(`cannot create the TUN device ${name}: ${err.message}`, "run weftd as root");
    default:
      return err;
  }
}

/**
 * MTU and up, as flanneld sets them; returns the device as it is now. Also accept_local: the forwarder's
 * ICMP net-unreachable comes from flannel0's own address (as flanneld's), which the kernel would
 * otherwise drop as a martian source when it arrives on flannel0.
 */
export async function configureUdpDevice(netlink: RtNetlink, name: string, mtu: number): Promise<Link> {
  const link = await netlink.linkGet(name);
  if (link.mtu !== mtu) await netlink.linkSetMtu(link.index, mtu);
  if (!link.up) await netlink.linkSetUp(link.index);
  await writeFile(`/proc/sys/net/ipv4/conf/${name}/accept_local`, "1");
  return link;
}
