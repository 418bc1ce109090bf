/**
 * Leases in etcd, wire-compatible with flanneld: config at <prefix>/config, leases at
 * <prefix>/subnets/<subnet key> with flanneld's JSON, each attached to a 24 h etcd lease and created only
 * if absent. Watching lists, then watches from the list's revision, and re-lists after any trouble, so no
 * change is lost.
 */
import { type NetworkConfig, parseNetworkConfig } from "../../config/network-config.js";
import { formatCIDR, type IPNetwork, networkEquals } from "../../ip/ip-network.js";
import type { Lease, LeaseAttrs } from "../../lease/lease.js";
import { encodeLeaseAttrs } from "../../lease/lease-json.js";
import { subnetKey } from "../../lease/lease-key.js";
import { describeError, UserError } from "../../user-error.js";
import { LeaseTable, type RawLease } from "../lease-table.js";
import { chooseFreeSubnet, fitsConfig, takenBy } from "../subnet-choice.js";
import type { LeaseRequest, LeaseWatcher, SubnetManager } from "../subnet-manager.js";
import type { EtcdStore, StoredValue } from "./etcd-store.js";

export interface EtcdSubnetManagerOptions {
  /** e.g. "/coreos.com/network" */
  readonly prefix: string;
  readonly leaseTtlSeconds: number;
  /** Renew this long before the lease would expire (--subnet-lease-renew-margin). */
  readonly renewMarginSeconds: number;
  readonly random?: () => number;
  readonly log: (message: string) => void;
}

const ACQUIRE_ATTEMPTS = 10;
const RETRY_MIN_MS = 500;
const RETRY_MAX_MS = 5000;

export class EtcdSubnetManager implements SubnetManager {
  readonly name = "etcd";
  private config: NetworkConfig | undefined;
  private own: Lease | undefined;
  private renewTimer: NodeJS.Timeout | undefined;
  private closed = false;
  private stopWatch: (() => Promise<void>) | undefined;
  private readonly table = new LeaseTable();
  private reacquiring = false;
  /** The list the first lease was acquired from: the first watch starts from it instead of listing again. */
  private acquiredFrom: { values: StoredValue[]; revision: bigint } | undefined;
  /** The sync loop runs: a later acquisition's list must not replace a fresh one after a break. */
  private syncing = false;

  constructor(
    private readonly store: EtcdStore,
    private readonly options: EtcdSubnetManagerOptions,
  ) {}

  private get subnetsPrefix(): string {
    return `${this.options.prefix}/subnets/`;
  }

  async getNetworkConfig(): Promise<NetworkConfig> {
    const key = `${this.options.prefix}/config`;
    const text = await this.store.get(key);
    if (text === undefined) {
      throw new UserError(
        `no network config at ${key}`,
        `write one, e.g. etcdctl put ${key} '{"Network":"10.244.0.0/16","Backend":{"Type":"vxlan"}}'`,
      );
    }
    this.config = parseNetworkConfig(text);
    return this.config;
  }

  async acquireLease(request: LeaseRequest): Promise<Lease> {
    const config = this.config ?? (await this.getNetworkConfig());
    for (let attempt = 1; attempt <= ACQUIRE_ATTEMPTS; attempt++) {
      const lease = await this.tryAcquire(config, request);
      if (lease) {
        this.own = lease;
        this.scheduleRenew();
        return lease;
      }
      // Someone created the key between our list and our create: look again.
    }
    throw new UserError(
      `could not acquire a subnet lease after ${ACQUIRE_ATTEMPTS} attempts`,
      "other hosts keep taking the same subnets; try again",
    );
  }

  private async tryAcquire(config: NetworkConfig, request: LeaseRequest): Promise<Lease | undefined> {
    const listed = await this.store.list(this.subnetsPrefix);
    if (!this.syncing) this.acquiredFrom = listed;
    const { values } = listed;
    const table = new LeaseTable();
    // Bad values are reported by the watch, which sees the same keys; here they only count as taken.
    table.replaceAll(values.map((v) => this.toRaw(v)));

    const mine = [...table.leases.values()].find((l) => carriesOurAddress(l, request.attrs));
    if (mine) {
      if (fitsConfig(config, mine.subnet, mine.ipv6Subnet)) {
        this.options.log(`found lease ${mine.key} for our address, reusing it`);
        const leaseId = mine.reservation ? "0" : await this.store.grantLease(this.options.leaseTtlSeconds);
        await this.store.put(this.subnetsPrefix + mine.key, encodeLeaseAttrs(request.attrs), leaseId);
        return { ...mine, attrs: request.attrs };
      }
      if (!mine.reservation) {
        this.options.log(`found lease ${mine.key} for our address that does not fit the config, deleting it`);
        await this.store.delete(this.subnetsPrefix + mine.key);
        table.delete(mine.key);
      }
    }

    let subnet: IPNetwork | undefined;
    let ipv6Subnet: IPNetwork | undefined;
    const held = takenBy(table.heldSubnets());
    const previousFits = fitsConfig(config, request.previousSubnet, request.previousIPv6Subnet);
    const previousFree =
      (!request.previousSubnet || !held.v4.isTaken(request.previousSubnet)) &&
      (!request.previousIPv6Subnet || !held.v6.isTaken(request.previousIPv6Subnet));
    if (previousFits && previousFree && (request.previousSubnet || request.previousIPv6Subnet)) {
      subnet = request.previousSubnet;
      ipv6Subnet = request.previousIPv6Subnet;
      this.options.log(`reusing the subnet of the previous run (${subnetKey(subnet, ipv6Subnet)})`);
    } else {
      const random = this.options.random ?? Math.random;
      subnet = config.ipv4 ? chooseFreeSubnet(config.ipv4, held.v4, random) : undefined;
      ipv6Subnet = config.ipv6 ? chooseFreeSubnet(config.ipv6, held.v6, random) : undefined;
      if ((config.ipv4 && !subnet) || (config.ipv6 && !ipv6Subnet)) {
        const full = config.ipv4 && !subnet ? config.ipv4 : config.ipv6!;
        throw new UserError(
          `no free subnet left in ${formatCIDR(full.network)} (every /${full.subnetLen} between SubnetMin and SubnetMax is leased)`,
          "remove stale leases or widen the network in the config",
        );
      }
    }
    const key = subnetKey(subnet, ipv6Subnet);
    const leaseId = await this.store.grantLease(this.options.leaseTtlSeconds);
    const created = await this.store.createIfAbsent(
      this.subnetsPrefix + key,
      encodeLeaseAttrs(request.attrs),
      leaseId,
    );
    if (!created) return undefined;
    this.options.log(`acquired lease ${key}`);
    return { key, subnet, ipv6Subnet, attrs: request.attrs, reservation: false };
  }

  private scheduleRenew(): void {
    clearTimeout(this.renewTimer);
    if (this.closed || !this.own || this.own.reservation) return;
    const delayMs = Math.max(1, this.options.leaseTtlSeconds - this.options.renewMarginSeconds) * 1000;
    this.renewTimer = setTimeout(() => void this.renew(RETRY_MIN_MS), delayMs);
    this.renewTimer.unref();
  }

  private async renew(retryMs: number): Promise<void> {
    const own = this.own;
    if (this.closed || !own) return;
    try {
      const leaseId = await this.store.grantLease(this.options.leaseTtlSeconds);
      await this.store.put(this.subnetsPrefix + own.key, encodeLeaseAttrs(own.attrs), leaseId);
      this.options.log(`renewed lease ${own.key}`);
      this.scheduleRenew();
    } catch (err) {
      this.options.log(`renewing lease ${own.key} failed (${describeError(err)}); retrying`);
      this.renewTimer = setTimeout(() => void this.renew(Math.min(retryMs * 2, 30_000)), retryMs);
      this.renewTimer.unref();
    }
  }

  watchLeases(watcher: LeaseWatcher): void {
    void this.syncLoop(watcher);
  }

  /** List, then watch from there; on any break, list again and diff. Runs until close(). */
  private async syncLoop(watcher: LeaseWatcher): Promise<void> {
    this.syncing = true;
    let retryMs = RETRY_MIN_MS;
    while (!this.closed) {
      let broken!: () => void;
      const brokenPromise = new Promise<string>((resolve) => {
        broken = () => resolve("");
      });
      try {
        // The first pass reuses the list taken to acquire our lease; the watch then delivers our own
        // create and everything after it. That list predates our write, so our lease is added to it
        // (else it would look deleted, and we would acquire it again).
        const reused = this.acquiredFrom;
        this.acquiredFrom = undefined;
        const { values, revision } = reused ?? (await this.store.list(this.subnetsPrefix));
        if (this.closed) return;
        let raws = values.map((v) => this.toRaw(v));
        const own = this.own;
        if (reused && own) {
          raws = raws.filter((r) => r.subnetKey !== own.key);
          raws.push({ subnetKey: own.key, value: encodeLeaseAttrs(own.attrs), reservation: own.reservation });
        }
        for (const warning of this.table.replaceAll(raws)) watcher.onWarning(warning);
        watcher.onLeases(this.table.leases);
        this.checkOwnLease(watcher);
        const handle = await this.store.watchPrefix(this.subnetsPrefix, revision + 1n, {
          onPut: (kv) => {
            const warning = this.table.put(this.toRaw(kv));
            if (warning) watcher.onWarning(warning);
            watcher.onLeases(this.table.leases);
          },
          onDelete: (key) => {
            this.table.delete(key.slice(this.subnetsPrefix.length));
            watcher.onLeases(this.table.leases);
            this.checkOwnLease(watcher);
          },
          onBroken: (reason) => {
            watcher.onWarning(`etcd watch interrupted (${reason}); re-listing leases`);
            broken();
          },
        });
        this.stopWatch = async () => {
          await handle.close();
          broken();
        };
        retryMs = RETRY_MIN_MS;
        await brokenPromise;
        await handle.close();
      } catch (err) {
        if (this.closed) return;
        watcher.onWarning(`cannot list leases from etcd (${describeError(err)}); retrying in ${retryMs} ms`);
        await sleep(retryMs);
        retryMs = Math.min(retryMs * 2, RETRY_MAX_MS);
      }
    }
  }

  /** Our key vanished (deleted by hand, or expired while etcd was away): take it back, or give up clearly. */
  private checkOwnLease(watcher: LeaseWatcher): void {
    const own = this.own;
    if (!own || this.closed || this.reacquiring || this.table.leases.has(own.key)) return;
    this.reacquiring = true;
    watcher.onWarning(`our lease ${own.key} disappeared from etcd; acquiring it again`);
    const request: LeaseRequest = {
      attrs: own.attrs,
      previousSubnet: own.subnet,
      previousIPv6Subnet: own.ipv6Subnet,
    };
    this.acquireLease(request)
      .then((lease) => {
        if (!networkEquals(lease.subnet, own.subnet) || !networkEquals(lease.ipv6Subnet, own.ipv6Subnet)) {
          watcher.onFatal(
            new UserError(
              `our lease ${own.key} was lost and another host took its subnet; we got ${lease.key} instead`,
              "weftd exits so pods restart on the new subnet; its supervisor should start it again",
            ),
          );
          return;
        }
        watcher.onOwnLease(lease);
      })
      .catch((err) => watcher.onFatal(err instanceof Error ? err : new Error(String(err))))
      .finally(() => {
        this.reacquiring = false;
      });
  }

  private toRaw(kv: StoredValue): RawLease {
    return {
      subnetKey: kv.key.slice(this.subnetsPrefix.length),
      value: kv.value,
      reservation: kv.leaseId === "0",
    };
  }

  async close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.renewTimer);
    await this.stopWatch?.();
    this.store.close();
  }
}

/** flanneld recognises its own lease by the public address(es) in it. */
function carriesOurAddress(lease: Lease, attrs: LeaseAttrs): boolean {
  if (attrs.publicIP) return lease.attrs.publicIP === attrs.publicIP;
  return attrs.publicIPv6 !== undefined && lease.attrs.publicIPv6 === attrs.publicIPv6;
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
