/**
 * One network as weftd runs it: its config, its lease, its backend with its own devices, its reconciler
 * and ownership scope, its traffic rules and its env file. Single-network mode runs one instance with
 * flanneld's usual paths; multi-network mode (flanneld v0.7's --networks) runs one per network, all over
 * the daemon's one netlink socket, one kernel-notification subscription and one store connection.
 * Startup follows flanneld (config, interface, backend devices, lease, rules, env file); from then on
 * every change only asks the reconciler to converge.
 */
import type { Backend, BackendRegistration, DesiredPeers } from "../backend/backend.js";
import { diffPeers } from "../backend/peer-change.js";
import { configureBackend } from "../backend/registry.js";
import type { NetworkConfig } from "../config/network-config.js";
import { formatCIDR, type IPNetwork } from "../ip/ip-network.js";
import type { Lease } from "../lease/lease.js";
import { readPreviousSubnets, writeSubnetEnv } from "../lease/subnet-env.js";
import type { RtEvent, RtNetlink } from "../netlink/index.js";
import { createKernelKinds, type KernelKinds } from "../reconcile/kinds/kernel-kinds.js";
import { type OwnershipScope, Reconciler } from "../reconcile/reconciler.js";
import type { AnyStateKind } from "../reconcile/state-kind.js";
import { type BackoffOptions, logEachDistinct, retry } from "../retry/backoff.js";
import type { SubnetManager } from "../subnet/subnet-manager.js";
import { boundText } from "../text/untrusted-text.js";
import { describeError, UserError } from "../user-error.js";
import { ownBlackholeRoutes, withBlackholeRoutes } from "./blackhole-routes.js";
import type { DaemonCounters } from "./daemon-metrics.js";
import { findExternalInterface, interfaceChoice } from "./external-interface.js";
import type { Flags } from "./flags.js";
import { readHostNetworks } from "./host-networks.js";
import type { Logger } from "./logger.js";
import type { NetworkTrafficRules } from "./network-traffic-rules.js";
import { ownershipScope } from "./ownership-scope.js";
import { PeerLeaseFilter } from "./peer-lease-filter.js";

/** A full reconcile now and then catches anything no event told us about. */
const SAFETY_RECONCILE_MS = 30_000;
/** Coalesce bursts of netlink notifications (our own writes cause them too). */
const EVENT_DEBOUNCE_MS = 20;
/** Waiting for the store or for a fixed config: soon at first, then every few seconds. */
const STARTUP_RETRY: BackoffOptions = { minMs: 1000, maxMs: 5000 };

export interface NetworkInstanceOptions {
  /** The network's name in multi-network mode; undefined in single-network mode. */
  readonly network: string | undefined;
  /** This network's manager (a remote or etcd one, scoped to the network). */
  readonly manager: SubnetManager;
  readonly flags: Flags;
  /** Already marked with the network's name in multi-network mode. */
  readonly log: Logger;
  readonly netlink: RtNetlink;
  /** subnet.env, or <subnet-dir>/<network>.env. */
  readonly envFile: string;
  /** This network's share of the masquerade and forward rules. */
  readonly traffic: NetworkTrafficRules;
  /** The instance's kinds are known: the daemon makes sure their notifications arrive. */
  readonly watchKinds: (kinds: readonly AnyStateKind[]) => void;
  readonly onFatal: (err: Error) => void;
  /** Called once, when this network's datapath is first programmed. */
  readonly onProgrammed: (peers: number) => void;
  /**
   * After each lease event has been turned into desired state and after each clean reconcile run: the
   * daemon gives the garbage of such bursts back once they are over.
   */
  readonly onBurst?: () => void;
}

export class NetworkInstance {
  private backend: Backend | undefined;
  private config!: NetworkConfig;
  private lease!: Lease;
  private mtu = 0;
  private kernel!: KernelKinds;
  private registration!: BackendRegistration;
  private peers: ReadonlyMap<string, Lease> = new Map();
  private reconciler: Reconciler | undefined;
  private leases: ReadonlyMap<string, Lease> = new Map();
  private filter: PeerLeaseFilter | undefined;
  private timers: NodeJS.Timeout[] = [];
  private eventTimer: NodeJS.Timeout | undefined;
  private stopping = false;
  private listed = false;
  /** The datapath has been programmed once (/readyz). */
  programmed = false;
  private leaseEvents = 0;
  private deviceRepairs = 0;

  constructor(private readonly options: NetworkInstanceOptions) {}

  get network(): string | undefined {
    return this.options.network;
  }

  async start(): Promise<void> {
    const { flags, log, manager, netlink } = this.options;
    // A bad backend key is a config error like any other: wait for a fixed config, set nothing up.
    let create!: ReturnType<typeof configureBackend>["create"];
    this.config = await this.retryStartup("waiting for a valid network config", async () => {
      const config = await manager.getNetworkConfig();
      ({ registration: this.registration, create } = configureBackend(config));
      return config;
    });
    log.info(`found network config: backend type ${this.config.backendType}`);

    const ext = await findExternalInterface(netlink, interfaceChoice(flags, this.config));
    log.info(
      `using interface ${ext.name} (public address ${[ext.publicIP, ext.publicIPv6].filter(Boolean).join(", ")})`,
    );

    const stored = await manager.storedBackendData?.();
    this.kernel = createKernelKinds(netlink);
    const backend = create({
      config: this.config,
      extIface: ext,
      netlink,
      kernel: this.kernel,
      log: (m) => log.info(m),
      warn: (m) => log.warn(m),
      stored,
    });
    this.backend = backend;
    const { attrs, mtu } = await backend.setUp();
    this.mtu = mtu;

    const previous = await readPreviousSubnets(this.options.envFile);
    this.lease = await this.retryStartup(
      "acquiring a subnet lease",
      () =>
        manager.acquireLease({
          attrs,
          previousSubnet: previous.subnet,
          previousIPv6Subnet: previous.ipv6Subnet,
          leaseRules: this.registration.leaseRules,
        }),
      // An operator error (no free subnet) does not fix itself by retrying: stop with it.
      (err) => err instanceof UserError,
    );
    log.info(
      `lease ${this.lease.key}: subnet ${[this.lease.subnet, this.lease.ipv6Subnet]
        .filter(Boolean)
        .map((n) => formatCIDR(n as IPNetwork))
        .join(", ")}`,
    );
    await backend.attachLease(this.lease);
    await backend.start?.(this.lease);

    await this.options.traffic.apply(this.config, this.lease);
    await this.writeEnvFile();

    const filter = new PeerLeaseFilter({
      config: this.config,
      kubeMode: flags.bool("kube-subnet-mgr"),
      readHostNetworks: () => readHostNetworks(netlink, ext, backend.ownedDevices),
      warn: (m) => log.warn(m),
    });
    this.filter = filter;
    await filter.refresh();
    // The blackhole routes are of the route kind, which a backend such as alloc does not declare.
    const backendKinds = backend.kinds;
    const kinds =
      flags.bool("ip-blackhole-route") && !backendKinds.includes(this.kernel.route)
        ? [...backendKinds, this.kernel.route]
        : backendKinds;
    this.reconciler = new Reconciler({
      kinds,
      scope: this.scope(),
      log: (m, v) => log.info(m, v),
      prepare: () => this.kernel.refresh(),
      onClean: () => this.onCleanRun(),
    });
    this.options.watchKinds(kinds);

    manager.watchLeases({
      onLeases: (leases) => {
        this.leases = leases;
        this.leaseEvents++;
        this.listed = true;
        this.recompute();
        this.options.onBurst?.();
      },
      onOwnLease: (lease) => void this.adoptOwnLease(lease),
      onWarning: (message) => log.warn(message),
      onFatal: (err) => this.options.onFatal(err),
    });
    this.timers.push(setInterval(() => void this.repair(), SAFETY_RECONCILE_MS));
    // The lease scope depends on the host's own networks (a bridge may come and go).
    const refresh = () => void filter.refresh().then((changed) => changed && this.recompute());
    this.timers.push(setInterval(refresh, SAFETY_RECONCILE_MS));
  }

  /** Retries a start-up step with the shared backoff, logging each distinct failure once. */
  private retryStartup<T>(
    what: string,
    step: () => Promise<T>,
    isFatal?: (err: unknown) => boolean,
  ): Promise<T> {
    return retry(step, {
      backoff: STARTUP_RETRY,
      onFailure: logEachDistinct((m) => this.options.log.warn(m), what, describeError),
      stopped: () => this.stopping,
      isFatal,
    });
  }

  private scope(): OwnershipScope {
    return ownershipScope(this.config, this.lease, this.backend!);
  }

  private async writeEnvFile(): Promise<void> {
    const path = this.options.envFile;
    try {
      await writeSubnetEnv(path, {
        network: this.config.ipv4?.network,
        subnet: this.lease.subnet,
        ipv6Network: this.config.ipv6?.network,
        ipv6Subnet: this.lease.ipv6Subnet,
        mtu: this.mtu,
        ipMasq: this.options.flags.bool("ip-masq"),
      });
      this.options.log.info(`wrote ${path}`);
    } catch (err) {
      // As flanneld: keep serving the peers; the CNI plugin tells each pod where to look.
      this.options.log.error(`${describeError(err)}; pods on this host cannot start until it is written`);
    }
  }

  /**
   * New desired state from the leases in scope; reports each refused or unusable lease once. A failure
   * here is logged, never thrown back into the store's callback.
   */
  private recompute(): void {
    // Before the first list the table is empty, not known: desiring nothing would remove every route.
    if (!this.listed || !this.backend || !this.filter || !this.reconciler) return;
    let desired: DesiredPeers;
    let peers: Lease[];
    try {
      peers = this.filter.peers(this.leases, this.lease);
      desired = this.backend.desiredState(this.lease, peers);
      this.filter.report(desired.problems);
    } catch (err) {
      this.options.log.error(`computing the desired state failed: ${boundText(describeError(err), 200)}`);
      return;
    }
    const blackholes = this.options.flags.bool("ip-blackhole-route")
      ? ownBlackholeRoutes(this.config, this.lease)
      : [];
    void this.reconciler.setDesired(withBlackholeRoutes(desired.state, blackholes));
    if (this.backend.peersChanged) {
      const change = diffPeers(this.lease, this.peers, peers);
      this.peers = change.peers;
      this.backend.peersChanged(change);
    }
  }

  /** Ready after the first clean run over the listed leases (runs wait for a desired state). */
  private onCleanRun(): void {
    this.options.onBurst?.();
    if (this.programmed || !this.listed) return;
    this.programmed = true;
    this.options.log.info(`datapath programmed for ${this.leases.size - 1} peer(s)`);
    this.options.onProgrammed(this.leases.size - 1);
    void this.options.manager.networkReady?.();
  }

  /** Every kernel notification the daemon's one subscription receives. */
  onKernelEvent(event: RtEvent): void {
    const { backend, reconciler } = this;
    if (this.stopping || !backend || !reconciler) return;
    if (event.kind === "link") {
      this.kernel.noteEvent(event);
      if (backend.ownedDevices.includes(event.link.name) && (event.action === "del" || !event.link.up)) {
        this.options.log.warn(
          `device ${event.link.name} was ${event.action === "del" ? "deleted" : "set down"}; restoring it`,
        );
        this.deviceRepairs++;
        void this.repair(true);
        return;
      }
    }
    // Someone else touched what we manage: converge soon, once for the whole burst. Notifications
    // caused by our own writes match the desired state and are ignored.
    if (!reconciler.concerns(event)) return;
    clearTimeout(this.eventTimer);
    this.eventTimer = setTimeout(() => void reconciler.trigger(), EVENT_DEBOUNCE_MS);
  }

  /** A full reconcile (and, with `devices`, the backend's devices restored first). */
  async repair(devices = false): Promise<void> {
    if (this.stopping || !this.reconciler || !this.backend) return;
    try {
      if (devices) await this.backend.attachLease(this.lease);
      await this.reconciler.trigger();
    } catch (err) {
      this.options.log.error(`repair failed: ${describeError(err)}`);
    }
  }

  private async adoptOwnLease(lease: Lease): Promise<void> {
    this.lease = lease;
    this.options.log.info(`lease ${lease.key} acquired again`);
    try {
      await this.backend!.attachLease(lease);
      await this.options.traffic.apply(this.config, lease);
      await this.writeEnvFile();
      this.reconciler!.setScope(this.scope());
      this.recompute();
    } catch (err) {
      this.options.log.error(`re-applying lease ${lease.key} failed: ${describeError(err)}`);
    }
  }

  counters(): DaemonCounters {
    const ownListed = this.lease !== undefined && this.leases.has(this.lease.key);
    return {
      peers: Math.max(0, this.leases.size - (ownListed ? 1 : 0)),
      leaseUpdates: this.leaseEvents,
      leaseScope: this.filter?.metricLines() ?? [],
      deviceRepairs: this.deviceRepairs,
      iptablesRepairs: 0, // the daemon counts them: the rules may be shared
      reconcile: this.reconciler?.stats,
      backend: this.backend?.metricLines?.() ?? [],
    };
  }

  /** Stops watching and the backend's loops; the datapath stays so traffic flows until the next start. */
  async stop(): Promise<void> {
    this.stopping = true;
    for (const timer of this.timers) clearInterval(timer);
    clearTimeout(this.eventTimer);
    this.options.traffic.forget();
    await this.reconciler?.close();
    await this.backend
      ?.close?.()
      .catch((err) => this.options.log.error(`closing the backend: ${describeError(err)}`));
    await this.options.manager.close().catch(() => undefined);
  }
}
