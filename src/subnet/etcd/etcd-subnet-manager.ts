/**
 * Leases in etcd, wire-compatible with flanneld: config at <prefix>/config, leases at
 * <prefix>/subnets/<subnet key> with flanneld's JSON, each attached to a 24 h etcd lease and created only
 * if absent. Watching lists, then watches from the list's revision, and re-lists after any trouble, so no
 * change is lost.
 */
import { type NetworkConfig, parseNetworkConfig } from "../../config/network-config.js";
import { formatCIDR, type IPNetwork, networkEquals, networksOverlap } from "../../ip/ip-network.js";
import type { Lease, LeaseAttrs } from "../../lease/lease.js";
import { encodeLeaseAttrs } from "../../lease/lease-json.js";
import { parseSubnetKey, subnetKey } from "../../lease/lease-key.js";
import { Backoff, retry, sleep } from "../../retry/backoff.js";
import { boundText } from "../../text/untrusted-text.js";
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
  /** For what needs an operator (our lease taken over); log() when not given. */
  readonly logError?: (message: string) => void;
  /** Multi-network mode: the connection is shared by every network's manager; close() leaves it open. */
  readonly sharedStore?: boolean;
}

const ACQUIRE_ATTEMPTS = 10;
const LIST_RETRY = { minMs: 500, maxMs: 5000 };
const RENEW_RETRY = { minMs: 500, maxMs: 30_000 };
/** etcd lease IDs we granted and may still find on our key (a renewal's event can trail its answer). */
const KEPT_LEASE_IDS = 4;

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
  /** The etcd lease IDs we attached to our key, newest last ("0": none, a reservation). */
  private readonly ownLeaseIds: string[] = [];
  /** We put our key back under our etcd lease since the last renewal: a second time we only report. */
  private reattached = false;
  private readonly renewBackoff = new Backoff(RENEW_RETRY);
  /** Who hears about our lease and the others' (set by watchLeases). */
  private watcher: LeaseWatcher | undefined;

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
        this.noteLeaseId(leaseId);
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
    const held = takenBy(table.heldSubnets(), config);
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
    this.noteLeaseId(leaseId);
    const created = await this.store.createIfAbsent(
      this.subnetsPrefix + key,
      encodeLeaseAttrs(request.attrs),
      leaseId,
    );
    if (!created) return undefined;
    if (ipv6Subnet && (await this.lostSubnetRace(key, subnet, ipv6Subnet))) return undefined;
    this.options.log(`acquired lease ${key}`);
    return { key, subnet, ipv6Subnet, attrs: request.attrs, reservation: false };
  }

  /**
   * A dual-stack (or IPv6-only) key names two subnets, so create-if-absent alone lets two hosts that start
   * together take one IPv4 or one IPv6 subnet under two different keys. After creating ours, the list says
   * who was first: the older key keeps the subnet, and the newer one (ours, if so) is deleted and chosen
   * again. Both hosts reach the same verdict, whatever order their lists run in.
   */
  private async lostSubnetRace(
    key: string,
    subnet: IPNetwork | undefined,
    ipv6Subnet: IPNetwork,
  ): Promise<boolean> {
    const listed = await this.store.list(this.subnetsPrefix);
    const ours = listed.values.find((kv) => kv.key === this.subnetsPrefix + key);
    if (!ours) return true; // gone already (expired, deleted): choose again
    const rival = listed.values.find((kv) => {
      if (kv.key === ours.key) return false;
      const other = parseSubnetKey(kv.key.slice(this.subnetsPrefix.length));
      if (!other) return false;
      const clash =
        (subnet !== undefined && other.subnet !== undefined && networksOverlap(subnet, other.subnet)) ||
        (other.ipv6Subnet !== undefined && networksOverlap(ipv6Subnet, other.ipv6Subnet));
      // A reservation always wins; otherwise the key created first does.
      return clash && (kv.leaseId === "0" || kv.createRevision < ours.createRevision);
    });
    if (!rival) {
      if (!this.syncing) this.acquiredFrom = listed;
      return false;
    }
    const rivalKey = rival.key.slice(this.subnetsPrefix.length);
    this.options.log(
      `lease ${key} shares a subnet with ${boundText(rivalKey)}, created first; choosing again`,
    );
    await this.store.delete(ours.key);
    return true;
  }

  private scheduleRenew(): void {
    clearTimeout(this.renewTimer);
    if (this.closed || !this.own || this.own.reservation) return;
    const delayMs = Math.max(1, this.options.leaseTtlSeconds - this.options.renewMarginSeconds) * 1000;
    this.renewTimer = setTimeout(() => {
      // A new renewal period: a rewrite under another etcd lease may be answered again.
      this.reattached = false;
      void this.renew();
    }, delayMs);
    this.renewTimer.unref();
  }

  /**
   * Puts our key again under a new etcd lease. Only while it holds what we wrote, unless `ours` (we just
   * saw it carry our PublicIP): a key taken over while the watch missed it is not overwritten.
   */
  private async renew(ours = false): Promise<void> {
    const own = this.own;
    if (this.closed || !own) return;
    const key = this.subnetsPrefix + own.key;
    const value = encodeLeaseAttrs(own.attrs);
    try {
      const leaseId = await this.store.grantLease(this.options.leaseTtlSeconds);
      // Our key may have been taken over while we waited: renewing would overwrite the other host's.
      if (this.own !== own) return;
      this.noteLeaseId(leaseId);
      if (ours || !this.watcher) await this.store.put(key, value, leaseId);
      else if (!(await this.store.putIfValue(key, value, value, leaseId))) {
        if (!(await this.renewChanged(own, leaseId)) || this.own !== own) return;
      }
      this.options.log(`renewed lease ${own.key}`);
      this.renewBackoff.reset();
      this.scheduleRenew();
    } catch (err) {
      if (this.own !== own) return;
      const delayMs = this.renewBackoff.next();
      this.options.log(`renewing lease ${own.key} failed (${describeError(err)}); retrying in ${delayMs} ms`);
      this.renewTimer = setTimeout(() => void this.renew(ours), delayMs);
      this.renewTimer.unref();
    }
  }

  /**
   * Our key no longer held what we wrote at renewal time. Still with our PublicIP and a TTL: ours, put
   * again (true). Otherwise (gone, taken over, a reservation) it is handled as if the watch had shown it.
   */
  private async renewChanged(own: Lease, leaseId: string): Promise<boolean> {
    const key = this.subnetsPrefix + own.key;
    const stored = await this.store.getStored(key);
    const watcher = this.watcher;
    if (this.own !== own || !watcher) return false;
    if (stored) {
      const warning = this.table.put(this.toRaw(stored));
      if (warning) watcher.onWarning(warning);
    } else {
      this.table.delete(own.key);
    }
    watcher.onLeases(this.table.leases);
    const current = this.table.leases.get(own.key);
    if (stored && stored.leaseId !== "0" && current && carriesOurAddress(current, own.attrs)) {
      await this.store.put(key, encodeLeaseAttrs(own.attrs), leaseId);
      return true;
    }
    this.checkOwnLease(watcher, stored);
    return false;
  }

  private noteLeaseId(leaseId: string): void {
    this.ownLeaseIds.push(leaseId);
    if (this.ownLeaseIds.length > KEPT_LEASE_IDS) this.ownLeaseIds.shift();
  }

  watchLeases(watcher: LeaseWatcher): void {
    this.watcher = watcher;
    void this.syncLoop(watcher);
  }

  /** List, then watch from there; on any break, list again and diff. Runs until close(). */
  private async syncLoop(watcher: LeaseWatcher): Promise<void> {
    this.syncing = true;
    const backoff = new Backoff(LIST_RETRY);
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
        // A reused list predates our write: its etcd lease ID on our key says nothing.
        const ownKey = own && !reused ? this.subnetsPrefix + own.key : undefined;
        this.checkOwnLease(
          watcher,
          values.find((v) => v.key === ownKey),
        );
        const handle = await this.store.watchPrefix(this.subnetsPrefix, revision + 1n, {
          onPut: (kv) => {
            const warning = this.table.put(this.toRaw(kv));
            if (warning) watcher.onWarning(warning);
            watcher.onLeases(this.table.leases);
            if (this.own && kv.key === this.subnetsPrefix + this.own.key) this.checkOwnLease(watcher, kv);
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
        backoff.reset();
        await brokenPromise;
        await handle.close();
      } catch (err) {
        if (this.closed) return;
        const delayMs = backoff.next();
        watcher.onWarning(`cannot list leases from etcd (${describeError(err)}); retrying in ${delayMs} ms`);
        await sleep(delayMs);
      }
    }
  }

  /**
   * Whether our key still holds our lease; `stored` is its entry when etcd just gave it to us (a list or
   * a put event). Gone, or taken over by another host (flanneld knows its lease by its PublicIP): we take a
   * lease anew, never writing to that key again, so two hosts never fight over it. Rewritten with our
   * PublicIP: still ours; see ownKeyRewritten.
   */
  private checkOwnLease(watcher: LeaseWatcher, stored?: StoredValue): void {
    const own = this.own;
    if (!own || this.closed || this.reacquiring) return;
    const current = this.table.leases.get(own.key);
    if (current && carriesOurAddress(current, own.attrs)) {
      if (stored) this.ownKeyRewritten(watcher, own, stored);
      return;
    }
    if (current) {
      const other = current.attrs.publicIP ?? current.attrs.publicIPv6 ?? "none";
      this.logError(
        `our lease ${this.subnetsPrefix}${own.key} was taken over by another host (PublicIP ${other}); leaving it to that host and taking a new lease`,
      );
    } else if (this.table.invalid.has(own.key)) {
      this.logError(
        `our lease ${this.subnetsPrefix}${own.key} was overwritten with a value that is not a lease; leaving that key alone and taking a new lease`,
      );
    } else {
      watcher.onWarning(`our lease ${own.key} disappeared from etcd; acquiring it again`);
    }
    this.reacquire(watcher, own);
  }

  /**
   * Our key carries our PublicIP, but maybe not our etcd lease. Without one ("0") it is a reservation, as
   * an operator writes them: we keep it and stop renewing, which would give it a TTL again. Under another
   * etcd lease (an old process of ours, a hand-made put) it would vanish when that lease ends: we put it
   * back under ours, once per renewal period, so two processes claiming one PublicIP do not fight.
   */
  private ownKeyRewritten(watcher: LeaseWatcher, own: Lease, stored: StoredValue): void {
    const key = this.subnetsPrefix + own.key;
    if (stored.leaseId === "0") {
      if (own.reservation) return;
      watcher.onWarning(
        `our lease ${key} was rewritten without a TTL; keeping it as a reservation (no renewals)`,
      );
      clearTimeout(this.renewTimer);
      this.own = { ...own, reservation: true };
      return;
    }
    if (this.ownLeaseIds.includes(stored.leaseId)) return;
    if (this.reattached) {
      this.logError(
        `our lease ${key} was rewritten again under an etcd lease that is not ours (ID ${stored.leaseId}); is another weftd or flanneld running with PublicIP ${own.attrs.publicIP ?? own.attrs.publicIPv6}? Not rewriting it before the next renewal`,
      );
      return;
    }
    watcher.onWarning(
      `our lease ${key} was rewritten under an etcd lease that is not ours (ID ${stored.leaseId}); putting it back under ours`,
    );
    this.reattached = true;
    if (own.reservation) this.own = { ...own, reservation: false };
    clearTimeout(this.renewTimer);
    void this.renew(true);
  }

  /** Takes a lease anew (the old subnet if it is free); another subnet means pods must restart. */
  private reacquire(watcher: LeaseWatcher, own: Lease): void {
    this.reacquiring = true;
    // Nothing more goes to the old key: it may be another host's now.
    clearTimeout(this.renewTimer);
    this.own = undefined;
    const request: LeaseRequest = {
      attrs: own.attrs,
      previousSubnet: own.subnet,
      previousIPv6Subnet: own.ipv6Subnet,
    };
    // etcd being away is no reason to give up: only what retrying cannot fix (no free subnet) is fatal.
    retry(() => this.acquireLease(request), {
      backoff: LIST_RETRY,
      stopped: () => this.closed,
      isFatal: (err) => err instanceof UserError,
      onFailure: (err, delayMs) =>
        watcher.onWarning(`acquiring a lease failed (${describeError(err)}); retrying in ${delayMs} ms`),
    })
      .then((lease) => {
        if (this.closed) return;
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
      .catch((err) => {
        if (!this.closed) watcher.onFatal(err instanceof Error ? err : new Error(String(err)));
      })
      .finally(() => {
        this.reacquiring = false;
      });
  }

  private logError(message: string): void {
    (this.options.logError ?? this.options.log)(message);
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
    if (!this.options.sharedStore) this.store.close();
  }
}

/** flanneld recognises its own lease by the public address(es) in it. */
function carriesOurAddress(lease: Lease, attrs: LeaseAttrs): boolean {
  if (attrs.publicIP) return lease.attrs.publicIP === attrs.publicIP;
  return attrs.publicIPv6 !== undefined && lease.attrs.publicIPv6 === attrs.publicIPv6;
}
