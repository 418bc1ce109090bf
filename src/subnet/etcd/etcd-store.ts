/**
 * The few etcd operations weft needs, over etcd's gRPC API with node:http2 and a small protobuf codec (a
 * gRPC library would cost weftd some 27 MB). Kept small so the manager above it stays readable and so the
 * client could be swapped without touching lease logic.
 */
import { readSmallFile } from "../../fs/read-small-file.js";
import { requirePemCertificates, requirePemKey } from "../../tls/pem-files.js";
import { UserError } from "../../user-error.js";
import { EtcdGrpc } from "./etcd-grpc.js";
import {
  decodeLeaseGrantResponse,
  decodeLeaseTimeToLiveResponse,
  decodeRangeResponse,
  decodeTxnSucceeded,
  encodeCreateIfAbsentTxn,
  encodeDeleteRangeRequest,
  encodeLeaseGrantRequest,
  encodeLeaseTimeToLiveRequest,
  encodePutIfValueTxn,
  encodePutRequest,
  encodeRangeRequest,
  prefixRangeEnd,
  type StoredValue,
} from "./etcd-messages.js";
import { openWatch, type PrefixWatchHandlers, type WatchHandle } from "./etcd-watch.js";

export type { StoredValue } from "./etcd-messages.js";
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

  private constructor(private readonly grpc: EtcdGrpc) {}

  /** Reads the TLS files and sets the client up; etcd itself is first contacted by the first call. */
  static async connect(options: EtcdConnectionOptions): Promise<EtcdStore> {
    const readOptional = async (
      path: string | undefined,
      what: string,
      check: typeof requirePemCertificates,
    ) => {
      if (!path) return undefined;
      let data: Buffer;
      try {
        data = readSmallFile(path, 16 * 1024 * 1024); // bounded, never blocking: not /dev/zero or a FIFO
      } catch (err) {
        throw new UserError(
          `cannot read the etcd ${what} ${path}: ${(err as Error).message}`,
          "check the path",
        );
      }
      check(data, `the etcd ${what} ${path}`, "give the PEM file etcd's certificates were made with");
      return data;
    };
    for (const endpoint of options.endpoints) {
      if (!URL.canParse(endpoint) || !/^https?:$/.test(new URL(endpoint).protocol)) {
        throw new UserError(`etcd endpoint ${JSON.stringify(endpoint)} is not an http(s) URL`);
      }
    }
    if (options.endpoints.length === 0) throw new UserError("no etcd endpoints given");
    return new EtcdStore(
      new EtcdGrpc({
        endpoints: options.endpoints,
        ca: await readOptional(options.caFile, "CA file (--etcd-cafile)", requirePemCertificates),
        cert: await readOptional(options.certFile, "certificate (--etcd-certfile)", requirePemCertificates),
        key: await readOptional(options.keyFile, "key (--etcd-keyfile)", requirePemKey),
        username: options.username,
        password: options.password,
        callTimeoutMs: options.callTimeoutMs,
      }),
    );
  }

  async get(key: string): Promise<string | undefined> {
    return (await this.getStored(key))?.value;
  }

  /** The key with its etcd lease ID, or undefined when it does not exist. */
  async getStored(key: string): Promise<StoredValue | undefined> {
    const response = decodeRangeResponse(await this.grpc.call("KV/Range", encodeRangeRequest(key)));
    return response.kvs[0];
  }

  /** Every key under `prefix`, and the store revision the list was taken at. */
  async list(prefix: string): Promise<{ values: StoredValue[]; revision: bigint }> {
    const response = decodeRangeResponse(
      await this.grpc.call("KV/Range", encodeRangeRequest(prefix, prefixRangeEnd(prefix))),
    );
    return { values: response.kvs, revision: response.revision };
  }

  async grantLease(ttlSeconds: number): Promise<string> {
    const answer = decodeLeaseGrantResponse(
      await this.grpc.call("Lease/LeaseGrant", encodeLeaseGrantRequest(ttlSeconds)),
    );
    if (answer.error) throw new Error(`etcd refused a lease of ${ttlSeconds} s: ${answer.error}`);
    if (answer.id === "0") throw new Error("etcd granted a lease without an ID");
    return answer.id;
  }

  /** Seconds until an etcd lease expires (-1: expired or unknown), for `weft leases`. */
  async leaseTimeToLive(leaseId: string): Promise<number> {
    const answer = decodeLeaseTimeToLiveResponse(
      await this.grpc.call("Lease/LeaseTimeToLive", encodeLeaseTimeToLiveRequest(leaseId)),
    );
    return Number(answer.ttl);
  }

  /** Creates `key` only if it does not exist; false when someone holds it already. */
  async createIfAbsent(key: string, value: string, leaseId: string): Promise<boolean> {
    return decodeTxnSucceeded(await this.grpc.call("KV/Txn", encodeCreateIfAbsentTxn(key, value, leaseId)));
  }

  /** Puts `key` only while it holds `expected`; false when it is gone or holds something else. */
  async putIfValue(key: string, expected: string, value: string, leaseId: string): Promise<boolean> {
    return decodeTxnSucceeded(
      await this.grpc.call("KV/Txn", encodePutIfValueTxn(key, expected, value, leaseId)),
    );
  }

  async put(key: string, value: string, leaseId: string): Promise<void> {
    await this.grpc.call("KV/Put", encodePutRequest(key, value, leaseId));
  }

  async delete(key: string): Promise<void> {
    await this.grpc.call("KV/DeleteRange", encodeDeleteRangeRequest(key));
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
      this.grpc,
      { key: prefix, rangeEnd: prefixRangeEnd(prefix), startRevision: fromRevision, progressNotify: true },
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
    this.grpc.close();
  }
}
