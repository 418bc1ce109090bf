/**
 * gRPC status: the code and message a call ends with, from the trailers (or from the headers of a
 * "trailers-only" answer), and their names for error messages. Pure.
 */
import type { IncomingHttpHeaders } from "node:http2";

/** google.golang.org/grpc/codes, by number. */
const CODE_NAMES = [
  "OK",
  "CANCELLED",
  "UNKNOWN",
  "INVALID_ARGUMENT",
  "DEADLINE_EXCEEDED",
  "NOT_FOUND",
  "ALREADY_EXISTS",
  "PERMISSION_DENIED",
  "RESOURCE_EXHAUSTED",
  "FAILED_PRECONDITION",
  "ABORTED",
  "OUT_OF_RANGE",
  "UNIMPLEMENTED",
  "INTERNAL",
  "UNAVAILABLE",
  "DATA_LOSS",
  "UNAUTHENTICATED",
] as const;

export const GRPC_OK = 0;
export const GRPC_DEADLINE_EXCEEDED = 4;
export const GRPC_PERMISSION_DENIED = 7;
export const GRPC_UNIMPLEMENTED = 12;
export const GRPC_UNAVAILABLE = 14;
export const GRPC_UNAUTHENTICATED = 16;

export interface GrpcStatus {
  readonly code: number;
  readonly message: string;
}

export function grpcCodeName(code: number): string {
  return CODE_NAMES[code] ?? `code ${code}`;
}

/** The status in these headers or trailers, or undefined when they carry none. */
export function readGrpcStatus(headers: IncomingHttpHeaders | undefined): GrpcStatus | undefined {
  const code = single(headers?.["grpc-status"]);
  if (code === undefined) return undefined;
  if (!/^\d+$/.test(code)) return { code: 2, message: `unreadable grpc-status ${JSON.stringify(code)}` };
  return { code: Number(code), message: decodeGrpcMessage(single(headers?.["grpc-message"]) ?? "") };
}

/** grpc-message is percent-encoded UTF-8; a malformed escape is kept as it is. */
export function decodeGrpcMessage(text: string): string {
  if (!text.includes("%")) return text;
  const bytes: number[] = [];
  for (let i = 0; i < text.length; i++) {
    const hex = text.slice(i + 1, i + 3);
    if (text[i] === "%" && /^[0-9a-fA-F]{2}$/.test(hex)) {
      bytes.push(Number.parseInt(hex, 16));
      i += 2;
    } else {
      bytes.push(...Buffer.from(text[i]!, "utf8"));
    }
  }
  return Buffer.from(bytes).toString("utf8");
}

/** etcd's message with the code's name, e.g. "etcdserver: no leader (UNAVAILABLE)". */
export function describeGrpcStatus(status: GrpcStatus): string {
  const name = grpcCodeName(status.code);
  const text = status.message || "no message";
  if (status.code === GRPC_UNIMPLEMENTED) return `${text} (${name}: not an etcd v3 endpoint?)`;
  return `${text} (${name})`;
}

function single(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value[0] : value;
}
