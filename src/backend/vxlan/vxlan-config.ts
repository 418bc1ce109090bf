/** The vxlan backend's keys in Backend{...}, with flannel's defaults. */
import { BackendKeys } from "../backend-keys.js";

export interface VxlanConfig {
  readonly vni: number;
  /** UDP port; 0 lets the kernel use its default (8472, as flannel does). */
  readonly port: number;
  readonly gbp: boolean;
  readonly learning: boolean;
  readonly directRouting: boolean;
  /** 0 means the external interface's MTU minus the encapsulation overhead. */
  readonly mtu: number;
}

export function parseVxlanConfig(backend: Readonly<Record<string, unknown>>): VxlanConfig {
  const keys = new BackendKeys("vxlan", backend);
  return {
    vni: keys.int("VNI", 1, 0, 0xffffff),
    port: keys.int("Port", 0, 0, 65535),
    gbp: keys.bool("GBP", false),
    learning: keys.bool("Learning", false),
    directRouting: keys.bool("DirectRouting", false),
    mtu: keys.int("MTU", 0, 0, 65535),
  };
}

/** flanneld's device names: flannel.<VNI> and flannel-v6.<VNI>. */
export function vxlanDeviceName(family: 4 | 6, vni: number): string {
  return family === 4 ? `flannel.${vni}` : `flannel-v6.${vni}`;
}

/** VXLAN adds 50 bytes over IPv4 and 70 over IPv6 (outer IP + UDP + VXLAN + inner Ethernet). */
export function vxlanOverhead(family: 4 | 6): number {
  return family === 4 ? 50 : 70;
}
