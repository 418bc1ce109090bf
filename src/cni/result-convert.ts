/**
 * CNI results between spec versions. The delegate is given flannel's own cniVersion, so its result is
 * normally passed through; a delegate answering in another version is converted as libcni would.
 * 0.1.0/0.2.0 have ip4/ip6 blocks; 0.3.x/0.4.0 have ips with "version"; 1.x drops "version".
 */
import type { JsonObject } from "./net-conf.js";
import { isObject } from "./net-conf.js";

type Family = "legacy" | "versioned" | "current";

function family(v: string): Family {
  if (v === "0.1.0" || v === "0.2.0") return "legacy";
  if (v === "0.3.0" || v === "0.3.1" || v === "0.4.0") return "versioned";
  return "current";
}

function list(v: unknown): JsonObject[] {
  return Array.isArray(v) ? v.filter(isObject) : [];
}

function isV6(cidrOrIp: unknown): boolean {
  return typeof cidrOrIp === "string" && cidrOrIp.includes(":") && !/^::ffff:\d+\./i.test(cidrOrIp);
}

interface Current {
  interfaces: JsonObject[];
  ips: JsonObject[];
  routes: JsonObject[];
  dns: unknown;
}

function toCurrent(result: JsonObject, from: Family): Current {
  if (from !== "legacy") {
    const ips = list(result["ips"]).map(({ version: _version, ...rest }) => rest);
    return {
      interfaces: list(result["interfaces"]),
      ips,
      routes: list(result["routes"]),
      dns: result["dns"],
    };
  }
  const ips: JsonObject[] = [];
  const routes: JsonObject[] = [];
  for (const key of ["ip4", "ip6"]) {
    const block = result[key];
    if (!isObject(block)) continue;
    const ip: JsonObject = { address: block["ip"] };
    if (block["gateway"] !== undefined) ip["gateway"] = block["gateway"];
    ips.push(ip);
    routes.push(...list(block["routes"]));
  }
  return { interfaces: [], ips, routes, dns: result["dns"] };
}

function fromCurrent(cur: Current, to: string): JsonObject {
  const out: JsonObject = { cniVersion: to };
  if (family(to) === "legacy") {
    for (const [key, v6] of [
      ["ip4", false],
      ["ip6", true],
    ] as const) {
      const ips = cur.ips.filter((ip) => isV6(ip["address"]) === v6);
      if (ips.length > 1) throw new Error(`cannot convert result to ${to}: more than one ${key} address`);
      const ip = ips[0];
      if (!ip) continue;
      const block: JsonObject = { ip: ip["address"] };
      if (ip["gateway"] !== undefined) block["gateway"] = ip["gateway"];
      const routes = cur.routes.filter((r) => isV6(r["dst"]) === v6);
      if (routes.length > 0) block["routes"] = routes;
      out[key] = block;
    }
    out["dns"] = cur.dns ?? {};
    return out;
  }
  if (cur.interfaces.length > 0) out["interfaces"] = cur.interfaces;
  if (cur.ips.length > 0) {
    out["ips"] = cur.ips.map((ip) =>
      family(to) === "versioned" ? { version: isV6(ip["address"]) ? "6" : "4", ...ip } : ip,
    );
  }
  if (cur.routes.length > 0) out["routes"] = cur.routes;
  out["dns"] = cur.dns ?? {};
  return out;
}

/** The delegate's result in `to`'s format; `assumed` is the version it was asked to speak. */
export function convertResult(result: JsonObject, assumed: string, to: string): JsonObject {
  const from =
    typeof result["cniVersion"] === "string" && result["cniVersion"] !== "" ? result["cniVersion"] : assumed;
  if (from === to) return result;
  return fromCurrent(toCurrent(result, family(from)), to);
}
