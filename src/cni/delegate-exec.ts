/**
 * Runs a delegate plugin the way CNI's Go invoke package does: found by type in CNI_PATH, given this
 * process's environment with CNI_COMMAND set, the config on stdin; its stdout is the result, and a failure
 * is the delegate's own CNI error when it printed one.
 */
import { spawnSync } from "node:child_process";
import { statSync } from "node:fs";
import { join } from "node:path";
import { CniError, ErrorCode } from "./cni-error.js";
import { isObject } from "./net-conf.js";

const installHint =
  "install the CNI reference plugins (bridge, host-local; Debian: containernetworking-plugins) into a CNI_PATH directory";

/** invoke.FindInPath: the first regular file named `type` in the colon-separated CNI_PATH. */
export function findPlugin(type: string, cniPath: string): string {
  const dirs = cniPath === "" ? [] : cniPath.split(":");
  if (type === "") throw new Error("no plugin name provided");
  if (type.includes("/")) throw new Error(`invalid plugin name: ${type}`);
  for (const dir of dirs) {
    const path = join(dir, type);
    try {
      if (statSync(path).isFile()) return path;
    } catch {
      // Not in this directory.
    }
  }
  throw new CniError(
    ErrorCode.internal,
    `failed to find plugin "${type}" in path [${dirs.join(" ")}]`,
    installHint,
  );
}

function sleepMs(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

/** The delegate's error: its CNI error JSON verbatim when it printed one (as upstream passes it on). */
function delegateFailure(what: string, status: string, stdout: Buffer, stderr: Buffer): CniError {
  const out = stdout.toString("utf8");
  if (out.trim() !== "") {
    try {
      const e: unknown = JSON.parse(out);
      if (isObject(e) && typeof e["msg"] === "string") {
        const code = typeof e["code"] === "number" ? e["code"] : ErrorCode.internal;
        return new CniError(code, e["msg"], typeof e["details"] === "string" ? e["details"] : "");
      }
    } catch {
      // Not JSON: reported below.
    }
    return new CniError(
      ErrorCode.internal,
      `${what}: netplugin failed but printed no CNI error: ${JSON.stringify(out)}`,
    );
  }
  const err = stderr.toString("utf8").trim();
  if (err !== "")
    return new CniError(ErrorCode.internal, `${what}: netplugin failed: ${JSON.stringify(err)}`);
  return new CniError(ErrorCode.internal, `${what}: netplugin failed with no error message: ${status}`);
}

/**
 * Executes `path` for `command`; returns its stdout. Retries "text file busy" (a plugin being replaced)
 * up to five times a second apart, as the Go library does.
 */
export function execPlugin(path: string, command: string, stdin: string | Buffer, what: string): Buffer {
  for (let attempt = 0; ; attempt++) {
    const run = spawnSync(path, [], {
      input: stdin,
      env: { ...process.env, CNI_COMMAND: command },
      stdio: ["pipe", "pipe", "pipe"],
      maxBuffer: 64 * 1024 * 1024,
    });
    const err = run.error as NodeJS.ErrnoException | undefined;
    if (err?.code === "ETXTBSY" && attempt < 5) {
      sleepMs(1000);
      continue;
    }
    if (err) {
      const reason = err.code === "EACCES" ? "permission denied (is it executable?)" : err.message;
      throw new CniError(ErrorCode.internal, `${what}: cannot run ${path}: ${reason}`, installHint);
    }
    // The delegate's stderr is informational: pass it on to whoever logs ours.
    if (run.stderr.length > 0) process.stderr.write(run.stderr);
    if (run.status === 0) return run.stdout;
    const status = run.signal ? `signal: ${run.signal}` : `exit status ${run.status}`;
    throw delegateFailure(what, status, run.stdout, run.stderr);
  }
}
