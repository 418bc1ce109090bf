/**
 * The JSON of flanneld v0.7's client/server REST API (/v1/<network>/...), byte for byte as v0.7 writes it
 * (Go's encoding/json, struct field order): a lease is
 * {"Subnet":"10.66.49.0/24","Attrs":{"PublicIP":...,"BackendType":...,"BackendData":...},"Expiration":...},
 * a watch answer {"events":[...]|null,"snapshot":[...]|null,"cursor":"<n>"}. Pure: text in, values out.
 */
import { isPlainObject } from "../../config/json-fields.js";
import type { NetworkConfig } from "../../config/network-config.js";
import { formatIP } from "../../ip/ip-address.js";
import { formatCIDR, parseCIDR } from "../../ip/ip-network.js";
import { addressOnlyAttrs, type Lease, type LeaseAttrs } from "../../lease/lease.js";
import { decodeLeaseAttrs } from "../../lease/lease-json.js";
import { subnetKey } from "../../lease/lease-key.js";
import { describeValue } from "../../text/untrusted-text.js";

/** Go's zero time.Time: a lease that never expires (a reservation) or a removed one. */
export const ZERO_TIME = "0001-01-01T00:00:00Z";

/** A lease as the API carries it: the store's lease and when it expires (RFC 3339, Go's form). */
export interface ApiLease {
  readonly lease: Lease;
  readonly expiration: string;
}

export interface LeaseEvent {
  readonly type: "added" | "removed";
  readonly lease: ApiLease;
}

/** One long-poll answer: a snapshot (the full set) or events after the cursor, and the new cursor. */
export type WatchAnswer =
  | { readonly snapshot: readonly ApiLease[]; readonly events?: undefined; readonly cursor: string }
  | { readonly events: readonly LeaseEvent[]; readonly snapshot?: undefined; readonly cursor: string };

/** Go's time.Time in RFC 3339 with its fraction's trailing zeros dropped, as encoding/json writes it. */
export function formatGoTime(date: Date): string {
  return date
    .toISOString()
    .replace(/\.?0+Z$/, "Z")
    .replace(/\.Z$/, "Z");
}

/** v0.7's LeaseAttrs: PublicIP always, BackendType and BackendData when set (no IPv6 in v0.7). */
export function encodeApiAttrs(attrs: LeaseAttrs): string {
  let text = `{"PublicIP":${JSON.stringify(attrs.publicIP ?? "0.0.0.0")}`;
  if (attrs.backendType) text += `,"BackendType":${JSON.stringify(attrs.backendType)}`;
  if (attrs.backendData !== undefined && attrs.backendData !== null) {
    text += `,"BackendData":${JSON.stringify(attrs.backendData)}`;
  }
  return `${text}}`;
}

export function encodeApiLease({ lease, expiration }: ApiLease): string {
  const subnet = lease.subnet ? formatCIDR(lease.subnet) : "0.0.0.0/0";
  return `{"Subnet":${JSON.stringify(subnet)},"Attrs":${encodeApiAttrs(lease.attrs)},"Expiration":${JSON.stringify(expiration)}}`;
}

/** A removed lease: v0.7 sends only its subnet, zero attrs and zero time. */
export function removedApiLease(lease: Lease): ApiLease {
  return { lease: { ...lease, attrs: addressOnlyAttrs(undefined) }, expiration: ZERO_TIME };
}

export function encodeWatchAnswer(answer: WatchAnswer): string {
  const events = answer.events
    ? `[${answer.events.map((e) => `{"type":${JSON.stringify(e.type)},"lease":${encodeApiLease(e.lease)}}`).join(",")}]`
    : "null";
  const snapshot = answer.snapshot ? `[${answer.snapshot.map(encodeApiLease).join(",")}]` : "null";
  return `{"events":${events},"snapshot":${snapshot},"cursor":${JSON.stringify(answer.cursor)}}`;
}

/** The networks list (GET /v1/): a snapshot of names. */
export function encodeNetworksAnswer(names: readonly string[], cursor: string): string {
  return `{"events":null,"snapshot":${JSON.stringify(names)},"cursor":${JSON.stringify(cursor)}}`;
}

/** v0.7's Config with its defaults filled in: Network, SubnetMin, SubnetMax, SubnetLen, Backend. */
export function encodeApiConfig(config: NetworkConfig): string {
  const parts: string[] = [];
  const v4 = config.ipv4;
  if (v4) {
    parts.push(`"Network":${JSON.stringify(formatCIDR(v4.network))}`);
    parts.push(`"SubnetMin":${JSON.stringify(formatIP(v4.subnetMin))}`);
    parts.push(`"SubnetMax":${JSON.stringify(formatIP(v4.subnetMax))}`);
    parts.push(`"SubnetLen":${v4.subnetLen}`);
  }
  // Beyond v0.7 (which ignores unknown keys): what a weft client needs to keep the same config.
  if (!config.enableIPv4) parts.push(`"EnableIPv4":false`);
  const v6 = config.ipv6;
  if (v6) {
    parts.push(`"EnableIPv6":true`);
    parts.push(`"IPv6Network":${JSON.stringify(formatCIDR(v6.network))}`);
    parts.push(`"IPv6SubnetMin":${JSON.stringify(formatIP(v6.subnetMin))}`);
    parts.push(`"IPv6SubnetMax":${JSON.stringify(formatIP(v6.subnetMax))}`);
    parts.push(`"IPv6SubnetLen":${v6.subnetLen}`);
  }
  if (config.enableNFTables) parts.push(`"EnableNFTables":true`);
  if (Object.keys(config.backend).length > 0) parts.push(`"Backend":${JSON.stringify(config.backend)}`);
  return `{${parts.join(",")}}`;
}

export class ApiDecodeError extends Error {}

/** Decodes one lease someone sent (client: the server's answers; server: a renewal's body). */
export function decodeApiLease(value: unknown): ApiLease {
  if (!isPlainObject(value))
    throw new ApiDecodeError(`a lease must be a JSON object, not ${describeValue(value)}`);
  const subnetText = value.Subnet;
  const subnet = typeof subnetText === "string" ? parseCIDR(subnetText) : undefined;
  if (subnet?.family !== 4) {
    throw new ApiDecodeError(`lease Subnet ${describeValue(subnetText)} is not an IPv4 network`);
  }
  const attrs = decodeLeaseAttrs(JSON.stringify(value.Attrs ?? {}));
  const expiration = typeof value.Expiration === "string" ? value.Expiration : ZERO_TIME;
  // v0.7 gives a reservation (a lease without a TTL) Go's zero time.
  const reservation = expiration === ZERO_TIME;
  return {
    lease: { key: subnetKey(subnet, undefined), subnet, ipv6Subnet: undefined, attrs, reservation },
    expiration,
  };
}

export function decodeWatchAnswer(text: string): WatchAnswer {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw new ApiDecodeError("the watch answer is not JSON");
  }
  if (!isPlainObject(parsed)) throw new ApiDecodeError("the watch answer is not a JSON object");
  const cursor = parsed.cursor;
  if (typeof cursor !== "string" && typeof cursor !== "number") {
    throw new ApiDecodeError(`the watch answer has no cursor (${describeValue(cursor)})`);
  }
  if (Array.isArray(parsed.snapshot)) {
    return { snapshot: parsed.snapshot.map(decodeApiLease), cursor: String(cursor) };
  }
  const events = Array.isArray(parsed.events) ? parsed.events : [];
  return {
    events: events.map((e: unknown) => {
      if (!isPlainObject(e) || (e.type !== "added" && e.type !== "removed")) {
        throw new ApiDecodeError(`a watch event has type ${describeValue(isPlainObject(e) ? e.type : e)}`);
      }
      return { type: e.type, lease: decodeApiLease(e.lease) };
    }),
    cursor: String(cursor),
  };
}
