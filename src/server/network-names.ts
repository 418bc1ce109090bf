/**
 * The networks the server knows (multi-network mode: every <prefix>/<name>/config), for GET /v1/ and its
 * long poll GET /v1/?next=<cursor>: ONE etcd watch of <prefix>/ shared by every client, as for leases.
 */
import type { EtcdStore } from "../subnet/etcd/etcd-store.js";
import { ListWatch } from "../subnet/etcd/list-watch.js";
import { encodeNetworksAnswer, ZERO_TIME } from "../subnet/remote/remote-json.js";

interface NetworkEvent {
  readonly revision: bigint;
  readonly type: "added" | "removed";
  readonly network: string;
}

const KEPT_EVENTS = 1000;

export class NetworkNames {
  private readonly names = new Set<string>();
  private readonly events: NetworkEvent[] = [];
  private revision = 0n;
  private oldest = 0n;
  private readonly waiters = new Set<() => void>();
  private closed = false;
  private listWatch: ListWatch | undefined;
  readonly ready: Promise<void>;
  private markReady!: () => void;

  constructor(
    private readonly store: EtcdStore,
    private readonly prefix: string,
    private readonly warn: (message: string) => void,
  ) {
    this.ready = new Promise((resolve) => {
      this.markReady = resolve;
    });
    void this.run();
  }

  /** The network a key is the config of, e.g. "<prefix>/blue/config" -> "blue". */
  private nameOf(key: string): string | undefined {
    const rest = key.startsWith(`${this.prefix}/`) ? key.slice(this.prefix.length + 1) : "";
    const m = /^([^/]+)\/config$/.exec(rest);
    return m?.[1];
  }

  private record(revision: bigint, type: "added" | "removed", network: string): void {
    this.events.push({ revision, type, network });
    while (this.events.length > KEPT_EVENTS) this.oldest = this.events.shift()!.revision;
  }

  private advance(revision: bigint): void {
    if (revision > this.revision) this.revision = revision;
    for (const wake of [...this.waiters]) wake();
  }

  /** v0.7's answer: the names as a snapshot, or the next network event after the cursor (undefined: wait). */
  answer(cursor: bigint | undefined): string | undefined {
    if (cursor === undefined || cursor < this.oldest || cursor > this.revision) {
      return encodeNetworksAnswer([...this.names].sort(), this.revision.toString());
    }
    const next = this.events.find((e) => e.revision > cursor);
    if (!next) return undefined;
    const lease = `{"Subnet":"0.0.0.0/0","Attrs":{"PublicIP":"0.0.0.0"},"Expiration":"${ZERO_TIME}"}`;
    return `{"events":[{"type":"${next.type}","lease":${lease},"network":${JSON.stringify(next.network)}}],"snapshot":null,"cursor":"${next.revision}"}`;
  }

  onChange(wake: () => void): () => void {
    this.waiters.add(wake);
    return () => this.waiters.delete(wake);
  }

  private async run(): Promise<void> {
    if (this.closed) return;
    this.listWatch = new ListWatch(this.store, `${this.prefix}/`, {
      what: `the networks under ${this.prefix}/`,
      onList: (values, revision) => {
        const now = new Set(
          values.map((v) => this.nameOf(v.key)).filter((n): n is string => n !== undefined),
        );
        const first = this.revision === 0n;
        for (const n of this.names) if (!now.has(n)) this.record(revision, "removed", n);
        for (const n of now) if (!this.names.has(n)) this.record(revision, "added", n);
        this.names.clear();
        for (const n of now) this.names.add(n);
        if (first) {
          this.events.length = 0;
          this.oldest = revision;
        }
        this.advance(revision);
        this.markReady();
      },
      onPut: (kv) => {
        const name = this.nameOf(kv.key);
        if (name !== undefined && !this.names.has(name)) {
          this.names.add(name);
          this.record(kv.modRevision, "added", name);
        }
        this.advance(kv.modRevision);
      },
      onDelete: (key, rev) => {
        const name = this.nameOf(key);
        if (name !== undefined && this.names.delete(name)) this.record(rev, "removed", name);
        this.advance(rev);
      },
      onWarning: (message) => this.warn(message),
    });
    await this.listWatch.run();
  }

  async close(): Promise<void> {
    this.closed = true;
    await this.listWatch?.close();
  }
}
