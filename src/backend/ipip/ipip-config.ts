/** The ipip backend's keys in Backend{...} (flannel has one: DirectRouting) and its device. */
import { BackendKeys } from "../backend-keys.js";

export interface IpipConfig {
  readonly directRouting: boolean;
}

export function parseIpipConfig(backend: Readonly<Record<string, unknown>>): IpipConfig {
  const keys = new BackendKeys("ipip", backend);
  return { directRouting: keys.bool("DirectRouting", false) };
}

/** flanneld's device name. */
export const IPIP_DEVICE = "flannel.ipip";

/** The outer IPv4 header. */
export const IPIP_OVERHEAD = 20;
