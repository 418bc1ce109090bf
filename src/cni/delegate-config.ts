/**
 * The delegate's network configuration, generated exactly as upstream's flannel plugin does (doCmdAdd and
 * getDelegateIPAM), and its bytes: compact JSON with map keys sorted, as Go's json.Marshal writes it.
 */
import { goJson } from "./go-json.js";
import { formatNetwork } from "./ip-cidr.js";
import { decodeIpamRoutes, type GoRoute } from "./ipam-routes.js";
import type { FlannelNetConf, JsonObject } from "./net-conf.js";
import type { FlannelSubnetEnv } from "./subnet-env.js";

/** The delegate dictionary's own rules, checked in upstream's order. */
export function checkDelegateDictionary(delegate: JsonObject | undefined): void {
  if (!delegate) return;
  if (Object.hasOwn(delegate, "type") && typeof delegate["type"] !== "string") {
    throw new Error("'delegate' dictionary, if present, must have (string) 'type' field");
  }
  if (Object.hasOwn(delegate, "name"))
    throw new Error("'delegate' dictionary must not have 'name' field, it'll be set by flannel");
  if (Object.hasOwn(delegate, "ipam"))
    throw new Error("'delegate' dictionary must not have 'ipam' field, it'll be set by flannel");
}

function delegateIpam(conf: FlannelNetConf, env: FlannelSubnetEnv): JsonObject {
  const ipam: JsonObject = { ...(conf.ipam ?? {}) };
  if (!Object.hasOwn(ipam, "type")) ipam["type"] = "host-local";
  const ranges: JsonObject[][] = [];
  if (env.subnet) ranges.push([{ subnet: formatNetwork(env.subnet) }]);
  if (env.ipv6Subnet) ranges.push([{ subnet: formatNetwork(env.ipv6Subnet) }]);
  ipam["ranges"] = ranges;
  let routes: GoRoute[];
  try {
    routes = decodeIpamRoutes(conf.ipam);
  } catch (err) {
    throw new Error(
      `failed to assemble Delegate IPAM: failed to read IPAM routes: ${(err as Error).message}`,
    );
  }
  for (const net of [...env.networks, ...env.ipv6Networks])
    routes.push(new Map([["dst", formatNetwork(net)]]));
  ipam["routes"] = routes;
  return ipam;
}

export interface DelegateConfig {
  readonly type: string;
  readonly config: JsonObject;
  /** What the delegate reads on stdin and what is saved in dataDir: the same bytes. */
  readonly bytes: string;
}

export function buildDelegateConfig(conf: FlannelNetConf, env: FlannelSubnetEnv): DelegateConfig {
  checkDelegateDictionary(conf.delegate);
  const d: JsonObject = { ...(conf.delegate ?? {}) };
  if (conf.runtimeConfig) d["runtimeConfig"] = conf.runtimeConfig;
  d["name"] = conf.name;
  if (!Object.hasOwn(d, "type")) d["type"] = "bridge";
  // flannel masquerades itself unless told not to; then the bridge must.
  if (!Object.hasOwn(d, "ipMasq")) d["ipMasq"] = !env.ipMasq;
  if (!Object.hasOwn(d, "mtu")) d["mtu"] = env.mtu;
  if (d["type"] === "bridge" && !Object.hasOwn(d, "isGateway")) d["isGateway"] = true;
  if (conf.cniVersion !== "") d["cniVersion"] = conf.cniVersion;
  d["ipam"] = delegateIpam(conf, env);
  return { type: d["type"] as string, config: d, bytes: goJson(d) };
}
