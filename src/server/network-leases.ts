/**
 * One network's leases for the server: ONE etcd list+watch of <prefix>/subnets/ feeding a LeaseEventLog
 * that every client's long poll reads. Re-lists (and diffs) after any break, as the etcd manager does.
 */
import type { IPNetwork } from "../ip/ip-network.js";
import type { StoredValue } from "../subnet/etcd/etcd-messages.js";
import type { EtcdStore } from "../subnet/etcd/etcd-store.js";
import { ListWatch } from "../subnet/etcd/list-watch.js";
import { decodeRawLease } from "../subnet/lease-table.js";
import { type ApiLease, formatGoTime, ZERO_TIME } from "../subnet/remote/remote-json.js";
import { LeaseEventLog } from "./lease-event-log.js";

export const LEASE_TTL_SECONDS = 24 * 60 * 60;

export class NetworkLeases {
  readonly log = new LeaseEventLog();
  /** When each etcd lease ID we saw expires, so a lease keeps its Expiration across events. */
  private readonly expirations = new Map<string, string>();
  /** The subnet each public IP last held here: a client whose lease vanished gets it back if it is free. */
  private readonly lastSubnets = new Map<string, IPNetwork>();
  private closed = false;
  private listWatch: ListWatch | undefined;
  /** Resolves once the first list is in. */
  readonly ready: Promise<void>;
  private markReady!: () => void;

  constructor(
    private readonly store: EtcdStore,
    readonly prefix: string,
    private readonly warn: (message: string) => void,
  ) {
    this.ready = new Promise((resolve) => {
      this.markReady = resolve;
    });
    void this.run();
  }

  get subnetsPrefix(): string {
    return `${this.prefix}/subnets/`;
  }

  /** Remembers the expiration of an etcd lease we just granted for a client. */
  noteExpiration(leaseId: string, expiration: string): void {
    this.expirations.set(leaseId, expiration);
  }

  lastSubnetOf(publicIP: string | undefined): IPNetwork | undefined {
    return publicIP === undefined ? undefined : this.lastSubnets.get(publicIP);
  }

  private toApi(kv: StoredValue): ApiLease | undefined {
    const decoded = decodeRawLease({
      subnetKey: kv.key.slice(this.subnetsPrefix.length),
      value: kv.value,
      reservation: kv.leaseId === "0",
    });
    if (!decoded.ok) return undefined;
    const { publicIP } = decoded.lease.attrs;
    if (publicIP && decoded.lease.subnet) this.lastSubnets.set(publicIP, decoded.lease.subnet);
    return { lease: decoded.lease, expiration: this.expirationOf(kv.leaseId) };
  }

  private expirationOf(leaseId: string): string {
    if (leaseId === "0") return ZERO_TIME;
    let known = this.expirations.get(leaseId);
    if (!known) {
      // Granted by someone else just now (a host writing to etcd directly): flannel's 24 h.
      known = formatGoTime(new Date(Date.now() + LEASE_TTL_SECONDS * 1000));
      this.expirations.set(leaseId, known);
    }
    return known;
  }

  private async learnExpirations(values: readonly StoredValue[]): Promise<void> {
    const ids = [...new Set(values.map((v) => v.leaseId))].filter(
      (id) => id !== "0" && !this.expirations.has(id),
    );
    await Promise.all(
      ids.map(async (id) => {
        const ttl = await this.store.leaseTimeToLive(id).catch(() => -1);
        if (ttl > 0) this.expirations.set(id, formatGoTime(new Date(Date.now() + ttl * 1000)));
      }),
    );
  }

  private async run(): Promise<void> {
    if (this.closed) return;
    this.listWatch = new ListWatch(this.store, this.subnetsPrefix, {
      what: `the leases under ${this.subnetsPrefix}`,
      onList: async (values, revision) => {
        await this.learnExpirations(values);
        const leases = values.map((v) => this.toApi(v)).filter((l): l is ApiLease => l !== undefined);
        this.log.replaceAll(leases, revision);
        this.markReady();
      },
      onPut: (kv) => {
        const lease = this.toApi(kv);
        if (lease) this.log.put(lease, kv.modRevision);
        else this.log.remove(kv.key.slice(this.subnetsPrefix.length), kv.modRevision);
      },
      onDelete: (key, rev) => this.log.remove(key.slice(this.subnetsPrefix.length), rev),
      onWarning: (message) => this.warn(message),
    });
    await this.listWatch.run();
  }

  async close(): Promise<void> {
    this.closed = true;
    await this.listWatch?.close();
  }
}
