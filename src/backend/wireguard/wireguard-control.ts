/**
 * How weft reads and writes a WireGuard device, whichever datapath runs it: the kernel module over
 * generic netlink (wireguard-kernel.ts) or wireguard-go over its UAPI socket (wireguard-devices.ts).
 * Keys are hex, as both speak them; the state read back is the same UapiDevice shape.
 */
import type { UapiDevice, UapiPeerSet } from "./wireguard-uapi.js";

export interface WireguardControl {
  /** "kernel" or "wireguard-go", for logs. */
  readonly datapath: string;
  readonly names: readonly string[];
  /** Every device exists (made or its process started as needed). */
  ensureAll(): Promise<void>;
  /** The device's state, or undefined when it does not exist. */
  get(device: string): Promise<UapiDevice | undefined>;
  setDevice(device: string, privateKeyHex: string, listenPort: number): Promise<void>;
  setPeer(device: string, peer: UapiPeerSet): Promise<void>;
  removePeer(device: string, publicKeyHex: string): Promise<void>;
  /** weftd stops: the device stays, so traffic flows until the next weftd. */
  close(): void;
}
