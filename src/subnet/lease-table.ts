/**
 * The cluster's leases as last seen in the store, keyed by subnet key. Values someone else wrote badly
 * are kept apart (their subnets still count as taken) and reported once each, never dropped silently.
 */

import type { Lease } from "../lease/lease.js";
import { describeLeaseFault } from "../lease/lease-fault.js";
import { decodeLeaseAttrs } from "../lease/lease-json.js";
import { parseSubnetKey, type SubnetPair, subnetKey } from "../lease/lease-key.js";
import { boundText } from "../text/untrusted-text.js";

export interface RawLease {
  /** The key below <prefix>/subnets/, e.g. "10.244.4.0-24". */
  readonly subnetKey: string;
  readonly value: string;
  readonly reservation: boolean;
}

export type DecodedLease =
  | { ok: true; lease: Lease }
  | { ok: false; subnets: SubnetPair | undefined; reason: string };

/** Never throws: whatever goes wrong with one value stays with that lease, as its reason. */
export function decodeRawLease(raw: RawLease): DecodedLease {
  const subnets = parseSubnetKey(raw.subnetKey);
  if (!subnets) {
    return { ok: false, subnets, reason: "the key is not a subnet in flannel's form (like 10.244.4.0-24)" };
  }
  // "10.244.4.0-024" names 10.244.4.0/24 too: a second key for one subnet, which flannel never writes.
  // Its subnet stays taken, but it is not routed, so it cannot compete with the lease that holds it.
  const canonical = subnetKey(subnets.subnet, subnets.ipv6Subnet);
  if (canonical !== raw.subnetKey) {
    return { ok: false, subnets, reason: `the key is not in flannel's form, which is ${canonical}` };
  }
  try {
    const attrs = decodeLeaseAttrs(raw.value);
    // Written out, not spread: a spread lays the object out with room it never uses (one per lease).
    const { subnet, ipv6Subnet } = subnets;
    return {
      ok: true,
      lease: { key: raw.subnetKey, subnet, ipv6Subnet, attrs, reservation: raw.reservation },
    };
  } catch (err) {
    return { ok: false, subnets, reason: describeLeaseFault(err, "reading it") };
  }
}

export class LeaseTable {
  readonly leases = new Map<string, Lease>();
  /** Keys whose value could not be read, with why. */
  readonly invalid = new Map<string, { subnets: SubnetPair | undefined; reason: string; value: string }>();

  /** Records a put; returns a warning the first time a given bad value is seen. */
  put(raw: RawLease): string | undefined {
    const decoded = decodeRawLease(raw);
    if (decoded.ok) {
      this.invalid.delete(raw.subnetKey);
      this.leases.set(raw.subnetKey, decoded.lease);
      return undefined;
    }
    this.leases.delete(raw.subnetKey);
    const seen = this.invalid.get(raw.subnetKey);
    this.invalid.set(raw.subnetKey, { subnets: decoded.subnets, reason: decoded.reason, value: raw.value });
    if (seen && seen.value === raw.value) return undefined;
    const key = boundText(raw.subnetKey);
    const held = decoded.subnets ? "; its subnet stays reserved" : "";
    return `ignoring lease ${key}: ${decoded.reason}${held} (fix or delete that key)`;
  }

  delete(subnetKey: string): void {
    this.leases.delete(subnetKey);
    this.invalid.delete(subnetKey);
  }

  /** Replaces everything with a fresh list; returns the warnings for bad values not reported before. */
  replaceAll(raws: RawLease[]): string[] {
    const keep = new Set(raws.map((r) => r.subnetKey));
    for (const key of [...this.leases.keys(), ...this.invalid.keys()]) if (!keep.has(key)) this.delete(key);
    const warnings: string[] = [];
    for (const raw of raws) {
      const warning = this.put(raw);
      if (warning) warnings.push(warning);
    }
    return warnings;
  }

  /** Subnets held by anyone, including keys whose value is unreadable. */
  *heldSubnets(): Generator<SubnetPair> {
    yield* this.leases.values();
    for (const { subnets } of this.invalid.values()) if (subnets) yield subnets;
  }
}
