/**
 * The peers of our WireGuard devices as a kind of managed state: one entry per (device, public key),
 * read from the device (UAPI get=1) and written with set=1, so a peer removed or changed by hand is put
 * back by the next full run (no notifications exist for this state: the 30 s timer repairs it).
 */
import type { KindShape, StateKind } from "../../reconcile/state-kind.js";
import type { WireguardControl } from "./wireguard-control.js";
import { ZERO_KEY_HEX } from "./wireguard-uapi.js";

export interface WgPeerEntry {
  readonly device: string;
  /** base64, as in leases. */
  readonly publicKey: string;
  /** base64, or undefined for none. */
  readonly presharedKey: string | undefined;
  /** "172.31.0.2:51820" or "[fd31::2]:51821". */
  readonly endpoint: string;
  readonly keepaliveSeconds: number;
  /** Sorted CIDRs: the peer's subnets. */
  readonly allowedIPs: readonly string[];
}

export const wgPeerShape: KindShape<WgPeerEntry> = {
  name: "wg-peer",
  plural: "wireguard peers",
  key: (e) => `${e.device} ${e.publicKey}`,
  same: (a, b) =>
    a.device === b.device &&
    a.publicKey === b.publicKey &&
    a.presharedKey === b.presharedKey &&
    a.endpoint === b.endpoint &&
    a.keepaliveSeconds === b.keepaliveSeconds &&
    a.allowedIPs.length === b.allowedIPs.length &&
    a.allowedIPs.every((ip, i) => ip === b.allowedIPs[i]),
  describe: (e) =>
    `wireguard peer ${e.publicKey} on ${e.device} at ${e.endpoint} for ${e.allowedIPs.join(",")}`,
};

const hex = (base64: string) => Buffer.from(base64, "base64").toString("hex");
const base64 = (hexText: string) => Buffer.from(hexText, "hex").toString("base64");

/**
 * How far apart in time hosts put a new peer with a persistent keepalive: the backend's value. Hosts
 * that learn of each other at the same moment (a cluster started together) would otherwise send their
 * first handshake initiations at the same instant; each then consumes the other's, both answers are
 * refused ("invalid response"), and wireguard-go's keepalive timer, which has no jitter, repeats it in
 * lockstep every interval (seen in the lab for 50 s and more). A random delay of up to this long per
 * host makes crossing initiations (within one round trip) unlikely.
 */
export const PEER_SPREAD_MS = 1000;

export function wgPeerKind(
  control: () => WireguardControl | undefined,
  spreadMs = 0,
): StateKind<WgPeerEntry> {
  const running = (): WireguardControl => {
    const c = control();
    if (!c) throw new Error("the wireguard devices are not set up yet");
    return c;
  };
  return {
    ...wgPeerShape,
    layer: 0,
    // Every peer on flannel-wg is ours: the device is.
    owns() {
      return true;
    },
    async readActual() {
      const entries: WgPeerEntry[] = [];
      const devices = control();
      if (!devices) return entries;
      for (const device of devices.names) {
        const state = await devices.get(device);
        for (const peer of state?.peers ?? []) {
          entries.push({
            device,
            publicKey: base64(peer.publicKey),
            presharedKey: peer.presharedKey === ZERO_KEY_HEX ? undefined : base64(peer.presharedKey),
            endpoint: peer.endpoint ?? "",
            keepaliveSeconds: peer.keepaliveSeconds,
            allowedIPs: [...peer.allowedIPs].sort(),
          });
        }
      }
      return entries;
    },
    async put(entry) {
      if (spreadMs > 0 && entry.keepaliveSeconds > 0) {
        await new Promise((resolve) => setTimeout(resolve, Math.random() * spreadMs));
      }
      await running().setPeer(entry.device, {
        publicKey: hex(entry.publicKey),
        presharedKey: entry.presharedKey ? hex(entry.presharedKey) : undefined,
        endpoint: entry.endpoint,
        keepaliveSeconds: entry.keepaliveSeconds,
        allowedIPs: entry.allowedIPs,
      });
    },
    async remove(entry) {
      // A device that is gone took its peers with it.
      const devices = control();
      if (!devices || !(await devices.get(entry.device))) return;
      await devices.removePeer(entry.device, hex(entry.publicKey));
    },
  };
}
