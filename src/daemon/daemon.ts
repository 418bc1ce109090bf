/**
 * weftd: wires a subnet manager, a backend, the reconciler and the traffic rules together.
 * Startup follows flanneld (config, interface, backend devices, lease, rules, subnet.env); from then on
 * every change — a lease event, a netlink notification, a timer — only asks the reconciler to converge.
 */
import type { Server } from "node:http";
import v8 from "node:v8";
import vm from "node:vm";
import type { Backend, DesiredPeers } from "../backend/backend.js";
import { createBackend } from "../backend/registry.js";
import { enabledNetworks, type NetworkConfig } from "../config/network-config.js";
import { formatCIDR, type IPNetwork } from "../ip/ip-network.js";
import type { Lease } from "../lease/lease.js";
import { readPreviousSubnets, writeSubnetEnv } from "../lease/subnet-env.js";
import { type RtEvent, type RtEvents, RtNetlink } from "../netlink/index.js";
import { NetlinkKernel } from "../reconcile/netlink-kernel.js";
import { type OwnershipScope, Reconciler } from "../reconcile/reconciler.js";
import type { SubnetManager } from "../subnet/subnet-manager.js";
import { boundText } from "../text/untrusted-text.js";
import { describeError, UserError } from "../user-error.js";
import { findExternalInterface } from "./external-interface.js";
import type { Flags } from "./flags.js";
import { startHealthServer } from "./health-server.js";
import { readHostNetworks } from "./host-networks.js";
import type { Logger } from "./logger.js";
import { PeerLeaseFilter } from "./peer-lease-filter.js";
import { TrafficRulesSync } from "./traffic-rules-sync.js";
import { rescueUnderlay } from "./underlay-rescue.js";

/** A full reconcile now and then catches anything no event told us about. */
const SAFETY_RECONCILE_MS = 30_000;
/** Coalesce bursts of netlink notifications (our own writes cause them too). */
const EVENT_DEBOUNCE_MS = 20;
const RETRY_MS = 1000;

/**
 * A full garbage collection, so V8 returns the pages a burst of work left behind (RSS is what operators
 * see). --expose-gc set at run time applies to contexts made afterwards, hence the fresh context.
 */
function releaseMemory(): void {
  v8.setFlagsFromString("--expose-gc");
  (vm.runInNewContext("gc") as () => void)();
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function openSubnetManager(flags: Flags, log: Logger): Promise<SubnetManager> {
  if (flags.bool("kube-subnet-mgr")) {
    // Loaded only in kube mode, like the etcd client below.
    const { openKubeSubnetManager } = await import("../subnet/kube/open-kube-subnet-manager.js");
    return openKubeSubnetManager({
      apiUrl: flags.string("kube-api-url"),
      kubeconfigFile: flags.string("kubeconfig-file"),
      annotationPrefix: flags.string("kube-annotation-prefix"),
      netConfigPath: flags.string("net-config-path"),
      setNodeNetworkUnavailable: flags.bool("set-node-network-unavailable"),
      env: process.env,
      log: (m) => log.info(m),
    });
  }
  const margin = flags.int("subnet-lease-renew-margin");
  if (margin <= 0 || margin >= 24 * 60) {
    throw new UserError(`--subnet-lease-renew-margin ${margin} is out of range`, "use 1 to 1439 minutes");
  }
  // Loaded only in etcd mode: the client is the biggest dependency weftd has.
  const { EtcdStore } = await import("../subnet/etcd/etcd-store.js");
  const { EtcdSubnetManager } = await import("../subnet/etcd/etcd-subnet-manager.js");
  const endpoints = flags
    .string("etcd-endpoints")
    .split(",")
    .map((e) => e.trim())
    .filter((e) => e !== "");
  for (const endpoint of endpoints) {
    if (!/^https?:\/\/[^/]+/.test(endpoint)) {
      throw new UserError(
        `--etcd-endpoints has ${JSON.stringify(endpoint)}, which is not a URL`,
        "write endpoints like http://10.0.0.1:2379",
      );
    }
  }
  const store = await EtcdStore.connect({
    endpoints,
    caFile: flags.string("etcd-cafile") || undefined,
    certFile: flags.string("etcd-certfile") || undefined,
    keyFile: flags.string("etcd-keyfile") || undefined,
    username: flags.string("etcd-username") || undefined,
    password: flags.string("etcd-password") || undefined,
    callTimeoutMs: 5000,
  });
  return new EtcdSubnetManager(store, {
    prefix: flags.string("etcd-prefix").replace(/\/+$/, ""),
    leaseTtlSeconds: 24 * 60 * 60,
    renewMarginSeconds: margin * 60,
    log: (m) => log.info(m),
  });
}

/**
 * Retries `step` every second until it succeeds, logging each distinct failure once; errors for which
 * `fatal` says yes are not retried.
 */
async function retry<T>(
  what: string,
  step: () => Promise<T>,
  log: Logger,
  stopped: () => boolean,
  fatal: (err: unknown) => boolean = () => false,
): Promise<T> {
  let last = "";
  for (;;) {
    try {
      return await step();
    } catch (err) {
      if (stopped() || fatal(err)) throw err;
      const text = describeError(err);
      if (text !== last) log.warn(`${what}: ${text}; retrying every ${RETRY_MS / 1000} s`);
      last = text;
      await sleep(RETRY_MS);
    }
  }
}

export class Daemon {
  private netlink!: RtNetlink;
  private events: RtEvents | undefined;
  private manager!: SubnetManager;
  private backend!: Backend;
  private config!: NetworkConfig;
  private lease!: Lease;
  private mtu = 0;
  private kernel!: NetlinkKernel;
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
    this.manager = await openSubnetManager(flags, log);
    log.info(`created subnet manager: ${this.manager.name}`);

    this.config = await retry(
      "waiting for the network config",
      () => this.manager.getNetworkConfig(),
      log,
      () => this.stopping,
    );
    log.info(`found network config: backend type ${this.config.backendType}`);
    if (this.config.enableNFTables)
      log.warn("EnableNFTables is set but weft manages rules with iptables for now");

    const ext = await findExternalInterface(this.netlink, {
      iface: flags.list("iface"),
      ifaceRegex: flags.list("iface-regex"),
      ifaceCanReach: flags.string("iface-can-reach"),
      publicIP: flags.string("public-ip"),
      publicIPv6: flags.string("public-ipv6"),
      ipv4: this.config.enableIPv4,
      ipv6: this.config.enableIPv6,
    });
    log.info(
      `using interface ${ext.name} (public address ${[ext.publicIP, ext.publicIPv6].filter(Boolean).join(", ")})`,
    );

    const stored = await this.manager.storedBackendData?.();
    this.backend = createBackend(
      this.config.backendType,
      { config: this.config, extIface: ext, log: (m) => log.info(m), stored },
      this.netlink,
    );
    const { attrs, mtu } = await this.backend.setUp();
    this.mtu = mtu;

    const subnetFile = flags.string("subnet-file");
    const previous = await readPreviousSubnets(subnetFile);
    this.lease = await retry(
      "acquiring a subnet lease",
      () =>
        this.manager.acquireLease({
          attrs,
          previousSubnet: previous.subnet,
          previousIPv6Subnet: previous.ipv6Subnet,
        }),
      log,
      () => this.stopping,
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

    this.traffic = new TrafficRulesSync(
      {
        ipMasq: flags.bool("ip-masq"),
        randomFully: !flags.bool("ip-masq-fully-random-disable"),
        forwardRules: flags.bool("iptables-forward-rules"),
        resyncSeconds: flags.int("iptables-resync"),
      },
      log,
    );
    await this.traffic.start(this.config, this.lease);
    await this.writeSubnetFile();

    this.filter = new PeerLeaseFilter({
      config: this.config,
      kubeMode: flags.bool("kube-subnet-mgr"),
      readHostNetworks: () => readHostNetworks(this.netlink, ext, this.backend.ownedDevices),
      warn: (m) => log.warn(m),
    });
    await this.filter.refresh();
    this.kernel = new NetlinkKernel(this.netlink);
    this.reconciler = new Reconciler(this.kernel, this.scope(), (m, v) => log.info(m, v));
    this.events = this.netlink.subscribe(["link", "neigh", "ipv4-route", "ipv6-route"]);
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

  private scope(): OwnershipScope {
    return {
      networks: enabledNetworks(this.config),
      ownSubnets: [this.lease.subnet, this.lease.ipv6Subnet].filter((n): n is IPNetwork => n !== undefined),
      routeDevices: this.backend.routeDevices,
      ownedDevices: this.backend.ownedDevices,
    };
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
      this.log.error(
        `cannot write ${path}: ${describeError(err)} (pods on this host cannot start until it exists)`,
      );
    }
  }

  /**
   * New desired state from the leases in scope; reports each refused or unusable lease once. A failure
   * here is logged, never thrown back into the store's callback.
   */
  private recompute(): void {
    let desired: DesiredPeers;
    try {
      desired = this.backend.desiredState(this.lease, this.filter.peers(this.leases, this.lease));
      this.filter.report(desired.problems);
    } catch (err) {
      this.log.error(`computing the desired state failed: ${boundText(describeError(err), 200)}`);
      return;
    }
    const run = this.reconciler.setDesired(desired.state);
    if (!this.programmed && this.listed) {
      void run.then(() => {
        if (this.programmed) return;
        this.programmed = true;
        this.log.info(`datapath programmed for ${this.leases.size - 1} peer(s)`);
        void this.manager.networkReady?.();
        // The first programming of many peers leaves a large heap of garbage; give it back now.
        releaseMemory();
      });
    }
  }

  private onKernelEvent(event: RtEvent): void {
    if (this.stopping) return;
    if (event.kind === "link") {
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
    const change = this.kernel.changeOf(event);
    if (!change || !this.reconciler.needsRepair(change)) return;
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
    const stats = this.reconciler?.stats;
    const lines = [
      "# HELP weft_peers Leases of other hosts currently known.",
      "# TYPE weft_peers gauge",
      `weft_peers ${Math.max(0, this.leases.size - (this.lease && this.leases.has(this.lease.key) ? 1 : 0))}`,
      "# HELP weft_lease_updates_total Lease table updates received from the store.",
      "# TYPE weft_lease_updates_total counter",
      `weft_lease_updates_total ${this.leaseEvents}`,
      ...(this.filter?.metricLines() ?? []),
      "# HELP weft_reconcile_runs_total Reconcile runs (dump, diff, apply).",
      "# TYPE weft_reconcile_runs_total counter",
      `weft_reconcile_runs_total ${stats?.runs ?? 0}`,
      "# HELP weft_kernel_changes_total Routes, neighbours and FDB entries written or removed.",
      "# TYPE weft_kernel_changes_total counter",
      `weft_kernel_changes_total ${stats?.changes ?? 0}`,
      "# HELP weft_kernel_change_failures_total Kernel changes that failed.",
      "# TYPE weft_kernel_change_failures_total counter",
      `weft_kernel_change_failures_total ${stats?.failures ?? 0}`,
      "# HELP weft_device_repairs_total Times a backend device was restored after deletion.",
      "# TYPE weft_device_repairs_total counter",
      `weft_device_repairs_total ${this.deviceRepairs}`,
      "# HELP weft_iptables_repairs_total iptables chains restored after being changed.",
      "# TYPE weft_iptables_repairs_total counter",
      `weft_iptables_repairs_total ${this.traffic?.repairs ?? 0}`,
      "# HELP weft_reconcile_last_duration_seconds Duration of the last reconcile run.",
      "# TYPE weft_reconcile_last_duration_seconds gauge",
      `weft_reconcile_last_duration_seconds ${((stats?.lastDurationMs ?? 0) / 1000).toFixed(6)}`,
    ];
    return `${lines.join("\n")}\n`;
  }

  /** Stops watching and serving; the datapath stays as it is so traffic flows until the next start. */
  async stop(): Promise<void> {
    this.stopping = true;
    for (const timer of this.timers) clearInterval(timer);
    clearTimeout(this.eventTimer);
    this.traffic?.stop();
    this.events?.close();
    await this.reconciler?.close();
    await this.manager?.close().catch(() => undefined);
    this.netlink?.close();
    await new Promise<void>((resolve) => (this.health ? this.health.close(() => resolve()) : resolve()));
  }
}
