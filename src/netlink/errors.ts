// Kernel errors as JS errors: errno number, errno name and the kernel's own explanation.
import { constants } from "node:os";
import { getSystemErrorMap } from "node:util";

// libuv's codes are negated errnos on Linux, so its map gives names and readable descriptions.
const systemErrors = getSystemErrorMap();
const errnoNames = new Map<number, string>();
// Aliases share numbers; the kernel's own spelling wins (it says EOPNOTSUPP, not ENOTSUP).
const preferred = new Set(["EAGAIN", "EOPNOTSUPP", "EDEADLK"]);
for (const [name, value] of Object.entries(constants.errno)) {
  if (!errnoNames.has(value) || preferred.has(name)) errnoNames.set(value, name);
}

/** "EEXIST" for 17 and so on; "ERRNO_<n>" when Node does not know the number. */
export function errnoName(errno: number): string {
  return errnoNames.get(errno) ?? systemErrors.get(-errno)?.[0] ?? `ERRNO_${errno}`;
}

/** The errno number for a name such as "ENOBUFS", 0 if unknown. */
export function errnoNumber(code: string): number {
  return (constants.errno as Record<string, number>)[code] ?? 0;
}

/** A short description such as "file already exists". */
export function errnoDescription(errno: number): string {
  return systemErrors.get(-errno)?.[1] ?? `error ${errno}`;
}

export class NetlinkError extends Error {
  override name = "NetlinkError";
  /** Positive errno. */
  readonly errno: number;
  /** Errno name such as "EEXIST", "ENODEV", or "ENOBUFS" for a lost reply. */
  readonly code: string;
  /** What was being done, e.g. "route replace 10.244.1.0/24". */
  readonly operation: string;
  /** The kernel's extended ack message, when it sent one. */
  readonly extAck: string | undefined;

  constructor(errno: number, operation: string, extAck?: string) {
    const code = errnoName(errno);
    super(`${operation}: ${code} (${errnoDescription(errno)})${extAck ? `: ${extAck}` : ""}`);
    this.errno = errno;
    this.code = code;
    this.operation = operation;
    this.extAck = extAck;
  }
}

/**
 * A message too short, or an attribute of the wrong size, for what its type says. The kernel does not send
 * these; a decoder meeting one stops with this error instead of a RangeError from deep inside a read.
 */
export class NetlinkDecodeError extends Error {
  override name = "NetlinkDecodeError";
}
