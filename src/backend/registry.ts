/** Backends by the name used in the config's Backend.Type. Add a backend here: one line. */
import type { NetworkConfig } from "../config/network-config.js";
import { ConfigError } from "../config/network-config.js";
import { describeValue } from "../text/untrusted-text.js";
import { allocRegistration } from "./alloc/alloc-backend.js";
import { awsVpcRegistration } from "./aws-vpc/aws-vpc-backend.js";
import type { BackendFactory, BackendRegistration } from "./backend.js";
import { extensionRegistration } from "./extension/extension-backend.js";
import { gceRegistration } from "./gce/gce-backend.js";
import { hostGwRegistration } from "./host-gw/host-gw-backend.js";
import { ipipRegistration } from "./ipip/ipip-backend.js";
import { ipsecRegistration } from "./ipsec/ipsec-backend.js";
import { udpRegistration } from "./udp/udp-backend.js";
import { vxlanRegistration } from "./vxlan/vxlan-backend.js";
import { wireguardRegistration } from "./wireguard/wireguard-backend.js";

const BACKENDS: readonly BackendRegistration[] = [
  vxlanRegistration,
  hostGwRegistration,
  udpRegistration,
  allocRegistration,
  extensionRegistration,
  wireguardRegistration,
  ipipRegistration,
  ipsecRegistration,
  gceRegistration,
  awsVpcRegistration,
];

/** flannel's other backends: recognised, so the error can say they are not built yet. */
const NOT_YET = ["ali-vpc", "tencent-vpc"];

export function findBackend(type: string): BackendRegistration | undefined {
  const wanted = type.toLowerCase();
  return BACKENDS.find((b) => b.type === wanted);
}

/**
 * The registration for the config's backend and its checked settings, ready to create. Throws
 * ConfigError (weftd waits for a fixed config) for an unknown type or a bad backend key.
 */
export function configureBackend(config: NetworkConfig): {
  registration: BackendRegistration;
  create: BackendFactory;
} {
  const registration = findBackend(config.backendType);
  if (!registration) {
    const known = BACKENDS.map((b) => b.type).join(", ");
    const type = config.backendType;
    throw new ConfigError(
      NOT_YET.includes(type.toLowerCase())
        ? `backend ${describeValue(type)} is not supported by weft yet (use one of: ${known})`
        : `unknown backend type ${describeValue(type)} in Backend.Type (use one of: ${known})`,
    );
  }
  return { registration, create: registration.configure(config) };
}
