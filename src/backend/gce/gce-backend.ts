/**
 * The gce backend (flannel v0.7's, done as converged state): no device and no encapsulation; the Google
 * network carries pod traffic because each agent keeps a route "our subnet -> our instance" in the
 * project's route table. Identity (project, zone, instance, network) and the access token come from the
 * metadata server; the route table is the kind gce-route, read through the Compute API, repaired by full
 * runs (start, the reconciler's timer, retries). The holder of the lowest live subnet also removes
 * flannel-* routes whose lease is gone.
 */
import { ConfigError } from "../../config/network-config.js";
import { addressOnlyAttrs, type Lease } from "../../lease/lease.js";
import type { AnyStateKind } from "../../reconcile/state-kind.js";
import { logEachDistinct, retry } from "../../retry/backoff.js";
import { describeError, UserError } from "../../user-error.js";
import type { Backend, BackendContext, BackendRegistration, BackendSetUp, DesiredPeers } from "../backend.js";
import {
  ComputeClient,
  explainApiError,
  GceApiError,
  gceEndpoints,
  MetadataClient,
  TokenSource,
} from "./gce-api.js";
import { gceDesiredRoutes, routeName } from "./gce-route.js";
import { type GceRouteRole, gceRouteKind } from "./gce-route-kind.js";

export const gceRegistration: BackendRegistration = {
  type: "gce",
  configure(config) {
    if (!config.ipv4)
      throw new ConfigError("the gce backend routes IPv4 only: set Network and leave EnableIPv4 on");
    // Read now so a malformed override is reported before anything is set up.
    const endpoints = gceEndpoints(process.env);
    return (context) => new GceBackend(context, endpoints);
  },
};

export interface GceIdentity {
  readonly project: string;
  readonly zone: string;
  readonly instance: string;
  /** Full URLs, as routes carry them. */
  readonly instanceUrl: string;
  readonly networkUrl: string;
}

/** Reads who we are from the metadata server and checks the instance may forward pod traffic. */
export async function discoverIdentity(
  metadata: MetadataClient,
  computeFor: (project: string) => ComputeClient,
): Promise<{ identity: GceIdentity; compute: ComputeClient }> {
  const project = (await metadata.get("project/project-id")).trim();
  const zone = (await metadata.get("instance/zone")).trim().split("/").pop()!;
  const instance = (await metadata.get("instance/name")).trim();
  const network = (await metadata.get("instance/network-interfaces/0/network")).trim().split("/").pop()!;
  const compute = computeFor(project);
  let found: { selfLink?: string; canIpForward?: boolean };
  try {
    found = await compute.getInstance(zone, instance);
  } catch (err) {
    if (err instanceof GceApiError && err.status === 404)
      throw new UserError(
        `instance ${instance} in zone ${zone} is not in project ${project} as the Compute API sees it (${err.message})`,
        "check that weftd runs on a GCE instance and that CLOUDSDK_API_ENDPOINT_OVERRIDES_COMPUTE, if set, is this project's API",
      );
    throw explainApiError(err, "instance", project);
  }
  if (found.canIpForward !== true)
    throw new UserError(
      `instance ${instance} (zone ${zone}) has canIpForward off, so GCE drops pod traffic routed to it`,
      "create the instance with --can-ip-forward (it cannot be changed on a running instance)",
    );
  const identity = {
    project,
    zone,
    instance,
    instanceUrl: found.selfLink ?? compute.url(`zones/${zone}/instances/${instance}`),
    networkUrl: compute.url(`global/networks/${network}`),
  };
  return { identity, compute };
}

export class GceBackend implements Backend {
  readonly type = "gce";
  readonly kinds: readonly AnyStateKind[];
  readonly ownedDevices: string[] = [];
  readonly routeDevices: string[] = [];
  private compute: ComputeClient | undefined;
  private identity: GceIdentity | undefined;
  private role: GceRouteRole = { ownName: undefined, sweeper: false };

  constructor(
    private readonly context: BackendContext,
    private readonly endpoints: { metadataBase: string; computeBase: string },
  ) {
    const ready = <T>(value: T | undefined): T => {
      if (value === undefined) throw new Error("the gce backend has not read its instance yet");
      return value;
    };
    this.kinds = [
      gceRouteKind(
        () => ready(this.compute),
        () => ready(this.identity).networkUrl,
        () => this.role,
        context.log,
      ),
    ];
  }

  async setUp(): Promise<BackendSetUp> {
    const { extIface: ext, log } = this.context;
    const metadata = new MetadataClient(this.endpoints.metadataBase);
    const tokens = new TokenSource(metadata);
    const { identity, compute } = await retry(
      () =>
        discoverIdentity(
          metadata,
          (project) => new ComputeClient(this.endpoints.computeBase, project, tokens),
        ),
      {
        backoff: { minMs: 1000, maxMs: 30_000 },
        // A refusal (wrong instance, permission, canIpForward) needs the operator; the rest is retried.
        isFatal: (err) =>
          err instanceof UserError || (err instanceof GceApiError && !err.transient && err.status !== 404),
        onFailure: logEachDistinct(this.context.warn, "reading the GCE instance", describeError),
      },
    );
    this.identity = identity;
    this.compute = compute;
    log(
      `gce: instance ${identity.instance} in ${identity.zone}, project ${identity.project}, network ${identity.networkUrl.split("/").pop()}`,
    );
    return {
      // flanneld v0.7's gce lease carries only the PublicIP.
      attrs: addressOnlyAttrs(ext.publicIP),
      mtu: ext.mtu,
    };
  }

  async attachLease(): Promise<void> {}

  desiredState(own: Lease, peers: Iterable<Lease>): DesiredPeers {
    const instanceUrl = this.identity?.instanceUrl ?? "";
    const desired = gceDesiredRoutes(own, peers, instanceUrl);
    // The route kind's ownership follows the lease table this state was computed from.
    this.role = { ownName: own.subnet ? routeName(own.subnet) : undefined, sweeper: desired.sweeper };
    const problems = own.subnet ? [] : [{ key: own.key, reason: "no IPv4 subnet to route" }];
    return { state: { "gce-route": desired.routes }, problems };
  }
}
