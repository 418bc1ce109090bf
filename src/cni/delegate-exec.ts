/**
 * Runs a delegate plugin the way CNI's Go invoke package does: found by type in CNI_PATH, given this
 * process's environment with CNI_COMMAND set, the config on stdin; its stdout is the result, and a failure
 * is the delegate's own CNI error when it printed one.
 */
import { statSync } from "node:fs";
import { join } from "node:path";
import { boundText } from "../text/untrusted-text.js";
import { CniError, ErrorCode } from "./cni-error.js";
import { goQuote } from "./go-errors.js";
import { isObject } from "./net-conf.js";
import { spawnDelegate } from "./spawn-delegate.js";
import { writeFully } from "./write-fd.js";

const installHint =
  "install the CNI reference plugins (bridge, host-local; Debian: containernetworking-plugins) into a CNI_PATH directory";

/** invoke.FindInPath: the first regular file named `type` in the colon-separated CNI_PATH. */
export function findPlugin(type: string, cniPath: string): string {
  const dirs = cniPath === "" ? [] : cniPath.split(":");
  if (type === "") throw new Error("no plugin name provided");
  if (type.includes("/")) throw new Error(`invalid plugin name: ${boundText(type)}`);
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
    `failed to find plugin ${goQuote(type)} in path [${boundText(dirs.join(" "), 300)}]`,
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
export async function execPlugin(
  path: string,
  command: string,
  stdin: string | Buffer,
  what: string,
): Promise<Buffer> {
  const input = typeof stdin === "string" ? Buffer.from(stdin, "utf8") : stdin;
  const env = { ...process.env, CNI_COMMAND: command };
  for (let attempt = 0; ; attempt++) {
    const run = await spawnDelegate(path, input, env);
    if (run.error?.code === "ETXTBSY" && attempt < 5) {
      sleepMs(1000);
      continue;
    }
    if (run.error) {
      const reason =
        run.error.code === "EACCES" ? "permission denied (is it executable?)" : run.error.message;
      throw new CniError(ErrorCode.internal, `${what}: cannot run ${path}: ${reason}`, installHint);
    }
    // The delegate's stderr is informational: pass it on to whoever logs ours.
    if (run.stderr.length > 0) writeFully(2, run.stderr);
    if (run.status === 0) return run.stdout;
    const status = run.signal ? `signal: ${run.signal}` : `exit status ${run.status}`;
    throw delegateFailure(what, status, run.stdout, run.stderr);
  }
}
