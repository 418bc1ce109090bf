/**
 * Runs one delegate plugin to completion: its stdin given, its stdout and stderr captured. The one place the
 * plugin starts a process, on the runtime it runs on: Bun.spawnSync in the shipped executable (Bun), where
 * node:child_process is emulated in JavaScript and its first spawnSync costs ~8 ms more; under Node (the
 * development runtime) child_process.spawnSync. Both report a failed spawn the same way, by errno code.
 */
import { type BunRuntime, bun } from "../runtime/bun.js";

/** How a delegate ended and what it printed, or why it could not run. */
export interface DelegateRun {
  readonly status: number | null;
  readonly signal: string | null;
  readonly stdout: Buffer;
  readonly stderr: Buffer;
  /** The spawn's own failure (e.g. ETXTBSY, EACCES, ENOBUFS), worded as child_process words it. */
  readonly error: { readonly code: string; readonly message: string } | undefined;
}

/** A delegate's output beyond this is refused (ENOBUFS), as with child_process's maxBuffer. */
const maxBuffer = 64 * 1024 * 1024;
const noOutput = Buffer.alloc(0);

/** child_process's wording of a failed spawn, e.g. `spawnSync /opt/cni/bin/bridge EACCES`. */
function spawnFailure(path: string, code: string): DelegateRun["error"] {
  return { code, message: `spawnSync ${path} ${code}` };
}

function runOnBun(runtime: BunRuntime, path: string, input: Buffer, env: NodeJS.ProcessEnv): DelegateRun {
  let run: ReturnType<BunRuntime["spawnSync"]>;
  try {
    run = runtime.spawnSync({ cmd: [path], stdin: input, env, stdout: "pipe", stderr: "pipe", maxBuffer });
  } catch (err) {
    // posix_spawn's failure (EACCES, ETXTBSY, ENOENT for a missing #! interpreter) is thrown, not returned.
    const code = (err as { code?: unknown }).code;
    if (typeof code !== "string") throw err;
    return {
      status: null,
      signal: null,
      stdout: noOutput,
      stderr: noOutput,
      error: spawnFailure(path, code),
    };
  }
  return {
    status: run.exitCode,
    signal: run.signalCode,
    stdout: run.stdout ?? noOutput,
    stderr: run.stderr ?? noOutput,
    error: run.exitedDueToMaxBuffer ? spawnFailure(path, "ENOBUFS") : undefined,
  };
}

async function runOnNode(path: string, input: Buffer, env: NodeJS.ProcessEnv): Promise<DelegateRun> {
  // Loaded only when a delegate runs: VERSION and most errors never need it. (getBuiltinModule: Node >= 20.16.)
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

/** Runs `path` (no arguments, as CNI runs plugins) with `input` on stdin and exactly `env`. */
export function spawnDelegate(path: string, input: Buffer, env: NodeJS.ProcessEnv): Promise<DelegateRun> {
  return bun ? Promise.resolve(runOnBun(bun, path, input, env)) : runOnNode(path, input, env);
}
