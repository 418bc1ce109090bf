/**
 * `mkdir -p`, shared by weftd (the subnet file's directory) and the CNI plugin (dataDir); it imports only
 * node:fs and node:path, so the plugin's start-up stays small.
 *
 * Not Node's `mkdir(path, { recursive: true })` (Node 20): that one spins forever (100% CPU, no error) when
 * a parent is a directory that cannot hold the child, as anywhere under /proc: mkdir of the child fails
 * with ENOENT, so it makes the parent, which answers EEXIST, so it tries the child again, and so on. Here
 * each directory is tried at most twice: once before and once after its parent exists. A second ENOENT is
 * final, so the work is bounded by the path's depth.
 */
import { mkdirSync, statSync } from "node:fs";
import { dirname } from "node:path";

function code(err: unknown): string {
  const value = (err as { code?: unknown } | null)?.code;
  return typeof value === "string" ? value : "";
}

/** A Node-style fs error, so callers render it like any other (code, syscall, path). */
function notADirectory(path: string): Error {
  return Object.assign(new Error(`ENOTDIR: not a directory, mkdir '${path}'`), {
    code: "ENOTDIR",
    errno: -20,
    syscall: "mkdir",
    path,
  });
}

/** EEXIST is success only if what exists is a directory (or a link to one). */
function requireDirectory(path: string): void {
  let isDirectory = false;
  try {
    isDirectory = statSync(path).isDirectory();
  } catch {
    // A dangling symlink: something is there, and it is no directory.
  }
  if (!isDirectory) throw notADirectory(path);
}

/** Returns true when `path` was made or already is a directory; false on ENOENT when `retryable`. */
function makeOne(path: string, mode: number, retryable: boolean): boolean {
  try {
    mkdirSync(path, { mode });
    return true;
  } catch (err) {
    if (code(err) === "EEXIST") {
      requireDirectory(path);
      return true;
    }
    if (code(err) === "ENOENT" && retryable) return false;
    throw err;
  }
}

/** Creates `path` and any missing parents (with `mode`, less the umask); throws a Node fs error. */
export function makeDirectories(path: string, mode: number): void {
  const parent = dirname(path);
  if (makeOne(path, mode, parent !== path)) return;
  makeDirectories(parent, mode);
  makeOne(path, mode, false);
}
