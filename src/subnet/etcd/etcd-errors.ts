/**
 * Errors from talking to etcd, each naming the endpoint and what failed, e.g.
 * "etcd at https://172.31.0.254:2389: connection refused".
 */
import { GRPC_UNAUTHENTICATED, GRPC_UNAVAILABLE } from "./grpc-status.js";

export interface EtcdErrorDetails {
  /** The gRPC status code etcd ended the call with, when it did. */
  readonly grpcCode?: number | undefined;
  /** etcd's own message, without the endpoint and method. */
  readonly detail?: string;
  /** Nothing reached etcd (no connection, or the stream was refused unprocessed): try another endpoint. */
  readonly notSent?: boolean;
  /** etcd refused the auth token: authenticating again may fix it. */
  readonly tokenRejected?: boolean;
  /** The member has no leader (cut off from the others, or an election): another member may have one. */
  readonly noLeader?: boolean;
  /** The member took the call and did not answer in time: another member may. */
  readonly timedOut?: boolean;
  /** `what` already names each endpoint (several were tried). */
  readonly combined?: boolean;
}

export class EtcdError extends Error {
  readonly endpoint: string;
  readonly grpcCode: number | undefined;
  readonly detail: string;
  readonly notSent: boolean;
  readonly tokenRejected: boolean;
  readonly noLeader: boolean;
  readonly timedOut: boolean;

  constructor(endpoint: string, what: string, details: EtcdErrorDetails = {}) {
    super(details.combined ? what : `etcd at ${endpoint}: ${what}`);
    this.name = "EtcdError";
    this.endpoint = endpoint;
    this.grpcCode = details.grpcCode;
    this.detail = details.detail ?? what;
    this.notSent = details.notSent ?? false;
    this.tokenRejected = details.tokenRejected ?? false;
    this.noLeader = details.noLeader ?? false;
    this.timedOut = details.timedOut ?? false;
  }
}

/** etcd's ErrGRPCNoLeader (UNAVAILABLE "etcdserver: no leader"): this member cannot serve now, others may. */
export function isNoLeaderError(grpcCode: number | undefined, message: string): boolean {
  return grpcCode === GRPC_UNAVAILABLE && /no leader/.test(message);
}

/**
 * Whether etcd refused our token (expired, issued by another member, auth enabled after we started):
 * authenticating again fixes these. Wrong credentials or a missing permission are not among them.
 */
export function isAuthTokenError(grpcCode: number | undefined, message: string): boolean {
  return (
    grpcCode === GRPC_UNAUTHENTICATED ||
    /invalid auth token|user name is empty|revision of auth store is old|auth: revision in header is old/.test(
      message,
    )
  );
}

const SOCKET_ERRORS: Record<string, string> = {
  ECONNREFUSED: "connection refused",
  ECONNRESET: "connection reset",
  EPIPE: "connection closed while sending",
  ETIMEDOUT: "connection timed out",
  EHOSTUNREACH: "host unreachable",
  ENETUNREACH: "network unreachable",
  EHOSTDOWN: "host down",
  ENOTFOUND: "cannot resolve the host name",
  EAI_AGAIN: "cannot resolve the host name (temporary failure)",
  ERR_HTTP2_GOAWAY_SESSION: "etcd closed the connection (GOAWAY)",
  ERR_HTTP2_INVALID_SESSION: "the connection is closed",
  ERR_HTTP2_SESSION_ERROR: "etcd closed the connection with an error",
  // A call pending on a session that closed without an error of its own (Bun says so when etcd stops).
  ERR_HTTP2_STREAM_CANCEL: "the connection closed",
  ERR_HTTP2_ERROR: "HTTP/2 protocol error (is this an etcd v3 client URL?)",
};

/** A short text for an error of the socket, TLS or HTTP/2 layer. */
export function describeSocketError(err: Error): string {
  const code = (err as NodeJS.ErrnoException).code;
  // A call queued on a session whose connection failed: the connection's error is the one that matters.
  if (code === "ERR_HTTP2_STREAM_CANCEL" && err.cause instanceof Error) return describeSocketError(err.cause);
  if (code && SOCKET_ERRORS[code]) {
    // Keep HTTP/2's detail (e.g. "Session closed with error code 11") after our words.
    const words = SOCKET_ERRORS[code]!;
    return code.startsWith("ERR_HTTP2_SESSION") ? `${words}: ${err.message}` : words;
  }
  // TLS verification failures carry codes like DEPTH_ZERO_SELF_SIGNED_CERT or ERR_TLS_CERT_ALTNAME_INVALID.
  if (code && /CERT|TLS|SSL/.test(code)) return `TLS: ${err.message}`;
  // An AggregateError (several addresses tried) may have an empty message of its own.
  return err.message || code || String(err);
}
