/**
 * The few etcd operations weft needs, over the `etcd3` client. Kept small so the manager above it stays
 * readable and so the client could be swapped without touching lease logic.
 */
import { readFile } from "node:fs/promises";
import { Etcd3, type IOptions, type Watcher } from "etcd3";
import { UserError } from "../../user-error.js";

export interface StoredValue {
  readonly key: string;
  readonly value: string;
  readonly modRevision: bigint;
  /** "0" when the key has no etcd lease attached (a reservation). */
  readonly leaseId: string;
}

export interface PrefixWatchHandlers {
  onPut(kv: StoredValue): void;
  onDelete(key: string, revision: bigint): void;
  /** The watch stream broke (disconnect, cancel, compaction): the caller re-lists and watches anew. */
  onBroken(reason: string): void;
}

export interface EtcdConnectionOptions {
  readonly endpoints: string[];
  readonly caFile: string | undefined;
  readonly certFile: string | undefined;
  readonly keyFile: string | undefined;
  readonly username: string | undefined;
  readonly password: string | undefined;
  /** Deadline for each unary call, so an unreachable etcd fails a call instead of hanging it. */
  readonly callTimeoutMs: number;
}

export class EtcdStore {
  private constructor(private readonly client: Etcd3) {}

  static async connect(options: EtcdConnectionOptions): Promise<EtcdStore> {
    const readOptional = async (path: string | undefined, what: string) => {
      if (!path) return undefined;
      try {
        return await readFile(path);
      } catch (err) {
        throw new UserError(
          `cannot read the etcd ${what} ${path}: ${(err as Error).message}`,
          "check the path",
        );
      }
    };
    const rootCertificate = await readOptional(options.caFile, "CA file (--etcd-cafile)");
    const certChain = await readOptional(options.certFile, "certificate (--etcd-certfile)");
    const privateKey = await readOptional(options.keyFile, "key (--etcd-keyfile)");
    const secure = options.endpoints.some((e) => e.startsWith("https://"));
    const clientOptions: IOptions = {
      hosts: options.endpoints,
      dialTimeout: options.callTimeoutMs,
      defaultCallOptions: (context) =>
        context.isStream ? {} : { deadline: Date.now() + options.callTimeoutMs },
    };
    if (secure || rootCertificate) {
      clientOptions.credentials = {
        rootCertificate: rootCertificate ?? Buffer.alloc(0),
        ...(privateKey ? { privateKey } : {}),
        ...(certChain ? { certChain } : {}),
      };
    }
    if (options.username)
      clientOptions.auth = { username: options.username, password: options.password ?? "" };
    return new EtcdStore(new Etcd3(clientOptions));
  }

  async get(key: string): Promise<string | undefined> {
    const value = await this.client.get(key).string();
    return value ?? undefined;
  }

  /** Every key under `prefix`, and the store revision the list was taken at. */
  async list(prefix: string): Promise<{ values: StoredValue[]; revision: bigint }> {
    const response = await this.client.getAll().prefix(prefix).exec();
    return {
      values: response.kvs.map((kv) => toStoredValue(kv)),
      revision: BigInt(response.header.revision),
    };
  }

  async grantLease(ttlSeconds: number): Promise<string> {
    const response = await this.client.leaseClient.leaseGrant({ TTL: ttlSeconds });
    return response.ID;
  }

  /** Creates `key` only if it does not exist; false when someone holds it already. */
  async createIfAbsent(key: string, value: string, leaseId: string): Promise<boolean> {
    const put = this.client.put(key).value(value);
    if (leaseId !== "0") put.lease(leaseId);
    const result = await this.client.if(key, "Create", "==", 0).then(put).commit();
    return result.succeeded;
  }

  async put(key: string, value: string, leaseId: string): Promise<void> {
    const put = this.client.put(key).value(value);
    if (leaseId !== "0") put.lease(leaseId);
    await put.exec();
  }

  async delete(key: string): Promise<void> {
    await this.client.delete().key(key).exec();
  }

  /** Watches `prefix` from `fromRevision` on; every event after it arrives in order until onBroken. */
  async watchPrefix(
    prefix: string,
    fromRevision: bigint,
    handlers: PrefixWatchHandlers,
  ): Promise<{ close(): Promise<void> }> {
    let broken = false;
    const breakOnce = (reason: string) => {
      if (broken) return;
      broken = true;
      handlers.onBroken(reason);
    };
    const watcher: Watcher = await this.client
      .watch()
      .prefix(prefix)
      .startRevision(fromRevision.toString())
      .create();
    watcher.on("put", (kv) => {
      if (!broken) handlers.onPut(toStoredValue(kv));
    });
    watcher.on("delete", (kv) => {
      if (!broken) handlers.onDelete(kv.key.toString(), BigInt(kv.mod_revision));
    });
    // etcd3 resumes by itself after a disconnect, but a compaction in between would lose events:
    // the manager re-lists instead, which is always correct.
    watcher.on("disconnected", (err: Error) => breakOnce(`disconnected: ${err.message}`));
    watcher.on("error", (err: Error) => breakOnce(err.message));
    return {
      close: async () => {
        broken = true;
        await watcher.cancel().catch(() => undefined);
      },
    };
  }

  close(): void {
    this.client.close();
  }
}

function toStoredValue(kv: { key: Buffer; value: Buffer; mod_revision: string; lease: string }): StoredValue {
  return {
    key: kv.key.toString(),
    value: kv.value.toString(),
    modRevision: BigInt(kv.mod_revision),
    leaseId: kv.lease,
  };
}
