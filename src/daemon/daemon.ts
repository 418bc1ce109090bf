/**
 * weftd: runs one network (flanneld's usual mode) or several (flanneld v0.7's --networks), each a
 * NetworkInstance, over one netlink socket, one kernel-notification subscription and one store
 * connection, and serves /healthz, /readyz and /metrics for all of them.
 */
import type { Server } from "node:http";
import { type RtEvent, type RtEvents, type RtGroup, RtNetlink } from "../netlink/index.js";
import type { AnyStateKind } from "../reconcile/state-kind.js";
import { MemoryRelease } from "../runtime/release-memory.js";
import type { NetworkSource } from "../subnet/network-source.js";
import { openNetworkSource, openSubnetManager, type StoreContext } from "../subnet/registry.js";
import type { SubnetManager } from "../subnet/subnet-manager.js";
import { describeError } from "../user-error.js";
import { type DaemonCounters, renderMetrics } from "./daemon-metrics.js";
import type { Flags } from "./flags.js";
import { startHealthServer } from "./health-server.js";
import type { Logger } from "./logger.js";
import {
  isNetworkAllowed,
  isNetworkName,
  type MultiNetworkOptions,
  multiNetworkOptions,
  networkEnvPath,
} from "./multi-network.js";
import { NetworkInstance } from "./network-instance.js";
import { SharedTrafficRules } from "./network-traffic-rules.js";
import { trafficOptions } from "./traffic-rules-sync.js";
import { rescueUnderlay } from "./underlay-rescue.js";

/** A network that failed to start (bad config it cannot wait out, no free subnet) is tried again after this. */
const NETWORK_RESTART_MS = 10_000;

/** A logger whose every line names the network, as flanneld v0.7's "blue: lease acquired". */
function networkLogger(log: Logger, network: string): Logger {
  return {
    info: (m, v) => log.info(`${network}: ${m}`, v),
    warn: (m) => log.warn(`${network}: ${m}`),
    error: (m) => log.error(`${network}: ${m}`),
  };
}

export class Daemon {
  private netlink!: RtNetlink;
  private events: RtEvents | undefined;
  private groups = new Set<RtGroup>();
  private source: NetworkSource | undefined;
  private readonly instances = new Map<string, NetworkInstance>();
  private readonly memory = new MemoryRelease();
  private readonly restartTimers = new Map<string, NodeJS.Timeout>();
  private readonly refused = new Set<string>();
  /** With --watch-networks: the networks the store has now (a removed one is not restarted). */
  private listed: ReadonlySet<string> | undefined;
  private health: Server | undefined;
  private traffic!: SharedTrafficRules;
  private stopping = false;

  constructor(
    private readonly flags: Flags,
    private readonly log: Logger,
    private readonly onFatal: (err: Error) => void,
    /** Called once, when the datapath is first programmed (systemd's READY=1; single-network mode only). */
    private readonly onProgrammed: (peers: number) => void = () => {},
  ) {}

  async start(): Promise<void> {
    const { flags, log } = this;
    const multi = multiNetworkOptions(flags);
    // Rules go into the chains in --networks order, then any network --watch-networks found.
    const rank = (n: string) => {
      const i = multi?.networks.indexOf(n) ?? -1;
      return i < 0 ? Number.MAX_SAFE_INTEGER : i;
    };
    this.traffic = new SharedTrafficRules(trafficOptions(flags), log, (names) =>
      [...names].sort((a, b) => rank(a) - rank(b) || (a < b ? -1 : a > b ? 1 : 0)),
    );
    const healthPort = flags.int("healthz-port");
    if (healthPort > 0) {
      this.health = await startHealthServer(flags.string("healthz-ip"), healthPort, {
        ready: () => this.ready(),
        metrics: () => this.metrics(),
      });
      log.info(`serving /healthz, /readyz and /metrics on ${flags.string("healthz-ip")}:${healthPort}`);
    }
    this.netlink = await RtNetlink.open();
    await rescueUnderlay(this.netlink, (m) => log.warn(m));
    const store: StoreContext = {
      flags,
      env: process.env,
      log: (m) => log.info(m),
      logError: (m) => log.error(m),
    };
    if (multi) return this.startNetworks(multi, store);

    const manager = await openSubnetManager(store);
    log.info(`created subnet manager: ${manager.name}`);
    const instance = this.instance(undefined, manager, flags.string("subnet-file"), log, (peers) => {
      this.onProgrammed(peers);
      // The first programming of many peers leaves a large heap of garbage; give it back once the run
      // that made it has returned (its entries are garbage only then).
      this.memory.afterBurst();
    });
    this.instances.set("", instance);
    await instance.start();
  }

  private instance(
    network: string | undefined,
    manager: SubnetManager,
    envFile: string,
    log: Logger,
    onProgrammed: (peers: number) => void,
  ): NetworkInstance {
    return new NetworkInstance({
      network,
      manager,
      flags: this.flags,
      log,
      netlink: this.netlink,
      envFile,
      traffic: this.traffic.forNetwork(network ?? ""),
      watchKinds: (kinds) => this.watchKinds(kinds),
      onFatal: (err) => (network === undefined ? this.onFatal(err) : this.restartLater(network, err)),
      onProgrammed,
      onBurst: () => this.memory.afterBurst(),
    });
  }

  /** flanneld v0.7's multi-network mode: one instance per network; one failing leaves the others be. */
  private async startNetworks(multi: MultiNetworkOptions, store: StoreContext): Promise<void> {
    const { log } = this;
    this.source = await openNetworkSource(store);
    log.info(
      `multi-network mode (subnet manager ${this.source.name}): ${multi.networks.length > 0 ? multi.networks.join(", ") : "every network"}${multi.watch ? ", watching for networks" : ""}; env files in ${multi.subnetDir}`,
    );
    if (!multi.watch) {
      // Each network waits for its own config, reporting by name what is missing or wrong.
      for (const network of multi.networks) this.startNetwork(network, multi);
      return;
    }
    let first = true;
    this.source.watchNetworks({
      onNetworks: (names) => {
        this.onNetworks(names, multi, first);
        first = false;
      },
      onWarning: (m) => log.warn(m),
    });
  }

  /** The store's networks changed (--watch-networks): join the allowed new ones, leave removed ones. */
  private onNetworks(names: ReadonlySet<string>, multi: MultiNetworkOptions, initial: boolean): void {
    if (this.stopping) return;
    this.listed = names;
    for (const name of names) {
      if (this.instances.has(name) || this.restartTimers.has(name)) continue;
      if (!isNetworkName(name) || !isNetworkAllowed(multi, name)) {
        if (!this.refused.has(name)) this.log.info(`network ${JSON.stringify(name)} is not allowed`);
        this.refused.add(name);
        continue;
      }
      if (!initial) this.log.info(`network added: ${name}`);
      this.startNetwork(name, multi);
    }
    for (const name of this.refused) if (!names.has(name)) this.refused.delete(name);
    for (const [name, timer] of this.restartTimers) {
      if (names.has(name)) continue;
      clearTimeout(timer);
      this.restartTimers.delete(name);
    }
    for (const [name, instance] of this.instances) {
      if (names.has(name)) continue;
      // As flanneld v0.7: the network's devices, routes and env file stay; only weftd stops tending them.
      this.log.info(`network removed: ${name}`);
      this.instances.delete(name);
      clearTimeout(this.restartTimers.get(name));
      void instance.stop();
    }
  }

  private startNetwork(network: string, multi: MultiNetworkOptions): void {
    if (this.stopping || !this.source) return;
    const log = networkLogger(this.log, network);
    const instance = this.instance(
      network,
      this.source.managerFor(network),
      networkEnvPath(multi.subnetDir, network),
      log,
      () => undefined,
    );
    this.instances.set(network, instance);
    instance.start().catch((err) => this.restartLater(network, err as Error));
  }

  /** One network failed: report it by name and start it afresh later; the other networks go on. */
  private restartLater(network: string, err: Error): void {
    const instance = this.instances.get(network);
    if (this.stopping || !instance) return;
    this.log.error(
      `${network}: ${describeError(err)}; trying the network again in ${NETWORK_RESTART_MS / 1000} s`,
    );
    this.instances.delete(network);
    void instance.stop();
    const multi = multiNetworkOptions(this.flags)!;
    clearTimeout(this.restartTimers.get(network));
    this.restartTimers.set(
      network,
      setTimeout(() => {
        this.restartTimers.delete(network);
        const wanted = this.listed === undefined || this.listed.has(network);
        if (wanted && !this.instances.has(network)) this.startNetwork(network, multi);
      }, NETWORK_RESTART_MS),
    );
  }

  /**
   * One subscription for every instance: the union of their kinds' groups (+ "link"). A network that
   * needs a group not yet subscribed re-subscribes; what it may have missed meanwhile a full run repairs.
   */
  private watchKinds(kinds: readonly AnyStateKind[]): void {
    const wanted = new Set<RtGroup>([...this.groups, "link"]);
    for (const kind of kinds) for (const group of kind.events?.groups ?? []) wanted.add(group);
    if (this.events && wanted.size === this.groups.size) return;
    const resubscribe = this.events !== undefined;
    this.events?.close();
    this.groups = wanted;
    const events = this.netlink.subscribe([...wanted]);
    this.events = events;
    events.on("event", (event: RtEvent) => {
      if (this.stopping) return;
      for (const instance of this.instances.values()) instance.onKernelEvent(event);
    });
    events.on("overrun", () => {
      this.log.warn("missed kernel notifications (receive buffer overrun); reconciling everything");
      this.repairAll();
    });
    events.on("error", (err: Error) => this.log.error(`kernel notifications failed: ${err.message}`));
    if (resubscribe) this.repairAll();
  }

  private repairAll(): void {
    for (const instance of this.instances.values()) void instance.repair();
  }

  /** Ready once every network's datapath has been programmed (multi-network: at least one network). */
  private ready(): boolean {
    const all = [...this.instances.values()];
    return all.length > 0 && all.every((i) => i.programmed);
  }

  private metrics(): string {
    const all = [...this.instances.values()].map((i) => i.counters());
    if (all.length === 1) return renderMetrics({ ...all[0]!, iptablesRepairs: this.traffic.repairs });
    // Several networks: the totals (per-network series would need a label every reader knows first).
    const sum = (pick: (c: DaemonCounters) => number) => all.reduce((n, c) => n + pick(c), 0);
    return renderMetrics({
      peers: sum((c) => c.peers),
      leaseUpdates: sum((c) => c.leaseUpdates),
      leaseScope: [],
      deviceRepairs: sum((c) => c.deviceRepairs),
      iptablesRepairs: this.traffic.repairs,
      reconcile: undefined,
    });
  }

  /** Stops watching and serving; the datapath stays as it is so traffic flows until the next start. */
  async stop(): Promise<void> {
    this.stopping = true;
    for (const timer of this.restartTimers.values()) clearTimeout(timer);
    this.events?.close();
    // Before the networks stop, so leaving takes no network's rules away.
    this.traffic?.stop();
    this.memory.close();
    await Promise.all([...this.instances.values()].map((i) => i.stop()));
    await this.source?.close().catch(() => undefined);
    this.netlink?.close();
    await new Promise<void>((resolve) => (this.health ? this.health.close(() => resolve()) : resolve()));
  }
}
