/**
 * The few etcd operations weft needs, over etcd's JSON gateway (HTTP/1.1 on the client port) with
 * node:http only: a gRPC client would double weftd's memory. Kept small so the manager above it stays
 * readable and so the client could be swapped without touching lease logic.
 */
import { readFile } from "node:fs/promises";
import { UserError } from "../../user-error.js";
import { EtcdHttp } from "./etcd-http.js";
import {
  headerRevision,
  int64Text,
  prefixRangeEnd,
  type RangeResponseJson,
  type StoredValue,
  toBase64,
  toStoredValue,
} from "./etcd-json.js";
import { openWatch, type PrefixWatchHandlers, type WatchHandle } from "./etcd-watch.js";

export type { StoredValue } from "./etcd-json.js";
export type { PrefixWatchHandlers } from "./etcd-watch.js";

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
  private readonly watches = new Set<WatchHandle>();

  private constructor(private readonly http: EtcdHttp) {}

  /** Reads the TLS files and sets the client up; etcd itself is first contacted by the first call. */
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
    for (const endpoint of options.endpoints) {
      if (!URL.canParse(endpoint) || !/^https?:$/.test(new URL(endpoint).protocol)) {
        throw new UserError(`etcd endpoint ${JSON.stringify(endpoint)} is not an http(s) URL`);
      }
    }
    if (options.endpoints.length === 0) throw new UserError("no etcd endpoints given");
    return new EtcdStore(
      await EtcdHttp.create({
        endpoints: options.endpoints,
        ca: await readOptional(options.caFile, "CA file (--etcd-cafile)"),
        cert: await readOptional(options.certFile, "certificate (--etcd-certfile)"),
        key: await readOptional(options.keyFile, "key (--etcd-keyfile)"),
        username: options.username,
        password: options.password,
        callTimeoutMs: options.callTimeoutMs,
      }),
    );
  }

  async get(key: string): Promise<string | undefined> {
    const response = await this.http.call<RangeResponseJson>("/v3/kv/range", { key: toBase64(key) });
    const kv = response.kvs?.[0];
    return kv ? toStoredValue(kv).value : undefined;
  }

  /** Every key under `prefix`, and the store revision the list was taken at. */
  async list(prefix: string): Promise<{ values: StoredValue[]; revision: bigint }> {
    const response = await this.http.call<RangeResponseJson>("/v3/kv/range", {
      key: toBase64(prefix),
      range_end: prefixRangeEnd(prefix),
    });
    return { values: (response.kvs ?? []).map(toStoredValue), revision: headerRevision(response) };
  }

  async grantLease(ttlSeconds: number): Promise<string> {
    const response = await this.http.call<{ ID?: string; error?: string }>("/v3/lease/grant", {
      TTL: ttlSeconds,
    });
    if (response.error) throw new Error(`etcd refused a lease of ${ttlSeconds} s: ${response.error}`);
    const id = int64Text(response.ID, "ID");
    if (id === "0") throw new Error("etcd granted a lease without an ID");
    return id;
  }

  /** Creates `key` only if it does not exist; false when someone holds it already. */
  async createIfAbsent(key: string, value: string, leaseId: string): Promise<boolean> {
    const response = await this.http.call<{ succeeded?: boolean }>("/v3/kv/txn", {
      // A key that does not exist has create_revision 0.
      compare: [{ key: toBase64(key), target: "CREATE", result: "EQUAL", create_revision: "0" }],
      success: [{ request_put: putRequest(key, value, leaseId) }],
    });
    return response.succeeded === true;
  }

  async put(key: string, value: string, leaseId: string): Promise<void> {
    await this.http.call("/v3/kv/put", putRequest(key, value, leaseId));
  }

  async delete(key: string): Promise<void> {
    await this.http.call("/v3/kv/deleterange", { key: toBase64(key) });
  }

  /**
   * Watches `prefix` from `fromRevision` on; every event after it arrives in order until onBroken.
   * Resolves once etcd confirmed the watch; a failure before that rejects instead of calling onBroken.
   */
  async watchPrefix(
    prefix: string,
    fromRevision: bigint,
    handlers: PrefixWatchHandlers,
  ): Promise<{ close(): Promise<void> }> {
    let broken = false;
    let watch: WatchHandle | undefined;
    watch = await openWatch(
      this.http,
      {
        key: toBase64(prefix),
        range_end: prefixRangeEnd(prefix),
        start_revision: fromRevision.toString(),
        progress_notify: true,
      },
      {
        onPut: handlers.onPut,
        onDelete: handlers.onDelete,
        // May come before openWatch resolves: "created" and a cancel can share one chunk.
        onBroken: (reason) => {
          broken = true;
          if (watch) this.watches.delete(watch);
          handlers.onBroken(reason);
        },
      },
    );
    const handle = watch;
    if (!broken) this.watches.add(handle);
    return {
      close: async () => {
        this.watches.delete(handle);
        await handle.close();
      },
    };
  }

  close(): void {
    for (const watch of this.watches) void watch.close();
    this.watches.clear();
    this.http.close();
  }
}

function putRequest(key: string, value: string, leaseId: string): Record<string, string> {
  const request: Record<string, string> = { key: toBase64(key), value: toBase64(value) };
  // Lease 0 is "no lease" (a reservation), which proto3 JSON leaves out anyway.
  if (leaseId !== "0") request["lease"] = leaseId;
  return request;
}
