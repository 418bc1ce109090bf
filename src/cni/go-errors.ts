/**
 * Error texts as Go prints them, for the messages upstream shows operators (e.g. "open <path>: no such file
 * or directory"). Node reports errno codes; Go prints the C library's strerror text.
 */

import { boundText } from "../text/untrusted-text.js";

const strerror: Record<string, string> = {
  ENOENT: "no such file or directory",
  EACCES: "permission denied",
  EPERM: "operation not permitted",
  EISDIR: "is a directory",
  ENOTDIR: "not a directory",
  ELOOP: "too many levels of symbolic links",
  ENAMETOOLONG: "file name too long",
  EMFILE: "too many open files",
  ENFILE: "too many open files in system",
  EIO: "input/output error",
  EROFS: "read-only file system",
  ENOSPC: "no space left on device",
  EEXIST: "file exists",
  EBUSY: "device or resource busy",
  ETXTBSY: "text file busy",
  ENOEXEC: "exec format error",
  EDQUOT: "disk quota exceeded",
};

interface SystemError {
  code?: unknown;
  syscall?: unknown;
  path?: unknown;
  message?: unknown;
}

/** "<op> <path>: <strerror>", Go's *PathError text, for a Node fs error (on `path` unless it names one). */
export function goPathError(err: unknown, op: string, path: string): string {
  const e = (err ?? {}) as SystemError;
  const code = typeof e.code === "string" ? e.code : "";
  const text = strerror[code] ?? (typeof e.message === "string" ? e.message : String(err));
  const syscall = typeof e.syscall === "string" && e.syscall !== "open" ? e.syscall : op;
  // A path from the config may be of any length; Go would print it whole, the end (strerror) matters more.
  return `${syscall} ${boundText(typeof e.path === "string" ? e.path : path, 300)}: ${text}`;
}

export function errnoCode(err: unknown): string {
  const code = (err as SystemError | null)?.code;
  return typeof code === "string" ? code : "";
}

/** strconv.Quote for the printable ASCII texts found in config files; JSON quoting is close enough beyond. */
export function goQuote(s: string): string {
  return JSON.stringify(s);
}
