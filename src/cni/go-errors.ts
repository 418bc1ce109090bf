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

/** How much of a value goQuote shows. */
const QUOTE_MAX = 64;

/**
 * strconv.Quote for the printable ASCII texts found in config files; JSON quoting is close enough beyond,
 * with DEL, C1 and U+2028/2029 escaped too (JSON leaves them raw), and a long value cut (its length said).
 */
export function goQuote(s: string): string {
  const quoted = JSON.stringify(s.length > QUOTE_MAX ? s.slice(0, QUOTE_MAX) : s).replace(
    /[\u007f-\u009f\u2028\u2029]/g,
    (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`,
  );
  return s.length > QUOTE_MAX ? `${quoted}… (${s.length} characters)` : quoted;
}
