/**
 * The JSON value flanneld stores for a lease, byte for byte:
 * {"PublicIP":"172.31.0.2","PublicIPv6":null,"BackendType":"vxlan","BackendData":{...}}
 * Field order is Go's struct order; PublicIPv6 is always written (null when absent); the rest are omitted
 * when empty.
 */
import { isPlainObject, JsonFields } from "../config/json-fields.js";
import { parseIPv4, parseIPv6 } from "../ip/ip-address.js";
import { describeValue } from "../text/untrusted-text.js";
import type { LeaseAttrs } from "./lease.js";

export function encodeLeaseAttrs(attrs: LeaseAttrs): string {
  let text = `{"PublicIP":${JSON.stringify(attrs.publicIP ?? "0.0.0.0")}`;
  text += `,"PublicIPv6":${attrs.publicIPv6 === undefined ? "null" : JSON.stringify(attrs.publicIPv6)}`;
  if (attrs.backendType) text += `,"BackendType":${JSON.stringify(attrs.backendType)}`;
  if (attrs.backendData !== undefined) text += `,"BackendData":${JSON.stringify(attrs.backendData)}`;
  if (attrs.backendV6Data !== undefined) text += `,"BackendV6Data":${JSON.stringify(attrs.backendV6Data)}`;
  return `${text}}`;
}

export class LeaseDecodeError extends Error {}

/**
 * Decodes a lease value someone wrote; throws LeaseDecodeError naming the bad field. Values are
 * untrusted: messages show them through describeValue, which never walks nested JSON.
 */
export function decodeLeaseAttrs(text: string): LeaseAttrs {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw new LeaseDecodeError("value is not valid JSON");
  }
  if (!isPlainObject(parsed)) throw new LeaseDecodeError("value is not a JSON object");
  const fields = new JsonFields(parsed);
  const publicIP = optionalString(fields, "PublicIP");
  if (publicIP !== undefined && !parseIPv4(publicIP)) {
    throw new LeaseDecodeError(`PublicIP ${describeValue(publicIP)} is not an IPv4 address`);
  }
  const publicIPv6 = optionalString(fields, "PublicIPv6");
  if (publicIPv6 !== undefined && !parseIPv6(publicIPv6)) {
    throw new LeaseDecodeError(`PublicIPv6 ${describeValue(publicIPv6)} is not an IPv6 address`);
  }
  return {
    // "0.0.0.0" is Go's zero IPv4: an IPv6-only host.
    publicIP: publicIP === "0.0.0.0" ? undefined : publicIP,
    publicIPv6,
    backendType: internBackendType(optionalString(fields, "BackendType")),
    backendData: fields.get("BackendData"),
    backendV6Data: fields.get("BackendV6Data"),
  };
}

/**
 * Every lease of a cluster names one of a few backend types; JSON.parse makes a string for each, so the
 * lease table kept 5,000 copies of "vxlan". Bounded, so values someone else wrote cannot grow it.
 */
const backendTypes = new Map<string, string>();
const BACKEND_TYPES_KEPT = 32;

function internBackendType(type: string | undefined): string | undefined {
  if (type === undefined) return undefined;
  const known = backendTypes.get(type);
  if (known !== undefined) return known;
  if (backendTypes.size < BACKEND_TYPES_KEPT && type.length <= 32) backendTypes.set(type, type);
  return type;
}

function optionalString(fields: JsonFields, key: string): string | undefined {
  const value = fields.get(key);
  if (value === undefined) return undefined;
  if (typeof value !== "string")
    throw new LeaseDecodeError(`${key} must be a string, not ${describeValue(value)}`);
  return value;
}
