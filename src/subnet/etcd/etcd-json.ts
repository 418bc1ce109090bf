/**
 * etcd's JSON gateway wire shapes (proto3 JSON of api/etcdserverpb/rpc.proto): keys and values are base64,
 * int64 fields (revisions, lease IDs) are decimal strings, and fields at their default value are left out
 * (an empty value, lease 0, a PUT event's type). Pure: no I/O here.
 */

export interface StoredValue {
  readonly key: string;
  readonly value: string;
  readonly modRevision: bigint;
  /** "0" when the key has no etcd lease attached (a reservation). */
  readonly leaseId: string;
}

/** mvccpb.KeyValue as the gateway writes it. */
export interface KeyValueJson {
  key?: string;
  value?: string;
  create_revision?: string;
  mod_revision?: string;
  version?: string;
  lease?: string;
}

export interface ResponseHeaderJson {
  revision?: string;
}

export interface RangeResponseJson {
  header?: ResponseHeaderJson;
  kvs?: KeyValueJson[];
}

export type WatchEvent =
  | { readonly type: "put"; readonly kv: StoredValue }
  | { readonly type: "delete"; readonly key: string; readonly revision: bigint };

/** One message of the watch stream, reduced to what the store acts on. */
export type WatchMessage =
  | { readonly kind: "created" }
  | { readonly kind: "events"; readonly events: WatchEvent[] }
  /** Progress notification or anything else without events. */
  | { readonly kind: "progress" }
  | { readonly kind: "canceled"; readonly reason: string; readonly compactRevision: bigint | undefined }
  | { readonly kind: "error"; readonly message: string; readonly grpcCode: number | undefined };

export function toBase64(text: string): string {
  return Buffer.from(text, "utf8").toString("base64");
}

export function fromBase64(text: string | undefined): string {
  return Buffer.from(text ?? "", "base64").toString("utf8");
}

/** An int64 field as a decimal string ("0" when left out); never through a JS number. */
export function int64Text(value: unknown, field: string): string {
  if (value === undefined || value === null) return "0";
  if (typeof value === "string" && /^-?\d+$/.test(value)) return value;
  // The gateway always quotes int64; a small unquoted one is still exact.
  if (typeof value === "number" && Number.isSafeInteger(value)) return String(value);
  throw new Error(`etcd sent ${JSON.stringify(value)} for ${field}, which is not an int64`);
}

export function int64(value: unknown, field: string): bigint {
  return BigInt(int64Text(value, field));
}

export function toStoredValue(kv: KeyValueJson): StoredValue {
  return {
    key: fromBase64(kv.key),
    value: fromBase64(kv.value),
    modRevision: int64(kv.mod_revision, "mod_revision"),
    leaseId: int64Text(kv.lease, "lease"),
  };
}

/**
 * The range_end that makes a range cover every key starting with `prefix`: the prefix with its last byte
 * below 0xff incremented and what follows dropped, as clientv3's GetPrefixRangeEnd. A prefix of only 0xff
 * bytes (or "") gets "\0", which etcd reads as "every key from here on". Returned base64, ready to send.
 */
export function prefixRangeEnd(prefix: string): string {
  const end = Buffer.from(prefix, "utf8");
  for (let i = end.length - 1; i >= 0; i--) {
    if (end[i]! < 0xff) {
      end[i]! += 1;
      return end.subarray(0, i + 1).toString("base64");
    }
  }
  return Buffer.from([0]).toString("base64");
}

/** The revision in a response header (0 when left out, as for a fresh etcd). */
export function headerRevision(response: { header?: ResponseHeaderJson }): bigint {
  return int64(response.header?.revision, "header.revision");
}

/** Decodes one line of the /v3/watch stream; anything unreadable comes back as an "error" message. */
export function parseWatchMessage(line: string): WatchMessage {
  try {
    return decodeWatchMessage(JSON.parse(line));
  } catch (err) {
    const problem = err instanceof SyntaxError ? "not JSON" : (err as Error).message;
    return {
      kind: "error",
      message: `unreadable watch message (${problem}): ${line.slice(0, 200)}`,
      grpcCode: undefined,
    };
  }
}

function decodeWatchMessage(parsed: unknown): WatchMessage {
  const message = (parsed ?? {}) as {
    result?: {
      created?: boolean;
      canceled?: boolean;
      cancel_reason?: string;
      compact_revision?: string;
      events?: Array<{ type?: string | number; kv?: KeyValueJson }>;
    };
    error?: { message?: string; grpc_code?: number; code?: number } | string;
  };
  if (message.error !== undefined) {
    // grpc-gateway's stream error: {"error":{"grpc_code":14,"http_code":503,"message":"...","http_status":"..."}}
    const error = message.error;
    if (typeof error === "string") return { kind: "error", message: error, grpcCode: undefined };
    return {
      kind: "error",
      message: error.message || JSON.stringify(error),
      grpcCode: error.grpc_code ?? error.code,
    };
  }
  const result = message.result;
  if (!result) throw new Error("no result in it");
  if (result.canceled) {
    const compactRevision =
      result.compact_revision !== undefined ? int64(result.compact_revision, "compact_revision") : undefined;
    const reason =
      result.cancel_reason ||
      (compactRevision !== undefined && compactRevision > 0n
        ? `the revision asked for is compacted (compact revision ${compactRevision})`
        : "canceled by etcd");
    return { kind: "canceled", reason, compactRevision };
  }
  if (result.created) return { kind: "created" };
  if (!result.events || result.events.length === 0) return { kind: "progress" };
  return { kind: "events", events: result.events.map(toWatchEvent) };
}

function toWatchEvent(event: { type?: string | number; kv?: KeyValueJson }): WatchEvent {
  const kv = event.kv ?? {};
  // proto3 JSON leaves out the default enum value, so a PUT has no "type" at all.
  if (event.type === "DELETE" || event.type === 1) {
    return { type: "delete", key: fromBase64(kv.key), revision: int64(kv.mod_revision, "mod_revision") };
  }
  if (event.type === undefined || event.type === "PUT" || event.type === 0) {
    return { type: "put", kv: toStoredValue(kv) };
  }
  throw new Error(`etcd sent a watch event of unknown type ${JSON.stringify(event.type)}`);
}

/** What an error body says: {"error":"...","message":"...","code":5} (code is the gRPC status). */
export function parseErrorBody(text: string): { message: string; grpcCode: number | undefined } | undefined {
  try {
    const body = JSON.parse(text) as { error?: unknown; message?: unknown; code?: unknown };
    const message =
      typeof body.message === "string"
        ? body.message
        : typeof body.error === "string"
          ? body.error
          : undefined;
    if (message === undefined) return undefined;
    return { message, grpcCode: typeof body.code === "number" ? body.code : undefined };
  } catch {
    return undefined;
  }
}
