/** The udp backend's keys in Backend{...}, with flannel's defaults (pkg/backend/udp). */
import { BackendKeys } from "../backend-keys.js";

/** flanneld's device: one TUN named flannel0 per host. */
export const UDP_DEVICE = "flannel0";

/** The encapsulation adds an outer IPv4 header (20 bytes) and a UDP header (8). */
export const UDP_OVERHEAD = 28;

export interface UdpConfig {
  /** The UDP port every host listens on and sends to: flannel's default 8285. */
  readonly port: number;
}

export function parseUdpConfig(backend: Readonly<Record<string, unknown>>): UdpConfig {
  const keys = new BackendKeys("udp", backend);
  return { port: keys.int("Port", 8285, 1, 65535) };
}

/** flanneld's MTU for flannel0: the external interface's minus the encapsulation. */
export function udpMtu(externalMtu: number): number {
  return externalMtu - UDP_OVERHEAD;
}
