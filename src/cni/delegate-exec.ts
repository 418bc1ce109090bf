/**
 * Runs a delegate plugin the way CNI's Go invoke package does: found by type in CNI_PATH, given this
 * process's environment with CNI_COMMAND set, the config on stdin; its stdout is the result, and a failure
 * is the delegate's own CNI error when it printed one.
 */
import { statSync } from "node:fs";
import { join } from "node:path";
import { getSystemErrorName } from "node:util";
import { boundText } from "../text/untrusted-text.js";
import { CniError, ErrorCode } from "./cni-error.js";
import { goQuote } from "./go-errors.js";
import { isObject } from "./net-conf.js";
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

/** One run of a delegate: how it ended and what it printed, or why it could not run. */
interface DelegateRun {
  readonly status: number | null;
  readonly signal: string | null;
  readonly stdout: Buffer;
  readonly stderr: Buffer;
  /** The spawn's own failure (e.g. ETXTBSY, EACCES, ENOBUFS), as child_process reports it. */
  readonly error: { readonly code: string; readonly message: string } | undefined;
}

const maxBuffer = 64 * 1024 * 1024;
const noOutput = Buffer.alloc(0);

/** Node's spawn_sync binding: what it takes and gives, exactly as child_process.spawnSync uses it. */
interface SpawnSyncBinding {
  spawn(options: object): {
    status?: number | null;
    signal?: string | null;
    output?: (Buffer | null)[] | null;
    error?: number;
  };
}

function pendingDeprecation(): boolean {
  const flag = "--pending-deprecation";
  return (
    process.execArgv.includes(flag) ||
    (process.env["NODE_OPTIONS"] ?? "").includes(flag) ||
    process.env["NODE_PENDING_DEPRECATION"] === "1"
  );
}

/**
 * The binding under child_process.spawnSync. Loading `node:child_process` pulls in streams, net and dgram:
 * ~3 ms, most of this plugin's own start-up cost, paid once per pod. Used only on the Node majors whose
 * binding was checked to take what child_process.spawnSync passes it (20, 22, 24: identical), and never
 * where process.binding is refused (permission model) or would print a deprecation warning.
 */
function spawnSyncBinding(): SpawnSyncBinding | undefined {
  const major = Number(process.versions.node.split(".")[0]);
  if (!(major >= 20 && major <= 24) || pendingDeprecation()) return undefined;
  try {
    const binding = (process as unknown as { binding(name: string): unknown }).binding("spawn_sync");
    return typeof (binding as Partial<SpawnSyncBinding> | undefined)?.spawn === "function"
      ? (binding as SpawnSyncBinding)
      : undefined;
  } catch {
    return undefined;
  }
}

async function runDelegate(path: string, input: Buffer, env: NodeJS.ProcessEnv): Promise<DelegateRun> {
  const binding = spawnSyncBinding();
  if (binding) {
    const envPairs: string[] = [];
    for (const [key, value] of Object.entries(env)) if (value !== undefined) envPairs.push(`${key}=${value}`);
    // The options object child_process.spawnSync builds for (path, [], {input, env, stdio: "pipe", maxBuffer}).
    const raw = binding.spawn({
      file: path,
      args: [path],
      envPairs,
      detached: false,
      windowsHide: false,
      windowsVerbatimArguments: false,
      maxBuffer,
      stdio: [
        { type: "pipe", readable: true, writable: false, input },
        { type: "pipe", readable: false, writable: true },
        { type: "pipe", readable: false, writable: true },
      ],
    });
    const errno = typeof raw.error === "number" && raw.error !== 0 ? raw.error : undefined;
    const code = errno === undefined ? undefined : getSystemErrorName(errno);
    return {
      status: raw.status ?? null,
      signal: raw.signal ?? null,
      stdout: raw.output?.[1] ?? noOutput,
      stderr: raw.output?.[2] ?? noOutput,
      error: code === undefined ? undefined : { code, message: `spawnSync ${path} ${code}` },
    };
  }
  // Loaded only here: see spawnSyncBinding. (getBuiltinModule: Node >= 20.16 and 22.3.)
  const childProcess =
    process.getBuiltinModule?.("node:child_process") ?? (await import("node:child_process"));
  const run = childProcess.spawnSync(path, [], { input, env, stdio: "pipe", maxBuffer });
  const err = run.error as NodeJS.ErrnoException | undefined;
  return {
    status: run.status,
    signal: run.signal,
    stdout: run.stdout ?? noOutput,
    stderr: run.stderr ?? noOutput,
    error: err ? { code: err.code ?? "", message: err.message } : undefined,
  };
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
    const run = await runDelegate(path, input, env);
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
