/**
 * The udp backend's forwarding table as a kind of managed state: one entry per peer subnet, naming the
 * host and port its packets go to. The table lives in the native forwarder (not the kernel), so the
 * actual entries are the forwarder's; there are no notifications (nobody else writes the table) and a
 * new forwarder, after flannel0 is re-created, starts empty and is refilled by the next full run.
 */
import type { KindShape, StateKind } from "../../reconcile/state-kind.js";
import type { UdpForwarder } from "./udp-forwarder.js";

export interface UdpPeerEntry {
  /** The peer's subnet, e.g. "10.244.2.0/24": packets to it go to the peer. */
  readonly subnet: string;
  /** The peer host's PublicIP and the UDP port it listens on. */
  readonly peer: string;
  readonly port: number;
}

export const udpPeerShape: KindShape<UdpPeerEntry> = {
  name: "udp-peer",
  plural: "udp peers",
  key: (e) => e.subnet,
  same: (a, b) => a.subnet === b.subnet && a.peer === b.peer && a.port === b.port,
  describe: (e) => `udp peer ${e.subnet} -> ${e.peer}:${e.port}`,
};

/** The kind over whichever forwarder runs now (none before start and while flannel0 is re-made). */
export function udpPeerKind(forwarder: () => UdpForwarder | undefined): StateKind<UdpPeerEntry> {
  const running = (): UdpForwarder => {
    const f = forwarder();
    if (!f) throw new Error("the udp forwarder is not running");
    return f;
  };
  return {
    ...udpPeerShape,
    layer: 0,
    // The table is ours alone.
    owns() {
      return true;
    },
    async readActual() {
      return forwarder()?.routes() ?? [];
    },
    async put(entry) {
      running().setRoute(entry);
    },
    async remove(entry) {
      forwarder()?.deleteRoute(entry);
    },
  };
}
