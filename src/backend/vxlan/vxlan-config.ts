/** The vxlan backend's keys in Backend{...}, with flannel's defaults. */
import { ConfigError } from "../../config/network-config.js";
import { BackendKeys } from "../backend-keys.js";

/** The smallest device MTU the kernel accepts (IPv4, ETH_MIN_MTU), and the one below which it turns IPv6 off. */
const MIN_MTU = { 4: 68, 6: 1280 } as const;

export interface VxlanConfig {
  readonly vni: number;
  /** UDP port; 0 lets the kernel use its default (8472, as flannel does). */
  readonly port: number;
  readonly gbp: boolean;
  readonly learning: boolean;
  readonly directRouting: boolean;
  /**
   * The MTU of the encapsulated packets leaving the host (flannel HEAD's meaning: the device gets this
   * minus the overhead); 0 means the external interface's MTU.
   */
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
    mtu: readMtu(keys),
  };
}

function readMtu(keys: BackendKeys): number {
  const mtu = keys.int("MTU", 0, 0, 65535);
  if (mtu !== 0 && mtu < MIN_MTU[4]) {
    throw new ConfigError(
      `Backend.MTU ${mtu} of the vxlan backend is below ${MIN_MTU[4]}, the least a device can have; leave it out to use the interface's MTU less the VXLAN overhead`,
    );
  }
  return mtu;
}

/** flanneld's device names: flannel.<VNI> and flannel-v6.<VNI>. */
export function vxlanDeviceName(family: 4 | 6, vni: number): string {
  return family === 4 ? `flannel.${vni}` : `flannel-v6.${vni}`;
}

/** VXLAN adds 50 bytes over IPv4 and 70 over IPv6 (outer IP + UDP + VXLAN + inner Ethernet). */
export function vxlanOverhead(family: 4 | 6): number {
  return family === 4 ? 50 : 70;
}

/**
 * The vxlan device's MTU: the outgoing packets' MTU (Backend.MTU, else the interface's) minus the
 * encapsulation, so outer packets fit it. flanneld takes 50 for both families; over IPv6 that makes outer
 * packets 20 bytes too big, so the IPv6 device takes 70, as the kernel's own default (flanneld v0.20.2).
 */
export function vxlanDeviceMtu(
  family: 4 | 6,
  configured: number,
  ext: { readonly name: string; readonly mtu: number },
): number {
  // The kernel refuses (EINVAL) a vxlan MTU above its lower device's less the overhead: say so first.
  if (configured > ext.mtu) {
    throw new ConfigError(
      `Backend.MTU ${configured} of the vxlan backend does not fit ${ext.name}, whose MTU is ${ext.mtu}: ` +
        `the encapsulated packets must fit it; set Backend.MTU to ${ext.mtu} or less, or leave it out`,
    );
  }
  const outer = configured || ext.mtu;
  const mtu = outer - vxlanOverhead(family);
  if (mtu < MIN_MTU[family]) {
    const source = configured ? `Backend.MTU ${configured}` : `the MTU ${ext.mtu} of ${ext.name}`;
    throw new ConfigError(
      `${source} leaves the IPv${family} vxlan device ${mtu} bytes, below the ${MIN_MTU[family]} IPv${family} needs; ` +
        `use an MTU of at least ${MIN_MTU[family] + vxlanOverhead(family)}`,
    );
  }
  return mtu;
}
