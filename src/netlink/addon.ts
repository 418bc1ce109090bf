// Loads the native half (native/netlink.c): sockets, send and a readable-poll; plus systemd's notify
// datagram (native/sd-notify.c, in the same module), which Node cannot send itself.
import { loadNetlinkNative } from "../runtime/native-modules.js";

export interface NetlinkAddon {
  /**
   * Opens an AF_NETLINK socket bound to `groups`, inside `netnsPath` when given, with a receive
   * buffer of `rcvbuf` bytes (8 MiB by default). Returns the fd.
   */
  open(protocol: number, groups: number, netnsPath?: string | null, rcvbuf?: number): number;
  addMembership(fd: number, group: number): void;
  /** Sends one datagram to the kernel; throws an Error with .code (e.g. "EAGAIN") on failure. */
  send(fd: number, buf: Uint8Array): number;
  /** Delivers received datagrams in batches; err is an errno name such as "ENOBUFS" (events lost). */
  poll(fd: number, callback: (err: string | null, datagrams: Buffer[]) => void): void;
  unpoll(fd: number): void;
  close(fd: number): void;
  /** Moves the calling (main) thread into the network namespace at `path`. */
  enterNetns(path: string): void;
}

export interface ResidentCodeAddon {
  /** Gives the clean pages of private file mappings back to the kernel (MADV_PAGEOUT); bytes advised. */
  pageOutCode(): number;
}

export interface NotifyAddon {
  /** Sends one datagram to a unix socket path or "@abstract" name without blocking (src/daemon/sd-notify.ts). */
  sdNotify(socket: string, message: string): void;
}

let loaded: (NetlinkAddon & NotifyAddon & ResidentCodeAddon) | undefined;

/** The addon, loaded on first use so that pure codec users never need the compiled module. */
export function addon(): NetlinkAddon {
  return loadAddon();
}

export function notifyAddon(): NotifyAddon {
  return loadAddon();
}

export function residentCodeAddon(): ResidentCodeAddon {
  return loadAddon();
}

function loadAddon(): NetlinkAddon & NotifyAddon & ResidentCodeAddon {
  if (loaded === undefined) {
    loaded = loadNetlinkNative() as NetlinkAddon & NotifyAddon & ResidentCodeAddon;
  }
  return loaded;
}
