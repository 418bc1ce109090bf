/**
 * A route in a VPC route table as a kind of managed state: the table is the "actual", read back through
 * DescribeRouteTables on every full run (there are no notifications), so a route deleted in the console
 * is put back by the next run and a correct route is left alone. Which routes are ours to remove is
 * the backend's decision (only its own, plus stale ones when it is the sweeper: aws-vpc-desired.ts).
 */
import type { KindShape, StateKind } from "../../reconcile/state-kind.js";
import { Ec2ApiError } from "./aws-errors.js";
import type { Ec2Client } from "./ec2-client.js";
import type { Ec2RouteTable } from "./ec2-xml.js";

export interface CloudRouteEntry {
  readonly table: string;
  /** The destination CIDR, e.g. "10.244.3.0/24". */
  readonly destination: string;
  /** The target instance; undefined for a route to a gateway, an ENI alone, a peering... */
  readonly instanceId: string | undefined;
  /** The target is gone (AWS's state "blackhole"). */
  readonly blackhole: boolean;
  /** Routes AWS made (the local route) or propagated are never touched. */
  readonly createdByUser: boolean;
}

export const cloudRouteShape: KindShape<CloudRouteEntry> = {
  name: "cloud-route",
  plural: "cloud routes",
  key: (e) => `${e.table} ${e.destination}`,
  same: (a, b) =>
    a.table === b.table &&
    a.destination === b.destination &&
    a.instanceId === b.instanceId &&
    !a.blackhole &&
    !b.blackhole,
  describe: (e) => `route ${e.destination} -> ${e.instanceId ?? "(not an instance)"} in ${e.table}`,
};

/** The IPv4 routes of the tables as entries (pure). */
export function decodeCloudRoutes(tables: readonly Ec2RouteTable[]): CloudRouteEntry[] {
  return tables.flatMap((t) =>
    t.routes
      .filter((r) => r.destinationCidrBlock)
      .map((r) => ({
        table: t.routeTableId,
        destination: r.destinationCidrBlock!,
        instanceId: r.instanceId,
        blackhole: r.state === "blackhole",
        createdByUser: r.origin === undefined || r.origin === "CreateRoute",
      })),
  );
}

/** The EC2 calls the kind makes (Ec2Client has them). */
export type CloudRouteApi = Pick<
  Ec2Client,
  "describeRouteTables" | "createRoute" | "replaceRoute" | "deleteRoute"
>;

export function cloudRouteKind(
  client: CloudRouteApi,
  tables: () => readonly string[],
  owns: (entry: CloudRouteEntry) => boolean,
): StateKind<CloudRouteEntry> {
  return {
    ...cloudRouteShape,
    layer: 1,
    owns(entry) {
      return owns(entry);
    },
    async readActual() {
      const ids = tables();
      if (ids.length === 0) return [];
      return decodeCloudRoutes(await client.describeRouteTables(ids));
    },
    async put(entry) {
      if (!entry.instanceId) throw new Error(`${cloudRouteShape.describe(entry)}: no target instance`);
      try {
        await client.createRoute(entry.table, entry.destination, entry.instanceId);
      } catch (err) {
        // The route is there with another target (or a blackhole): take it over.
        if (!(err instanceof Ec2ApiError && err.code === "RouteAlreadyExists")) throw err;
        await client.replaceRoute(entry.table, entry.destination, entry.instanceId);
      }
    },
    async remove(entry) {
      try {
        await client.deleteRoute(entry.table, entry.destination);
      } catch (err) {
        // Already gone is as wanted.
        if (!(err instanceof Ec2ApiError && err.code === "InvalidRoute.NotFound")) throw err;
      }
    },
  };
}
