/**
 * The etcd v3 messages weft sends and reads, in protobuf, with field numbers from etcd's
 * api/etcdserverpb/rpc.proto and api/mvccpb/kv.proto. Keys and values are UTF-8 text to weft; revisions
 * are bigints and lease IDs decimal strings, both exact. Fields weft does not need are skipped. Pure.
 */
import { ProtoReader, ProtoWriter } from "./protobuf.js";

export interface StoredValue {
  readonly key: string;
  readonly value: string;
  readonly modRevision: bigint;
  /** When the key was created; of two leases that claim one subnet, the older one keeps it. */
  readonly createRevision: bigint;
  /** "0" when the key has no etcd lease attached (a reservation). */
  readonly leaseId: string;
}

export type WatchEvent =
  | { readonly type: "put"; readonly kv: StoredValue }
  | { readonly type: "delete"; readonly key: string; readonly revision: bigint };

/** One WatchResponse, reduced to what the store acts on. */
export type WatchMessage =
  | { readonly kind: "created" }
  | { readonly kind: "events"; readonly events: WatchEvent[] }
  /** A progress notification, or anything else without events. */
  | { readonly kind: "progress" }
  | { readonly kind: "canceled"; readonly reason: string; readonly compactRevision: bigint };

/**
 * The range_end that makes a range cover every key starting with `prefix`: the prefix with its last byte
 * below 0xff incremented and what follows dropped, as clientv3's GetPrefixRangeEnd. A prefix of only 0xff
 * bytes (or "") gets "\0", which etcd reads as "every key from here on".
 */
export function prefixRangeEnd(prefix: string): Buffer {
  const end = Buffer.from(prefix, "utf8");
  for (let i = end.length - 1; i >= 0; i--) {
    if (end[i]! < 0xff) {
      end[i]! += 1;
      return end.subarray(0, i + 1);
    }
  }
  return Buffer.from([0]);
}

/** A lease ID as etcd's int64; "0" is no lease. */
export function leaseIdValue(leaseId: string): bigint {
  if (!/^-?\d+$/.test(leaseId)) throw new Error(`lease ID ${JSON.stringify(leaseId)} is not an integer`);
  const id = BigInt(leaseId);
  if (BigInt.asIntN(64, id) !== id) throw new Error(`lease ID ${leaseId} does not fit in an int64`);
  return id;
}

// ---- requests ----

/** RangeRequest: key=1 range_end=2. */
export function encodeRangeRequest(key: string, rangeEnd?: Uint8Array): Buffer {
  const w = new ProtoWriter().bytesField(1, key);
  if (rangeEnd) w.bytesField(2, rangeEnd);
  return w.finish();
}

/** PutRequest: key=1 value=2 lease=3. */
export function encodePutRequest(key: string, value: string, leaseId: string): Buffer {
  return putRequest(key, value, leaseId).finish();
}

function putRequest(key: string, value: string, leaseId: string): ProtoWriter {
  return new ProtoWriter().bytesField(1, key).bytesField(2, value).int64(3, leaseIdValue(leaseId));
}

/**
 * TxnRequest (compare=1 success=2) that puts `key` only if it does not exist: a missing key has
 * create_revision 0. Compare: result=1 (EQUAL=0) target=2 (CREATE=1) key=3 create_revision=5; the
 * create_revision is in a oneof, so its 0 is written. RequestOp: request_put=2.
 */
export function encodeCreateIfAbsentTxn(key: string, value: string, leaseId: string): Buffer {
  const compare = new ProtoWriter().int64(2, 1).bytesField(3, key).int64(5, 0, true);
  const success = new ProtoWriter().message(2, putRequest(key, value, leaseId));
  return new ProtoWriter().message(1, compare).message(2, success).finish();
}

/**
 * TxnRequest that puts `key` only while it still holds `expected`: Compare target=2 (VALUE=3) key=3
 * value=7. etcd fails a value compare on a missing key, so a key gone or rewritten is left as it is.
 */
export function encodePutIfValueTxn(key: string, expected: string, value: string, leaseId: string): Buffer {
  const compare = new ProtoWriter().int64(2, 3).bytesField(3, key).bytesField(7, expected);
  const success = new ProtoWriter().message(2, putRequest(key, value, leaseId));
  return new ProtoWriter().message(1, compare).message(2, success).finish();
}

/** DeleteRangeRequest: key=1. */
export function encodeDeleteRangeRequest(key: string): Buffer {
  return new ProtoWriter().bytesField(1, key).finish();
}

/** LeaseGrantRequest: TTL=1 (ID=2 left 0: etcd chooses). */
export function encodeLeaseGrantRequest(ttlSeconds: number): Buffer {
  return new ProtoWriter().int64(1, ttlSeconds).finish();
}

/** LeaseTimeToLiveRequest: ID=1 (keys=2 left false). */
export function encodeLeaseTimeToLiveRequest(leaseId: string): Buffer {
  return new ProtoWriter().int64(1, leaseIdValue(leaseId)).finish();
}

/** LeaseTimeToLiveResponse: ID=2 TTL=3 (seconds left; -1 when the lease expired or never was). */
export function decodeLeaseTimeToLiveResponse(data: Uint8Array): { ttl: bigint } {
  const r = new ProtoReader(data);
  let ttl = -1n;
  for (let field = r.next(); field !== undefined; field = r.next()) {
    if (field === 3) ttl = r.int64();
    else r.skip();
  }
  return { ttl };
}

/** AuthenticateRequest: name=1 password=2. */
export function encodeAuthenticateRequest(name: string, password: string): Buffer {
  return new ProtoWriter().bytesField(1, name).bytesField(2, password).finish();
}

export interface WatchCreate {
  readonly key: string;
  readonly rangeEnd: Uint8Array;
  readonly startRevision: bigint;
  readonly progressNotify: boolean;
}

/** WatchRequest: create_request=1; WatchCreateRequest: key=1 range_end=2 start_revision=3 progress_notify=4. */
export function encodeWatchCreateRequest(create: WatchCreate): Buffer {
  const request = new ProtoWriter()
    .bytesField(1, create.key)
    .bytesField(2, create.rangeEnd)
    .int64(3, create.startRevision)
    .bool(4, create.progressNotify);
  return new ProtoWriter().message(1, request).finish();
}

// ---- responses ----

/** ResponseHeader: revision=3. */
function decodeHeaderRevision(data: Uint8Array): bigint {
  const r = new ProtoReader(data);
  let revision = 0n;
  for (let field = r.next(); field !== undefined; field = r.next()) {
    if (field === 3) revision = r.int64();
    else r.skip();
  }
  return revision;
}

/** mvccpb.KeyValue: key=1 create_revision=2 mod_revision=3 version=4 value=5 lease=6. */
export function decodeKeyValue(data: Uint8Array): StoredValue {
  const r = new ProtoReader(data);
  let key = "";
  let value = "";
  let modRevision = 0n;
  let createRevision = 0n;
  let leaseId = 0n;
  for (let field = r.next(); field !== undefined; field = r.next()) {
    if (field === 1) key = r.string();
    else if (field === 2) createRevision = r.int64();
    else if (field === 3) modRevision = r.int64();
    else if (field === 5) value = r.string();
    else if (field === 6) leaseId = r.int64();
    else r.skip();
  }
  return { key, value, modRevision, createRevision, leaseId: leaseId.toString() };
}

/** RangeResponse: header=1 kvs=2. */
export function decodeRangeResponse(data: Uint8Array): { revision: bigint; kvs: StoredValue[] } {
  const r = new ProtoReader(data);
  let revision = 0n;
  const kvs: StoredValue[] = [];
  for (let field = r.next(); field !== undefined; field = r.next()) {
    if (field === 1) revision = decodeHeaderRevision(r.bytes());
    else if (field === 2) kvs.push(decodeKeyValue(r.bytes()));
    else r.skip();
  }
  return { revision, kvs };
}

/** TxnResponse: succeeded=2. */
export function decodeTxnSucceeded(data: Uint8Array): boolean {
  const r = new ProtoReader(data);
  let succeeded = false;
  for (let field = r.next(); field !== undefined; field = r.next()) {
    if (field === 2) succeeded = r.bool();
    else r.skip();
  }
  return succeeded;
}

/** LeaseGrantResponse: ID=2 TTL=3 error=4. */
export function decodeLeaseGrantResponse(data: Uint8Array): { id: string; ttl: bigint; error: string } {
  const r = new ProtoReader(data);
  let id = 0n;
  let ttl = 0n;
  let error = "";
  for (let field = r.next(); field !== undefined; field = r.next()) {
    if (field === 2) id = r.int64();
    else if (field === 3) ttl = r.int64();
    else if (field === 4) error = r.string();
    else r.skip();
  }
  return { id: id.toString(), ttl, error };
}

/** AuthenticateResponse: token=2. */
export function decodeAuthenticateResponse(data: Uint8Array): { token: string } {
  const r = new ProtoReader(data);
  let token = "";
  for (let field = r.next(); field !== undefined; field = r.next()) {
    if (field === 2) token = r.string();
    else r.skip();
  }
  return { token };
}

/**
 * WatchResponse: header=1 watch_id=2 created=3 canceled=4 compact_revision=5 cancel_reason=6 events=11.
 * A cancel wins over everything else in the message (etcd refuses a watch with created and canceled).
 */
export function decodeWatchResponse(data: Uint8Array): WatchMessage {
  const r = new ProtoReader(data);
  let created = false;
  let canceled = false;
  let compactRevision = 0n;
  let cancelReason = "";
  const events: WatchEvent[] = [];
  for (let field = r.next(); field !== undefined; field = r.next()) {
    if (field === 3) created = r.bool();
    else if (field === 4) canceled = r.bool();
    else if (field === 5) compactRevision = r.int64();
    else if (field === 6) cancelReason = r.string();
    else if (field === 11) events.push(decodeEvent(r.bytes()));
    else r.skip();
  }
  if (canceled) {
    const reason =
      cancelReason ||
      (compactRevision > 0n
        ? `the revision asked for is compacted (compact revision ${compactRevision})`
        : "canceled by etcd");
    return { kind: "canceled", reason, compactRevision };
  }
  if (created) return { kind: "created" };
  return events.length === 0 ? { kind: "progress" } : { kind: "events", events };
}

/** mvccpb.Event: type=1 (PUT=0, DELETE=1) kv=2. */
function decodeEvent(data: Uint8Array): WatchEvent {
  const r = new ProtoReader(data);
  let type = 0n;
  let kv: StoredValue | undefined;
  for (let field = r.next(); field !== undefined; field = r.next()) {
    if (field === 1) type = r.uint64();
    else if (field === 2) kv = decodeKeyValue(r.bytes());
    else r.skip();
  }
  kv ??= { key: "", value: "", modRevision: 0n, createRevision: 0n, leaseId: "0" };
  if (type === 0n) return { type: "put", kv };
  // A DELETE's kv has the key and, as mod_revision, the revision of the deletion.
  if (type === 1n) return { type: "delete", key: kv.key, revision: kv.modRevision };
  throw new Error(`etcd sent a watch event of unknown type ${type}`);
}
