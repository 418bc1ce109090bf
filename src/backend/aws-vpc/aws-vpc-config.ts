/** The aws-vpc backend's keys in Backend{...}, as the seeds (flannel v0.7) documented them. */
import { ConfigError } from "../../config/network-config.js";
import { describeValue } from "../../text/untrusted-text.js";

export interface AwsVpcConfig {
  /** Route tables to program; empty: the instance subnet's own table, else the VPC's main table. */
  readonly routeTableIds: readonly string[];
}

const ROUTE_TABLE_ID = /^rtb-[0-9a-f]{8,17}$/;

function lookup(backend: Readonly<Record<string, unknown>>, key: string): unknown {
  const found = Object.keys(backend).find((k) => k.toLowerCase() === key.toLowerCase());
  return found === undefined ? undefined : backend[found];
}

/** RouteTableID: one ID ("rtb-0abc...") or a list of them, as flannel v0.7 accepted. */
export function parseAwsVpcConfig(backend: Readonly<Record<string, unknown>>): AwsVpcConfig {
  const value = lookup(backend, "RouteTableID");
  if (value === undefined || value === null || value === "") return { routeTableIds: [] };
  const list = typeof value === "string" ? [value] : Array.isArray(value) ? value : undefined;
  if (!list || list.some((v) => typeof v !== "string" || !ROUTE_TABLE_ID.test(v))) {
    throw new ConfigError(
      `Backend.RouteTableID of the aws-vpc backend must be a route table ID such as "rtb-0123abcd" or a list of them, not ${describeValue(value)}`,
    );
  }
  return { routeTableIds: [...new Set(list as string[])] };
}
