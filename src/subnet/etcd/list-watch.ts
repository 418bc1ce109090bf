/**
 * The one way weft follows a prefix in etcd without losing a change: list it, watch from the list's
 * revision, and on any break (or a failed list) back off and list again, so the caller can diff. Used for
 * the leases of a network and for the networks of multi-network mode.
 */
import { Backoff, sleep } from "../../retry/backoff.js";
import { describeError } from "../../user-error.js";
import type { EtcdStore, StoredValue } from "./etcd-store.js";

const LIST_RETRY = { minMs: 500, maxMs: 5000 };

export interface ListWatchHandlers {
  /** For messages: "leases", "the networks". */
  readonly what: string;
  /** The list to start a pass from; by default a fresh list of the prefix (a caller may hand one it has). */
  list?(): Promise<{ values: StoredValue[]; revision: bigint }>;
  /** The whole prefix as listed (at `revision`), at the start of each pass; awaited before the watch. */
  onList(values: StoredValue[], revision: bigint): void | Promise<void>;
  onPut(kv: StoredValue): void;
  onDelete(key: string, revision: bigint): void;
  onWarning(message: string): void;
}

export class ListWatch {
  private closed = false;
  private stopWatch: (() => Promise<void>) | undefined;

  constructor(
    private readonly store: EtcdStore,
    private readonly prefix: string,
    private readonly handlers: ListWatchHandlers,
  ) {}

  /** Runs until close(). */
  async run(): Promise<void> {
    const { store, prefix, handlers } = this;
    const backoff = new Backoff(LIST_RETRY);
    while (!this.closed) {
      let broken!: () => void;
      const brokenPromise = new Promise<void>((resolve) => (broken = resolve));
      try {
        const revision = await this.listOnce();
        if (revision === undefined) return;
        const handle = await store.watchPrefix(prefix, revision + 1n, {
          onPut: (kv) => handlers.onPut(kv),
          onDelete: (key, deletedAt) => handlers.onDelete(key, deletedAt),
          onBroken: (reason) => {
            handlers.onWarning(`etcd watch of ${handlers.what} interrupted (${reason}); listing again`);
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
        handlers.onWarning(
          `cannot list ${handlers.what} from etcd (${describeError(err)}); retrying in ${delayMs} ms`,
        );
        await sleep(delayMs);
      }
    }
  }

  /**
   * Lists and hands the values over; undefined once closed. A function of its own so that the list (5,000
   * values with their keys and JSON) is not kept alive by run()'s suspended frame while the watch runs.
   */
  private async listOnce(): Promise<bigint | undefined> {
    const { values, revision } = await (this.handlers.list?.() ?? this.store.list(this.prefix));
    if (this.closed) return undefined;
    await this.handlers.onList(values, revision);
    return this.closed ? undefined : revision;
  }

  async close(): Promise<void> {
    this.closed = true;
    await this.stopWatch?.();
  }
}
