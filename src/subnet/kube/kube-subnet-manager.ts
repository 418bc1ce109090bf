/**
 * The Kubernetes subnet manager (flanneld --kube-subnet-mgr): this host's subnet is its Node's
 * spec.podCIDR(s), our lease attributes go into the Node's annotations through nodes/<name>/status, and
 * peers are the Nodes whose annotations carry our backend type. The network config comes from a file
 * (--net-config-path); SubnetLen/Min/Max do not apply.
 */

import { type NetworkConfig, parseNetworkConfig } from "../../config/network-config.js";
import { readSmallFile } from "../../fs/read-small-file.js";
import { formatCIDR, type IPNetwork } from "../../ip/ip-network.js";
import { retryApi } from "../../kube/api-retry.js";
import type { KubeApiError, KubeClient } from "../../kube/kube-client.js";
import type { Lease } from "../../lease/lease.js";
import { subnetKey } from "../../lease/lease-key.js";
import { describeError, UserError } from "../../user-error.js";
import type { LeaseRequest, LeaseWatcher, StoredBackendData, SubnetManager } from "../subnet-manager.js";
import type { AnnotationNames } from "./kube-annotations.js";
import type { KubeNode } from "./kube-node.js";
import {
  annotationPatch,
  announcedAttrs,
  checkOwnSubnets,
  networkUnavailablePatch,
  nodeSubnets,
  nodeToLease,
  ownAnnotations,
  storedBackendData,
} from "./node-lease.js";
import { NodeWatch } from "./node-watch.js";

export interface KubeSubnetManagerOptions {
  readonly nodeName: string;
  readonly netConfigPath: string;
  readonly names: AnnotationNames;
  readonly setNodeNetworkUnavailable: boolean;
  readonly log: (message: string) => void;
}

const STRATEGIC = "application/strategic-merge-patch+json";

export class KubeSubnetManager implements SubnetManager {
  readonly name: string;
  private config: NetworkConfig | undefined;
  private readonly nodeWatch: NodeWatch;
  private watcher: LeaseWatcher | undefined;
  private own: Lease | undefined;
  private leaseRules: LeaseRequest["leaseRules"];
  private readonly leases = new Map<string, Lease>();
  /** node name -> lease key, to drop a node's lease when it changes or goes. */
  private readonly leaseOfNode = new Map<string, string>();
  private readonly reported = new Map<string, string>();
  private readonly nodeWaiters: (() => void)[] = [];
  private closed = false;
  private repatching = false;
  private ready: Promise<void> | undefined;
  /** Ends every retry wait on close. */
  private readonly stop = new AbortController();

  constructor(
    private readonly client: KubeClient,
    private readonly options: KubeSubnetManagerOptions,
  ) {
    this.name = `Kubernetes Subnet Manager - ${options.nodeName}`;
    this.nodeWatch = new NodeWatch(client, options.names.prefix, {
      onChange: (nodes, changed) => this.onNodes(nodes, changed),
      onWarning: (message) => this.warn(message),
    });
    this.nodeWatch.start();
  }

  private warn(message: string): void {
    if (this.watcher) this.watcher.onWarning(message);
    else this.options.log(message);
  }

  async getNetworkConfig(): Promise<NetworkConfig> {
    let text: string;
    try {
      // Bounded and never blocking, so a FIFO or /dev/zero given as the path fails at once.
      text = readSmallFile(this.options.netConfigPath, 1024 * 1024).toString("utf8");
    } catch (err) {
      throw new UserError(
        `cannot read the network config ${this.options.netConfigPath}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`,
        "mount net-conf.json from the ConfigMap or pass --net-config-path",
      );
    }
    this.config = parseNetworkConfig(text);
    return this.config;
  }

  /** Our node as last seen, waiting (with one clear log line) until it exists and has a pod CIDR. */
  private async ownNode(): Promise<KubeNode> {
    await this.nodeWatch.whenSynced();
    let said = "";
    for (;;) {
      if (this.closed) throw new Error("the subnet manager is closed");
      const node = this.nodeWatch.nodes.get(this.options.nodeName);
      const why = !node
        ? `node ${this.options.nodeName} does not exist in the Kubernetes API yet; waiting for it`
        : node.podCIDRs.length === 0
          ? `waiting for node ${this.options.nodeName} to get a pod CIDR (spec.podCIDR is empty; kube-controller-manager assigns it with --allocate-node-cidrs)`
          : "";
      if (node && !why) return node;
      if (why !== said) this.options.log(why);
      said = why;
      await new Promise<void>((resolve) => this.nodeWaiters.push(resolve));
    }
  }

  async storedBackendData(): Promise<StoredBackendData> {
    await this.nodeWatch.whenSynced();
    const node = this.nodeWatch.nodes.get(this.options.nodeName);
    return node ? storedBackendData(node, this.options.names) : {};
  }

  async acquireLease(request: LeaseRequest): Promise<Lease> {
    const config = this.config ?? (await this.getNetworkConfig());
    const node = await this.ownNode();
    const subnets = nodeSubnets(node);
    // Checked before anything is written, so a bad pod CIDR leaves the node untouched.
    const hint = "fix Network/IPv6Network in net-conf.json or the cluster's --cluster-cidr so they agree";
    if ("error" in subnets) throw new UserError(subnets.error, hint);
    const problem = checkOwnSubnets(node, subnets, config);
    if (problem) throw new UserError(problem, hint);
    const subnet: IPNetwork | undefined = config.ipv4 ? subnets.subnet : undefined;
    const ipv6Subnet: IPNetwork | undefined = config.ipv6 ? subnets.ipv6Subnet : undefined;
    const attrs = announcedAttrs(request.attrs, node, this.options.names);
    if (attrs.publicIP !== request.attrs.publicIP || attrs.publicIPv6 !== request.attrs.publicIPv6) {
      this.options.log(
        `announcing public address ${[attrs.publicIP, attrs.publicIPv6].filter(Boolean).join(", ")} from the node's node-public-ip annotations`,
      );
    }
    const lease: Lease = {
      key: subnetKey(subnet, ipv6Subnet),
      subnet,
      ipv6Subnet,
      attrs,
      reservation: false,
    };
    this.own = lease;
    this.leaseRules = request.leaseRules;
    await this.publish();
    this.options.log(
      `node ${node.name} has pod CIDR ${[subnet, ipv6Subnet]
        .filter((n): n is IPNetwork => n !== undefined)
        .map(formatCIDR)
        .join(", ")}`,
    );
    return lease;
  }

  /**
   * Writes our annotations onto the node through nodes/<name>/status, only the ones that differ from the
   * node as last seen; retried until the API takes it. Throws only a permanent error (RBAC, invalid).
   */
  private async publish(): Promise<void> {
    const own = this.own;
    if (!own) return;
    const written = await this.patchStatus("write the node's flannel annotations", async () => {
      // Recomputed on each try: the node may have been re-created (404) or changed meanwhile.
      const node = await this.ownNode();
      return annotationPatch(node, ownAnnotations(own.attrs, node, this.options.names, this.leaseRules));
    });
    if (written)
      this.options.log(`annotated node ${this.options.nodeName} with backend ${own.attrs.backendType}`);
  }

  /** PATCHes nodes/<name>/status with what `patch` gives (nothing when undefined); true when it wrote. */
  private patchStatus(what: string, patch: () => Promise<string | undefined>): Promise<boolean> {
    const path = `/api/v1/nodes/${encodeURIComponent(this.options.nodeName)}/status`;
    return retryApi(
      async () => {
        if (this.closed) throw new Error("the subnet manager is closed");
        const body = await patch();
        if (body === undefined) return false;
        await this.client.request("PATCH", path, body, STRATEGIC);
        return true;
      },
      {
        what,
        log: (message) => this.warn(message),
        signal: this.stop.signal,
        // Our Node was deleted (a kubelet re-registers it): wait for it rather than crash-loop.
        waitOn: (err: KubeApiError) =>
          err.code === 404
            ? `node ${this.options.nodeName} is not in the Kubernetes API (404 on PATCH ${path}); waiting for it to be registered again`
            : undefined,
      },
    );
  }

  /** Idempotent: the first call patches (retrying until it works), later calls share that. */
  networkReady(): Promise<void> {
    this.ready ??= this.markNetworkAvailable();
    return this.ready;
  }

  private async markNetworkAvailable(): Promise<void> {
    if (!this.options.setNodeNetworkUnavailable) return;
    try {
      await this.patchStatus("set the NetworkUnavailable condition", async () =>
        networkUnavailablePatch(new Date()),
      );
      this.options.log(`set NetworkUnavailable=False on node ${this.options.nodeName}`);
    } catch (err) {
      // Routing works without it; the node just keeps its taint. One clear line, and weftd goes on.
      if (!this.closed)
        this.warn(`${describeError(err)}; the node keeps NetworkUnavailable until weftd restarts`);
    }
  }

  watchLeases(watcher: LeaseWatcher): void {
    this.watcher = watcher;
    // flanneld sets NetworkUnavailable=False (CompleteLease) right after the lease is attached and before
    // it follows peers, which is when the daemon calls watchLeases; networkReady() stays for a daemon that
    // prefers to signal later (a second call is a no-op).
    if (this.own) void this.networkReady();
    void this.nodeWatch.whenSynced().then(() => {
      if (this.closed) return;
      this.rebuild(this.nodeWatch.nodes, [...this.nodeWatch.nodes.keys()]);
      watcher.onLeases(new Map(this.leases));
    });
  }

  private onNodes(nodes: ReadonlyMap<string, KubeNode>, changed: readonly string[]): void {
    if (changed.includes(this.options.nodeName)) {
      for (const wake of this.nodeWaiters.splice(0)) wake();
      this.checkOwnNode(nodes.get(this.options.nodeName));
    }
    if (!this.watcher || !this.config) return;
    if (this.rebuild(nodes, changed)) this.watcher.onLeases(new Map(this.leases));
  }

  /** Recomputes the leases of changed nodes; true when the lease table changed. */
  private rebuild(nodes: ReadonlyMap<string, KubeNode>, changed: readonly string[]): boolean {
    const config = this.config;
    if (!config) return false;
    let dirty = false;
    for (const name of changed) {
      const oldKey = this.leaseOfNode.get(name);
      const node = nodes.get(name);
      const result = node ? nodeToLease(node, this.options.names, config) : { ignore: true as const };
      if (oldKey !== undefined) {
        this.leases.delete(oldKey);
        this.leaseOfNode.delete(name);
        dirty = true;
      }
      if ("lease" in result) {
        this.leases.set(result.lease.key, result.lease);
        this.leaseOfNode.set(name, result.lease.key);
        this.reported.delete(name);
        dirty = true;
      } else if ("skip" in result) {
        if (this.reported.get(name) !== result.skip)
          this.watcher?.onWarning(`ignoring node ${name}: ${result.skip}`);
        this.reported.set(name, result.skip);
      } else this.reported.delete(name);
    }
    return dirty;
  }

  /** Someone removed or changed our annotations: write them back (only what differs). */
  private checkOwnNode(node: KubeNode | undefined): void {
    if (!node || !this.own || this.repatching || this.closed) return;
    if (!annotationPatch(node, ownAnnotations(this.own.attrs, node, this.options.names, this.leaseRules)))
      return;
    this.repatching = true;
    this.watcher?.onWarning(
      `the flannel annotations on node ${node.name} were changed by someone else; writing them back`,
    );
    this.publish()
      .catch((err) => {
        if (!this.closed) this.watcher?.onWarning(describeError(err));
      })
      .finally(() => {
        this.repatching = false;
      });
  }

  async close(): Promise<void> {
    this.closed = true;
    this.stop.abort();
    for (const wake of this.nodeWaiters.splice(0)) wake();
    this.nodeWatch.close();
    this.client.close();
  }
}
