/**
 * CHECK: asks the delegate to verify the attachment, with the config saved by ADD and the runtime's
 * prevResult. (Upstream's plugin answers CHECK without looking; a real check is what the spec asks for.)
 */

import { boundText } from "../text/untrusted-text.js";
import type { CniEnv } from "./cni-env.js";
import { CniError, ErrorCode } from "./cni-error.js";
import { execPlugin, findPlugin } from "./delegate-exec.js";
import { goJson } from "./go-json.js";
import { type FlannelNetConf, isObject, type JsonObject } from "./net-conf.js";
import { readScratch, scratchPath } from "./scratch-store.js";

export async function commandCheck(env: CniEnv, conf: FlannelNetConf): Promise<string> {
  const path = scratchPath(conf.dataDir, env.containerID);
  const saved = readScratch(conf.dataDir, env.containerID);
  if (!saved) {
    throw new CniError(
      ErrorCode.unknownContainer,
      `no saved delegate config for container ${boundText(env.containerID)} (${boundText(path, 300)})`,
      "flannel never completed ADD for this container on this node, or DEL already ran",
    );
  }
  let delegate: JsonObject;
  try {
    const parsed: unknown = JSON.parse(saved.toString("utf8"));
    if (!isObject(parsed) || typeof parsed["type"] !== "string") throw new Error("not a delegate config");
    delegate = parsed;
  } catch (err) {
    throw new CniError(ErrorCode.decodingFailure, `${path} is unreadable: ${(err as Error).message}`);
  }
  if (conf.prevResult) delegate["prevResult"] = withRouteGateways(conf.prevResult);
  if (conf.runtimeConfig) delegate["runtimeConfig"] = conf.runtimeConfig;
  await execPlugin(
    findPlugin(delegate["type"] as string, env.path),
    "CHECK",
    goJson(delegate),
    "failed to delegate check",
  );
  return "";
}

/**
 * The routes flannel asks for have no gateway; the delegate installs them via its gateway. Reference
 * plugins before v1.3.0 (Debian 12 ships 1.1.1) then fail CHECK looking for a gateway-less route, so the
 * gateway the route really uses is written in: same family, first IP with a gateway.
 */
export function withRouteGateways(prevResult: JsonObject): JsonObject {
  const routes = prevResult["routes"];
  const ips = prevResult["ips"];
  if (!Array.isArray(routes) || !Array.isArray(ips)) return prevResult;
  const isV6 = (s: unknown) => typeof s === "string" && s.includes(":");
  const gateway = (v6: boolean): unknown =>
    ips.find((ip) => isObject(ip) && typeof ip["gateway"] === "string" && isV6(ip["address"]) === v6)
      ?.gateway;
  const filled = routes.map((r) => {
    if (!isObject(r) || r["gw"] !== undefined || typeof r["dst"] !== "string") return r;
    const gw = gateway(isV6(r["dst"]));
    return gw === undefined ? r : { ...r, gw };
  });
  return { ...prevResult, routes: filled };
}
