/**
 * Errors from talking to etcd, each naming the endpoint and what failed, e.g.
 * "etcd at https://172.31.0.254:2389: connection refused".
 */

/** gRPC status codes etcd puts in "code" of an error body (google.golang.org/grpc/codes). */
export const GRPC_UNAUTHENTICATED = 16;

export interface EtcdErrorDetails {
  /** The gRPC code etcd answered with, when it answered with one. */
  readonly grpcCode?: number | undefined;
  /** The HTTP status, when etcd answered at all. */
  readonly httpStatus?: number | undefined;
  /** etcd's own message, without the endpoint and path. */
  readonly detail?: string;
  /** Nothing reached etcd (the connection could not be made): safe to try another endpoint. */
  readonly notSent?: boolean;
  /** etcd refused the auth token: authenticating again may fix it. */
  readonly tokenRejected?: boolean;
  /** `what` already names each endpoint (several were tried). */
  readonly combined?: boolean;
}

export class EtcdError extends Error {
  readonly endpoint: string;
  readonly grpcCode: number | undefined;
  readonly httpStatus: number | undefined;
  readonly detail: string;
  readonly notSent: boolean;
  readonly tokenRejected: boolean;

  constructor(endpoint: string, what: string, details: EtcdErrorDetails = {}) {
    super(details.combined ? what : `etcd at ${endpoint}: ${what}`);
    this.name = "EtcdError";
    this.endpoint = endpoint;
    this.grpcCode = details.grpcCode;
    this.httpStatus = details.httpStatus;
    this.detail = details.detail ?? what;
    this.notSent = details.notSent ?? false;
    this.tokenRejected = details.tokenRejected ?? false;
  }
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
};

/** A short text for an error of the socket or TLS layer. */
export function describeSocketError(err: Error): string {
  const code = (err as NodeJS.ErrnoException).code;
  if (code && SOCKET_ERRORS[code]) return SOCKET_ERRORS[code]!;
  // TLS verification failures carry codes like DEPTH_ZERO_SELF_SIGNED_CERT or ERR_TLS_CERT_ALTNAME_INVALID.
  if (code && /CERT|TLS|SSL/.test(code)) return `TLS: ${err.message}`;
  // An AggregateError (several addresses tried) may have an empty message of its own.
  return err.message || code || String(err);
}
