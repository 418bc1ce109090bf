/**
 * The aws-vpc backend: no encapsulation; the VPC's router carries pod traffic because each agent puts
 * its subnet's route (target: its own instance) into the VPC route table(s). The route is state the
 * reconciler converges (kind cloud-route), so it is repaired when deleted and left alone when right;
 * stale routes of gone leases are removed by the one sweeper agent (aws-vpc-desired.ts).
 */
import { formatCIDR } from "../../ip/ip-network.js";
import type { Lease } from "../../lease/lease.js";
import type { AnyStateKind } from "../../reconcile/state-kind.js";
import { logEachDistinct, retry } from "../../retry/backoff.js";
import { describeError, UserError } from "../../user-error.js";
import type {
  Backend,
  BackendContext,
  BackendRegistration,
  BackendSetUp,
  DesiredPeers,
  PeerChange,
} from "../backend.js";
import { CredentialChain } from "./aws-credentials.js";
import { Ec2PermissionError, isTransient } from "./aws-errors.js";
import { type AwsVpcConfig, parseAwsVpcConfig } from "./aws-vpc-config.js";
import { ownCloudRoutes, ownershipView, ownsCloudRoute, type RouteOwnershipView } from "./aws-vpc-desired.js";
import {
  type CloudRouteEntry,
  cloudRouteKind,
  cloudRouteShape,
  decodeCloudRoutes,
} from "./cloud-route-kind.js";
import { Ec2Client, ec2Endpoint } from "./ec2-client.js";
import {
  DEFAULT_IMDS_ENDPOINT,
  type InstanceIdentity,
  InstanceMetadata,
  readIdentity,
} from "./instance-metadata.js";

export const awsVpcRegistration: BackendRegistration = {
  type: "aws-vpc",
  configure: (config) => {
    const settings = parseAwsVpcConfig(config.backend);
    return (context) => new AwsVpcBackend(context, settings, process.env);
  },
};

/** The tables to program: the configured ones, else the instance subnet's own, else the VPC's main. */
export async function findRouteTables(
  client: Ec2Client,
  configured: readonly string[],
  identity: InstanceIdentity,
): Promise<string[]> {
  if (configured.length > 0) {
    // Fails with one clear error for an ID this region does not have.
    const found = await client.describeRouteTables(configured);
    return found.map((t) => t.routeTableId);
  }
  let { subnetId, vpcId } = identity;
  if (!subnetId || !vpcId) {
    const instance = await client.describeInstance(identity.instanceId);
    subnetId ||= instance?.subnetId;
    vpcId ||= instance?.vpcId;
  }
  if (subnetId) {
    const own = await client.describeRouteTables([], [{ name: "association.subnet-id", values: [subnetId] }]);
    if (own.length > 0) return [own[0]!.routeTableId];
  }
  if (vpcId) {
    const main = await client.describeRouteTables(
      [],
      [
        { name: "vpc-id", values: [vpcId] },
        { name: "association.main", values: ["true"] },
      ],
    );
    if (main.length > 0) return [main[0]!.routeTableId];
  }
  throw new UserError(
    `no route table found for instance ${identity.instanceId} (subnet ${subnetId ?? "unknown"}, VPC ${vpcId ?? "unknown"})`,
    "set Backend.RouteTableID in the network config",
  );
}

/** How long a route must look stale before a full run removes it (the peers hook does at once). */
export const STALE_GRACE_MS = 20_000;

function formatOwn(view: RouteOwnershipView | undefined): string | undefined {
  return view ? formatCIDR(view.ownSubnet) : undefined;
}

export class AwsVpcBackend implements Backend {
  readonly type = "aws-vpc";
  readonly kinds: readonly AnyStateKind[];
  readonly ownedDevices: string[] = [];
  readonly routeDevices: string[] = [];
  private client: Ec2Client | undefined;
  private identity: InstanceIdentity | undefined;
  private tables: string[] = [];
  private view: RouteOwnershipView | undefined;
  private closed = false;
  /** The sweeps of gone leases' routes, one after the other. */
  private sweeping: Promise<void> = Promise.resolve();
  /** Routes that looked stale, by key, with when that was first seen. */
  private readonly staleSince = new Map<string, number>();

  constructor(
    private readonly context: BackendContext,
    private readonly settings: AwsVpcConfig,
    private readonly env: NodeJS.ProcessEnv,
    private readonly now: () => number = Date.now,
  ) {
    this.kinds = [
      cloudRouteKind(
        {
          describeRouteTables: (ids, filters) => this.ec2().describeRouteTables(ids, filters),
          createRoute: (t, d, i) => this.ec2().createRoute(t, d, i),
          replaceRoute: (t, d, i) => this.ec2().replaceRoute(t, d, i),
          deleteRoute: (t, d) => this.ec2().deleteRoute(t, d),
        },
        () => this.tables,
        (entry) => this.owns(entry),
      ),
    ];
  }

  /**
   * Our own route always; a stale one (sweeper only) once it has looked stale for STALE_GRACE_MS: a
   * peer that just took its lease may have created its route before our lease watch shows that lease.
   */
  private owns(entry: CloudRouteEntry): boolean {
    if (!ownsCloudRoute(this.view, entry)) return false;
    if (this.view && entry.destination === formatCIDR(this.view.ownSubnet)) return true;
    const key = cloudRouteShape.key(entry);
    const first = this.staleSince.get(key);
    const now = this.now();
    if (first === undefined) {
      this.staleSince.set(key, now);
      return false;
    }
    return now - first >= STALE_GRACE_MS;
  }

  private ec2(): Ec2Client {
    if (!this.client) throw new Error("the aws-vpc backend is not set up");
    return this.client;
  }

  async setUp(): Promise<BackendSetUp> {
    if (!this.context.config.ipv4 || this.context.config.ipv6) {
      throw new UserError(
        "the aws-vpc backend routes IPv4 only",
        'set "EnableIPv6": false (and keep "Network")',
      );
    }
    const imds = new InstanceMetadata(this.env.AWS_EC2_METADATA_SERVICE_ENDPOINT || DEFAULT_IMDS_ENDPOINT);
    const credentials = new CredentialChain(this.env, imds);
    await retry(
      async () => {
        const identity = await readIdentity(imds, this.env);
        const client = new Ec2Client({
          region: identity.region,
          endpoint: ec2Endpoint(identity.region, this.env),
          credentials: () => credentials.get(),
          log: this.context.warn,
        });
        await client.disableSourceDestCheck(identity.instanceId);
        this.tables = await findRouteTables(client, this.settings.routeTableIds, identity);
        this.identity = identity;
        this.client = client;
      },
      {
        backoff: { minMs: 1000, maxMs: 30_000 },
        // A missing permission waits (IAM changes apply without a restart), logged once; other
        // operator errors (no instance, a wrong RouteTableID) stop weftd with one message.
        isFatal: (err) => !isTransient(err) && !(err instanceof Ec2PermissionError),
        stopped: () => this.closed,
        onFailure: logEachDistinct(this.context.warn, "aws-vpc: setting up", describeError),
      },
    );
    const identity = this.identity!;
    this.context.log(
      `aws-vpc: instance ${identity.instanceId} in ${identity.region}, EC2 at ${this.ec2().endpoint}, route table(s) ${this.tables.join(", ")}; source/dest check off`,
    );
    const ext = this.context.extIface;
    return {
      attrs: {
        publicIP: ext.publicIP,
        publicIPv6: undefined,
        backendType: "aws-vpc",
        backendData: undefined,
        backendV6Data: undefined,
      },
      mtu: ext.mtu,
    };
  }

  async attachLease(): Promise<void> {}

  desiredState(own: Lease, peers: Iterable<Lease>): DesiredPeers {
    const network = this.context.config.ipv4?.network;
    // Remembered for owns(): the reconciler run this state starts sees the same lease table.
    this.view = network ? ownershipView(network, own, peers) : undefined;
    for (const key of this.staleSince.keys()) {
      if (this.view?.liveSubnets.has(key.slice(key.indexOf(" ") + 1))) this.staleSince.delete(key);
    }
    const instanceId = this.identity?.instanceId;
    return {
      state: { [cloudRouteShape.name]: instanceId ? ownCloudRoutes(own, this.tables, instanceId) : [] },
      problems: [],
    };
  }

  /**
   * A lease went away: the sweeper removes its routes now rather than at the next full run (quick runs
   * only diff what we want, and we never wanted another agent's route). The full runs stay the net.
   */
  peersChanged(change: PeerChange): void {
    if (change.removed.length === 0 || !this.view?.sweeper || !this.client) return;
    const client = this.client;
    this.sweeping = this.sweeping
      .then(() =>
        retry(
          async () => {
            if (this.tables.length === 0) return;
            const routes = decodeCloudRoutes(await client.describeRouteTables(this.tables));
            for (const route of routes) {
              // The view is the newest lease table's: a subnet leased again is live and left alone.
              if (route.destination === formatOwn(this.view) || !ownsCloudRoute(this.view, route)) continue;
              this.context.log(`aws-vpc: removing ${cloudRouteShape.describe(route)}: its lease is gone`);
              await this.kinds[0]!.remove(route);
            }
          },
          {
            backoff: { minMs: 1000, maxMs: 30_000 },
            attempts: 5,
            stopped: () => this.closed,
            isFatal: (err) => !isTransient(err),
            onFailure: logEachDistinct(this.context.warn, "aws-vpc: removing stale routes", describeError),
          },
        ),
      )
      .catch((err) =>
        this.context.warn(
          `aws-vpc: removing stale routes: ${describeError(err)} (the next full run retries)`,
        ),
      );
  }

  async close(): Promise<void> {
    // The routes stay: the VPC keeps carrying traffic to this host while weftd restarts.
    this.closed = true;
    await this.sweeping;
  }
}
