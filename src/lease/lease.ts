/** A subnet lease: which subnet(s) a host holds and how peers reach it. */
import type { IPNetwork } from "../ip/ip-network.js";

/** What a host publishes with its lease (flanneld's LeaseAttrs). */
export interface LeaseAttrs {
  /** The host's IPv4 address on the underlay, as text. */
  readonly publicIP: string | undefined;
  readonly publicIPv6: string | undefined;
  /** Empty for flanneld's udp backend, which writes no BackendType. */
  readonly backendType: string | undefined;
  /** Backend-specific JSON, e.g. vxlan's {"VNI":1,"VtepMAC":"..."}; kept as parsed JSON. */
  readonly backendData: unknown;
  readonly backendV6Data: unknown;
}

/** Attributes with addresses only: no BackendType and no BackendData (flannel's udp, alloc, gce leases). */
export function addressOnlyAttrs(publicIP: string | undefined, publicIPv6?: string): LeaseAttrs {
  return { publicIP, publicIPv6, backendType: undefined, backendData: undefined, backendV6Data: undefined };
}

export interface Lease {
  /** The store key's last part, e.g. "10.244.4.0-24" or "10.244.4.0-24&fd44:0:0:36::-64". */
  readonly key: string;
  readonly subnet: IPNetwork | undefined;
  readonly ipv6Subnet: IPNetwork | undefined;
  readonly attrs: LeaseAttrs;
  /** A reservation is a lease an operator wrote without a TTL: it never expires and is never taken over. */
  readonly reservation: boolean;
}
