/**
 * ipam.routes decoded into CNI's Go Route struct and encoded back, as upstream does: unknown keys dropped,
 * addresses re-printed by Go's rules, fields in struct order (dst, gw, mtu, advmss, priority, table, scope).
 */
import { formatGoIp, formatGoIpNet, parseGoCidr, parseGoIp } from "./ip-cidr.js";
import { goField, isObject } from "./net-conf.js";

export type GoRoute = Map<string, unknown>;

function intField(obj: Record<string, unknown>, field: string): number | undefined {
  const v = goField(obj, field);
  if (v === undefined || v === null) return undefined;
  if (typeof v !== "number" || !Number.isInteger(v)) {
    const what = typeof v === "number" ? `number ${v}` : Array.isArray(v) ? "array" : typeof v;
    throw new Error(`json: cannot unmarshal ${what} into Go struct field route.${field} of type int`);
  }
  return v;
}

function stringValue(obj: Record<string, unknown>, field: string): string | undefined {
  const v = goField(obj, field);
  if (v === undefined || v === null) return undefined;
  if (typeof v !== "string")
    throw new Error(`json: cannot unmarshal ${typeof v} into Go value of type string`);
  return v;
}

export function decodeRoute(value: unknown): GoRoute {
  if (!isObject(value))
    throw new Error("json: cannot unmarshal non-object into Go value of type types.Route");
  const route: GoRoute = new Map();
  const dst = stringValue(value, "dst");
  // Upstream would pass a route without dst on as "<nil>" for host-local to reject; fail here, clearly.
  if (dst === undefined) throw new Error('a route has no "dst"');
  const net = parseGoCidr(dst);
  route.set("dst", formatGoIpNet(net.ip, net.prefix, net.bits));
  const gw = stringValue(value, "gw");
  if (gw !== undefined && gw !== "") {
    const ip = parseGoIp(gw);
    if (!ip) throw new Error(`invalid IP address: ${gw}`);
    route.set("gw", formatGoIp(ip));
  }
  for (const field of ["mtu", "advmss", "priority"]) {
    const n = intField(value, field);
    if (n !== undefined && n !== 0) route.set(field, n);
  }
  for (const field of ["table", "scope"]) {
    const n = intField(value, field);
    if (n !== undefined) route.set(field, n);
  }
  return route;
}

/** The base routes of `ipam.routes` (absent or null: none). */
export function decodeIpamRoutes(ipam: Record<string, unknown> | undefined): GoRoute[] {
  if (!ipam || !Object.hasOwn(ipam, "routes")) return [];
  const routes = ipam["routes"];
  if (routes === null) return [];
  try {
    if (!Array.isArray(routes))
      throw new Error("json: cannot unmarshal non-array into Go value of type []types.Route");
    return routes.map(decodeRoute);
  } catch (err) {
    throw new Error(`failed to parse ipam.routes: ${(err as Error).message}`);
  }
}
