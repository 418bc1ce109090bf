/** The vxlan backend's keys in Backend{...}, with flannel's defaults. */
import { ConfigError } from "../../config/network-config.js";
import { BackendKeys } from "../backend-keys.js";

/** The smallest MTU the kernel lets any Ethernet-like device have (ETH_MIN_MTU). */
const MIN_MTU = 68;

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
    mtu: readMtu(keys),
  };
}

function readMtu(keys: BackendKeys): number {
  const mtu = keys.int("MTU", 0, 0, 65535);
  if (mtu !== 0 && mtu < MIN_MTU) {
    throw new ConfigError(
      `Backend.MTU ${mtu} of the vxlan backend is below ${MIN_MTU}, the least a device can have; leave it out to use the interface's MTU less the VXLAN overhead`,
    );
  }
  return mtu;
}

/**
 * The MTU for the vxlan device over `ext`: Backend.MTU, or by default the interface's MTU less the
 * encapsulation. The kernel refuses (EINVAL) a vxlan MTU above its lower device's MTU less that overhead,
 * so a larger Backend.MTU is refused here, naming the key, the interface and the most it may be.
 */
export function vxlanDeviceMtu(
  configured: number,
  ext: { readonly name: string; readonly mtu: number },
  family: 4 | 6,
): number {
  const overhead = vxlanOverhead(family);
  const max = ext.mtu - overhead;
  if (configured === 0) {
    if (max < MIN_MTU) {
      throw new ConfigError(
        `the interface ${ext.name} has MTU ${ext.mtu}, too small for VXLAN over IPv${family} (${overhead} bytes of headers)`,
      );
    }
    return max;
  }
  if (configured > max) {
    throw new ConfigError(
      `Backend.MTU ${configured} of the vxlan backend does not fit ${ext.name}: its MTU ${ext.mtu} less ` +
        `${overhead} bytes of VXLAN over IPv${family} leaves at most ${max}; set Backend.MTU to ${max} or less, or leave it out`,
    );
  }
  return configured;
}

/** flanneld's device names: flannel.<VNI> and flannel-v6.<VNI>. */
export function vxlanDeviceName(family: 4 | 6, vni: number): string {
  return family === 4 ? `flannel.${vni}` : `flannel-v6.${vni}`;
}

/** VXLAN adds 50 bytes over IPv4 and 70 over IPv6 (outer IP + UDP + VXLAN + inner Ethernet). */
export function vxlanOverhead(family: 4 | 6): number {
  return family === 4 ? 50 : 70;
}
