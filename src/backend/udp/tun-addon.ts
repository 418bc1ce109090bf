// Loads the udp backend's native half (native/tun.c): the TUN device and the forwarding threads.
import { loadTunNative } from "../../runtime/native-modules.js";

/** An opaque handle to a running forwarder (two threads, the TUN fd and the UDP socket). */
export type ForwarderHandle = { readonly __forwarder: unique symbol };

export interface ForwarderRoute {
  readonly network: string;
  readonly prefixLen: number;
  readonly peer: string;
  readonly port: number;
}

export interface ForwarderStats {
  /** Packets (bytes) read from the TUN and sent to peers. */
  readonly txPackets: number;
  readonly txBytes: number;
  /** Packets (bytes) received on the port and written to the TUN. */
  readonly rxPackets: number;
  readonly rxBytes: number;
  /** Packets to an address no peer's subnet holds: dropped, answered with ICMP net-unreachable. */
  readonly noRoute: number;
  readonly unreachableSent: number;
  readonly ttlExpired: number;
  /** Not IPv4, shorter than an IPv4 header, or truncated. */
  readonly malformed: number;
  readonly sendErrors: number;
  readonly tunWriteErrors: number;
  /** Whether runs of packets to one peer still go as UDP GSO sends. */
  readonly gso: boolean;
  /** The TUN device went away (deleted): this forwarder has stopped sending and must be replaced. */
  readonly tunLost: boolean;
  /** errno name of the latest failed send or TUN write. */
  readonly lastError?: string;
}

export interface TunAddon {
  /**
   * Opens (creating if needed) the TUN device `name` without packet info and sets its transmit queue
   * length; returns its fd. EBUSY: another process holds the device; EINVAL: the name is not a TUN.
   */
  openTun(name: string, txqlen: number): number;
  closeFd(fd: number): void;
  /** Binds UDP to bindAddress:port and starts forwarding; takes over tunFd (stop() closes it). */
  start(tunFd: number, bindAddress: string, port: number, tunAddress: string, gso: boolean): ForwarderHandle;
  stop(forwarder: ForwarderHandle): void;
  /** Adds or replaces a route; throws EEXIST if it overlaps another subnet in the table. */
  setRoute(forwarder: ForwarderHandle, network: string, prefixLen: number, peer: string, port: number): void;
  deleteRoute(forwarder: ForwarderHandle, network: string, prefixLen: number): boolean;
  routes(forwarder: ForwarderHandle): ForwarderRoute[];
  stats(forwarder: ForwarderHandle): ForwarderStats;
  /** The ICMP net-unreachable reply the forwarder sends for `packet`, from `source`; null if none is due. */
  netUnreachable(packet: Uint8Array, source: string): Buffer | null;
}

let loaded: TunAddon | undefined;

export function tunAddon(): TunAddon {
  if (loaded === undefined) {
    loaded = loadTunNative() as TunAddon;
  }
  return loaded;
}
