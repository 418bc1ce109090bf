/**
 * Who wrote an etcd lease value, as far as its bytes tell. weft writes flanneld's exact bytes (Go's field
 * order, PublicIPv6 always present), so weft and a current flanneld cannot be told apart; older flanneld
 * (e.g. v0.7.0) wrote no PublicIPv6 field; anything else was written by another tool or by hand. Pure.
 */
import type { LeaseAttrs } from "../lease/lease.js";
import { encodeLeaseAttrs } from "../lease/lease-json.js";

export const WRITER_CURRENT = "weft or flanneld";
export const WRITER_OLD_FLANNELD = "flanneld before IPv6 support (e.g. v0.7)";
export const WRITER_OTHER = "other (not flannel's byte form)";

export function leaseWriter(value: string, attrs: LeaseAttrs | undefined): string {
  if (!attrs) return WRITER_OTHER;
  const canonical = encodeLeaseAttrs(attrs);
  if (value === canonical) return WRITER_CURRENT;
  // flanneld before IPv6 support: the same value without the PublicIPv6 member.
  if (attrs.publicIPv6 === undefined && value === canonical.replace(',"PublicIPv6":null', "")) {
    return WRITER_OLD_FLANNELD;
  }
  return WRITER_OTHER;
}
