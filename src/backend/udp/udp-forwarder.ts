/**
 * The running forwarder (native/tun.c), as the backend sees it: started on the TUN device, its route
 * table read and written entry by entry (by the udp-peer kind), stopped on close. Stopping closes the
 * TUN, which removes flannel0 with its address and route, as flanneld's exit does.
 */
import { type ForwarderHandle, type ForwarderStats, tunAddon } from "./tun-addon.js";
import type { UdpPeerEntry } from "./udp-peer-kind.js";

export interface ForwarderOptions {
  /** The external interface's IPv4 address: flanneld binds its UDP socket to it. */
  readonly bindAddress: string;
  readonly port: number;
  /** Our address on flannel0 (the subnet's .0): the source of ICMP net-unreachable replies. */
  readonly tunAddress: string;
}

function splitCIDR(subnet: string): [string, number] {
  const [network, len] = subnet.split("/");
  return [network!, Number(len)];
}

export class UdpForwarder {
  private handle: ForwarderHandle | undefined;

  private constructor(
    handle: ForwarderHandle,
    readonly options: ForwarderOptions,
  ) {
    this.handle = handle;
  }

  /** Starts forwarding on an open TUN fd, which it takes over (closing it also when start fails). */
  static start(tunFd: number, options: ForwarderOptions): UdpForwarder {
    const addon = tunAddon();
    try {
      return new UdpForwarder(
        addon.start(tunFd, options.bindAddress, options.port, options.tunAddress, true),
        options,
      );
    } catch (err) {
      addon.closeFd(tunFd);
      throw err;
    }
  }

  private get running(): ForwarderHandle {
    if (!this.handle) throw new Error("the udp forwarder is stopped");
    return this.handle;
  }

  routes(): UdpPeerEntry[] {
    if (!this.handle) return [];
    return tunAddon()
      .routes(this.handle)
      .map((r) => ({ subnet: `${r.network}/${r.prefixLen}`, peer: r.peer, port: r.port }));
  }

  /** Adds or replaces the route for entry.subnet; throws EEXIST if it overlaps another subnet's. */
  setRoute(entry: UdpPeerEntry): void {
    const [network, prefixLen] = splitCIDR(entry.subnet);
    tunAddon().setRoute(this.running, network, prefixLen, entry.peer, entry.port);
  }

  deleteRoute(entry: UdpPeerEntry): void {
    const [network, prefixLen] = splitCIDR(entry.subnet);
    if (this.handle) tunAddon().deleteRoute(this.handle, network, prefixLen);
  }

  stats(): ForwarderStats | undefined {
    return this.handle ? tunAddon().stats(this.handle) : undefined;
  }

  stop(): void {
    if (!this.handle) return;
    tunAddon().stop(this.handle);
    this.handle = undefined;
  }
}
