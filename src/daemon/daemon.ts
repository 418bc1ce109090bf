/**
 * weftd: wires a subnet manager, a backend, the reconciler and the traffic rules together.
 * Startup follows flanneld (config, interface, backend devices, lease, rules, subnet.env); from then on
 * every change — a lease event, a netlink notification, a timer — only asks the reconciler to converge.
 */
import type { Server } from "node:http";
import v8 from "node:v8";
import vm from "node:vm";
import type { Backend, BackendRegistration, DesiredPeers } from "../backend/backend.js";
import { diffPeers } from "../backend/peer-change.js";
import { configureBackend } from "../backend/registry.js";
import type { NetworkConfig } from "../config/network-config.js";
import { formatCIDR, type IPNetwork } from "../ip/ip-network.js";
import type { Lease } from "../lease/lease.js";
import { readPreviousSubnets, writeSubnetEnv } from "../lease/subnet-env.js";
import { type RtEvent, type RtEvents, type RtGroup, RtNetlink } from "../netlink/index.js";
import { createKernelKinds, type KernelKinds } from "../reconcile/kinds/kernel-kinds.js";
import { type OwnershipScope, Reconciler } from "../reconcile/reconciler.js";
import { type BackoffOptions, logEachDistinct, retry } from "../retry/backoff.js";
import { openSubnetManager } from "../subnet/registry.js";
import type { SubnetManager } from "../subnet/subnet-manager.js";
import { boundText } from "../text/untrusted-text.js";
import { describeError, UserError } from "../user-error.js";
import { ownBlackholeRoutes, withBlackholeRoutes } from "./blackhole-routes.js";
import { renderMetrics } from "./daemon-metrics.js";
import { findExternalInterface, interfaceChoice } from "./external-interface.js";
import type { Flags } from "./flags.js";
import { startHealthServer } from "./health-server.js";
import { readHostNetworks } from "./host-networks.js";
import type { Logger } from "./logger.js";
import { ownershipScope } from "./ownership-scope.js";
import { PeerLeaseFilter } from "./peer-lease-filter.js";
import { firewallsFor, TrafficRulesSync, trafficOptions } from "./traffic-rules-sync.js";
import { rescueUnderlay } from "./underlay-rescue.js";

/** A full reconcile now and then catches anything no event told us about. */
const SAFETY_RECONCILE_MS = 30_000;
/** Coalesce bursts of netlink notifications (our own writes cause them too). */
const EVENT_DEBOUNCE_MS = 20;
/** Waiting for the store or for a fixed config: soon at first, then every few seconds. */
const STARTUP_RETRY: BackoffOptions = { minMs: 1000, maxMs: 5000 };

/**
 * A full garbage collection, so V8 returns the pages a burst of work left behind (RSS is what operators
 * see). --expose-gc set at run time applies to contexts made afterwards, hence the fresh context.
 */
function releaseMemory(): void {
  v8.setFlagsFromString("--expose-gc");
  (vm.runInNewContext("gc") as () => void)();
}

export class Daemon {
  private netlink!: RtNetlink;
  private events: RtEvents | undefined;
  private manager!: SubnetManager;
  private backend!: Backend;
  private config!: NetworkConfig;
  private lease!: Lease;
  private mtu = 0;
  private kernel!: KernelKinds;
  private registration!: BackendRegistration;
  private peers: ReadonlyMap<string, Lease> = new Map();
  private reconciler!: Reconciler;
  private traffic!: TrafficRulesSync;
  private health: Server | undefined;
  private leases: ReadonlyMap<string, Lease> = new Map();
  private filter!: PeerLeaseFilter;
  private timers: NodeJS.Timeout[] = [];
  private eventTimer: NodeJS.Timeout | undefined;
  private stopping = false;
  private listed = false;
  private programmed = false;
  private leaseEvents = 0;
  private deviceRepairs = 0;

  constructor(
    private readonly flags: Flags,
    private readonly log: Logger,
    private readonly onFatal: (err: Error) => void,
    /** Called once, when the datapath is first programmed (systemd's READY=1). */
    private readonly onProgrammed: (peers: number) => void = () => {},
  ) {}

  async start(): Promise<void> {
    const { flags, log } = this;
    const healthPort = flags.int("healthz-port");
    if (healthPort > 0) {
      this.health = await startHealthServer(flags.string("healthz-ip"), healthPort, {
        ready: () => this.programmed,
        metrics: () => this.metrics(),
      });
      log.info(`serving /healthz, /readyz and /metrics on ${flags.string("healthz-ip")}:${healthPort}`);
    }
    this.netlink = await RtNetlink.open();
    await rescueUnderlay(this.netlink, (m) => log.warn(m));
    this.manager = await openSubnetManager({
      flags,
      env: process.env,
      log: (m) => log.info(m),
      logError: (m) => log.error(m),
    });
    log.info(`created subnet manager: ${this.manager.name}`);

    // A bad backend key is a config error like any other: wait for a fixed config, set nothing up.
    let create!: ReturnType<typeof configureBackend>["create"];
    this.config = await this.retryStartup("waiting for a valid network config", async () => {
      const config = await this.manager.getNetworkConfig();
      ({ registration: this.registration, create } = configureBackend(config));
      return config;
    });
    log.info(`found network config: backend type ${this.config.backendType}`);

    const ext = await findExternalInterface(this.netlink, interfaceChoice(flags, this.config));
    log.info(
      `using interface ${ext.name} (public address ${[ext.publicIP, ext.publicIPv6].filter(Boolean).join(", ")})`,
    );

    const stored = await this.manager.storedBackendData?.();
    this.kernel = createKernelKinds(this.netlink);
    this.backend = create({
      config: this.config,
      extIface: ext,
      netlink: this.netlink,
      kernel: this.kernel,
      log: (m) => log.info(m),
      warn: (m) => log.warn(m),
      stored,
    });
    const { attrs, mtu } = await this.backend.setUp();
    this.mtu = mtu;

    const subnetFile = flags.string("subnet-file");
    const previous = await readPreviousSubnets(subnetFile);
    this.lease = await this.retryStartup(
      "acquiring a subnet lease",
      () =>
        this.manager.acquireLease({
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
    await this.backend.attachLease(this.lease);
    await this.backend.start?.(this.lease);

    const { use, other } = firewallsFor(this.config.enableNFTables);
    this.traffic = new TrafficRulesSync(trafficOptions(flags), use, other, log);
    await this.traffic.start(this.config, this.lease);
    await this.writeSubnetFile();

    this.filter = new PeerLeaseFilter({
      config: this.config,
      kubeMode: flags.bool("kube-subnet-mgr"),
      readHostNetworks: () => readHostNetworks(this.netlink, ext, this.backend.ownedDevices),
      warn: (m) => log.warn(m),
    });
    await this.filter.refresh();
    // The blackhole routes are of the route kind, which a backend such as alloc does not declare.
    const backendKinds = this.backend.kinds;
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
    const groups = new Set<RtGroup>(["link"]);
    for (const kind of kinds) for (const group of kind.events?.groups ?? []) groups.add(group);
    this.events = this.netlink.subscribe([...groups]);
    this.events.on("event", (event: RtEvent) => this.onKernelEvent(event));
    this.events.on("overrun", () => {
      log.warn("missed kernel notifications (receive buffer overrun); reconciling everything");
      void this.repair();
    });
    this.events.on("error", (err: Error) => log.error(`kernel notifications failed: ${err.message}`));

    this.manager.watchLeases({
      onLeases: (leases) => {
        this.leases = leases;
        this.leaseEvents++;
        this.listed = true;
        this.recompute();
      },
      onOwnLease: (lease) => void this.adoptOwnLease(lease),
      onWarning: (message) => log.warn(message),
      onFatal: (err) => this.onFatal(err),
    });
    this.timers.push(setInterval(() => void this.repair(), SAFETY_RECONCILE_MS));
    // The lease scope depends on the host's own networks (a bridge may come and go).
    const refresh = () => void this.filter.refresh().then((changed) => changed && this.recompute());
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
      onFailure: logEachDistinct((m) => this.log.warn(m), what, describeError),
      stopped: () => this.stopping,
      isFatal,
    });
  }

  private scope(): OwnershipScope {
    return ownershipScope(this.config, this.lease, this.backend);
  }

  private async writeSubnetFile(): Promise<void> {
    const path = this.flags.string("subnet-file");
    try {
      await writeSubnetEnv(path, {
        network: this.config.ipv4?.network,
        subnet: this.lease.subnet,
        ipv6Network: this.config.ipv6?.network,
        ipv6Subnet: this.lease.ipv6Subnet,
        mtu: this.mtu,
        ipMasq: this.flags.bool("ip-masq"),
      });
      this.log.info(`wrote ${path}`);
    } catch (err) {
      // As flanneld: keep serving the peers; the CNI plugin tells each pod where to look.
      this.log.error(`${describeError(err)}; pods on this host cannot start until it is written`);
    }
  }

  /**
   * New desired state from the leases in scope; reports each refused or unusable lease once. A failure
   * here is logged, never thrown back into the store's callback.
   */
  private recompute(): void {
    // Before the first list the table is empty, not known: desiring nothing would remove every route.
    if (!this.listed) return;
    let desired: DesiredPeers;
    let peers: Lease[];
    try {
      peers = this.filter.peers(this.leases, this.lease);
      desired = this.backend.desiredState(this.lease, peers);
      this.filter.report(desired.problems);
    } catch (err) {
      this.log.error(`computing the desired state failed: ${boundText(describeError(err), 200)}`);
      return;
    }
    const blackholes = this.flags.bool("ip-blackhole-route")
      ? ownBlackholeRoutes(this.config, this.lease)
      : [];
    void this.reconciler.setDesired(withBlackholeRoutes(desired.state, blackholes));
    if (this.backend.peersChanged) {
      const change = diffPeers(this.lease, this.peers, peers);
      this.peers = change.peers;
      this.backend.peersChanged(change);
    }
  }

  /** /readyz turns ready after the first clean run over the listed leases (runs wait for a desired state). */
  private onCleanRun(): void {
    if (this.programmed || !this.listed) return;
    this.programmed = true;
    this.log.info(`datapath programmed for ${this.leases.size - 1} peer(s)`);
    this.onProgrammed(this.leases.size - 1);
    void this.manager.networkReady?.();
    // The first programming of many peers leaves a large heap of garbage; give it back now.
    releaseMemory();
  }

  private onKernelEvent(event: RtEvent): void {
    if (this.stopping) return;
    if (event.kind === "link") {
      this.kernel.noteEvent(event);
      const ours = [...this.backend.ownedDevices];
      if (ours.includes(event.link.name) && (event.action === "del" || !event.link.up)) {
        this.log.warn(
          `device ${event.link.name} was ${event.action === "del" ? "deleted" : "set down"}; restoring it`,
        );
        this.deviceRepairs++;
        void this.repair(true);
        return;
      }
    }
    // Someone else touched what we manage: converge soon, once for the whole burst. Notifications
    // caused by our own writes match the desired state and are ignored.
    if (!this.reconciler.concerns(event)) return;
    clearTimeout(this.eventTimer);
    this.eventTimer = setTimeout(() => void this.reconciler.trigger(), EVENT_DEBOUNCE_MS);
  }

  private async repair(devices = false): Promise<void> {
    if (this.stopping) return;
    try {
      if (devices) await this.backend.attachLease(this.lease);
      await this.reconciler.trigger();
    } catch (err) {
      this.log.error(`repair failed: ${describeError(err)}`);
    }
  }

  private async adoptOwnLease(lease: Lease): Promise<void> {
    this.lease = lease;
    this.log.info(`lease ${lease.key} acquired again`);
    try {
      await this.backend.attachLease(lease);
      await this.traffic.start(this.config, lease);
      await this.writeSubnetFile();
      this.reconciler.setScope(this.scope());
      this.recompute();
    } catch (err) {
      this.log.error(`re-applying lease ${lease.key} failed: ${describeError(err)}`);
    }
  }

  private metrics(): string {
    const ownListed = this.lease !== undefined && this.leases.has(this.lease.key);
    return renderMetrics({
      peers: Math.max(0, this.leases.size - (ownListed ? 1 : 0)),
      leaseUpdates: this.leaseEvents,
      leaseScope: this.filter?.metricLines() ?? [],
      deviceRepairs: this.deviceRepairs,
      iptablesRepairs: this.traffic?.repairs ?? 0,
      reconcile: this.reconciler?.stats,
      backend: this.backend?.metricLines?.() ?? [],
    });
  }

  /** Stops watching and serving; the datapath stays as it is so traffic flows until the next start. */
  async stop(): Promise<void> {
    this.stopping = true;
    for (const timer of this.timers) clearInterval(timer);
    clearTimeout(this.eventTimer);
    this.traffic?.stop();
    this.events?.close();
    await this.reconciler?.close();
    await this.backend
      ?.close?.()
      .catch((err) => this.log.error(`closing the backend: ${describeError(err)}`));
    await this.manager?.close().catch(() => undefined);
    this.netlink?.close();
    await new Promise<void>((resolve) => (this.health ? this.health.close(() => resolve()) : resolve()));
  }
}
