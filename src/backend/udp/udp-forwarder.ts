/**
 * The running forwarder, as the backend sees it: started on the TUN device, its route table brought to
 * the desired forwarding table by diff (the table is the kernel-like state this backend owns), stopped
 * on close. Stopping closes the TUN, which removes flannel0 with its address and route, as flanneld's
 * exit does.
 */
import { type ForwarderHandle, type ForwarderStats, tunAddon } from "./tun-addon.js";
import { type ForwardingEntry, forwardingKey, sameForwarding } from "./udp-forwarding.js";

export interface ForwarderOptions {
  /** The external interface's IPv4 address: flanneld binds its UDP socket to it. */
  readonly bindAddress: string;
  readonly port: number;
  /** Our address on flannel0 (the subnet's .0): the source of ICMP net-unreachable replies. */
  readonly tunAddress: string;
}

export class UdpForwarder {
  private handle: ForwarderHandle | undefined;

  private constructor(handle: ForwarderHandle) {
    this.handle = handle;
  }

  /** Starts forwarding on an open TUN fd (which it takes over, also on failure). */
  static start(tunFd: number, options: ForwarderOptions): UdpForwarder {
    const addon = tunAddon();
    try {
      return new UdpForwarder(
        addon.start(tunFd, options.bindAddress, options.port, options.tunAddress, true),
      );
    } catch (err) {
      addon.closeFd(tunFd);
      throw err;
    }
  }

  get running(): boolean {
    return this.handle !== undefined;
  }

  /** The routes the forwarder holds now. */
  actual(): ForwardingEntry[] {
    if (!this.handle) return [];
    return tunAddon()
      .routes(this.handle)
      .map((r) => ({
        subnet: `${r.network}/${r.prefixLen}`,
        network: r.network,
        prefixLen: r.prefixLen,
        peer: r.peer,
        port: r.port,
      }));
  }

  /** Brings the route table to `desired`; returns one message per entry that could not be set. */
  sync(desired: readonly ForwardingEntry[]): { changes: number; failures: string[] } {
    const handle = this.handle;
    if (!handle) return { changes: 0, failures: ["the forwarder is stopped"] };
    const addon = tunAddon();
    const wanted = new Map(desired.map((e) => [forwardingKey(e), e]));
    let changes = 0;
    const failures: string[] = [];
    // Removals first, so a subnet that moved to a new key never overlaps its old self.
    for (const have of this.actual()) {
      const want = wanted.get(forwardingKey(have));
      if (want && sameForwarding(want, have)) {
        wanted.delete(forwardingKey(have));
        continue;
      }
      if (!want) {
        addon.deleteRoute(handle, have.network, have.prefixLen);
        changes++;
      }
    }
    for (const entry of wanted.values()) {
      try {
        addon.setRoute(handle, entry.network, entry.prefixLen, entry.peer, entry.port);
        changes++;
      } catch (err) {
        failures.push(`forwarding ${entry.subnet} to ${entry.peer}:${entry.port}: ${(err as Error).message}`);
      }
    }
    return { changes, failures };
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
