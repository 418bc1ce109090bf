/**
 * Runs one extension command as a child process: no shell, the program found on PATH as exec does,
 * weftd's environment plus the command's variables, stdin written and closed, stdout and stderr captured
 * together in arrival order (flannel's combined output), bounded in size and time. On timeout or
 * shutdown only the child we started is signalled, by its pid: SIGTERM, then SIGKILL.
 */
import { spawn } from "node:child_process";
import { boundText } from "../../text/untrusted-text.js";
import type { CommandInput } from "./command-inputs.js";
import { type CommandLine, expandCommandLine, trimSpace } from "./command-line.js";

export interface CommandLimits {
  readonly timeoutMs: number;
  /** Output kept; more is counted and dropped. */
  readonly maxOutputBytes: number;
  /** After SIGTERM, how long the child has before SIGKILL. */
  readonly killGraceMs: number;
}

export const DEFAULT_LIMITS: CommandLimits = {
  timeoutMs: 60_000,
  maxOutputBytes: 256 * 1024,
  killGraceMs: 2000,
};

export interface CommandOutcome {
  readonly ok: boolean;
  /** Why it failed, for a log line: "exit status 2", "timed out after 60 s", "cannot start: ENOENT". */
  readonly failure: string | undefined;
  /** Combined stdout and stderr, trimmed as flannel does. */
  readonly output: string;
  /** True when output went beyond maxOutputBytes and the rest was dropped. */
  readonly truncated: boolean;
}

const STOPPING = "stopped because weftd is shutting down";

export type RunCommand = (
  command: CommandLine,
  input: CommandInput,
  signal?: AbortSignal,
) => Promise<CommandOutcome>;

/** A RunCommand over real child processes. `baseEnv` is weftd's own environment. */
export function processRunner(
  limits: CommandLimits = DEFAULT_LIMITS,
  baseEnv: NodeJS.ProcessEnv = process.env,
): RunCommand {
  return (command, input, signal) => runProcess(command, input, limits, baseEnv, signal);
}

function runProcess(
  command: CommandLine,
  input: CommandInput,
  limits: CommandLimits,
  baseEnv: NodeJS.ProcessEnv,
  signal: AbortSignal | undefined,
): Promise<CommandOutcome> {
  const env: NodeJS.ProcessEnv = { ...baseEnv, ...input.variables };
  const { program, args } = expandCommandLine(command, (name) => env[name]);
  if (program === "" || signal?.aborted) {
    return Promise.resolve({
      ok: false,
      failure: program === "" ? "its program is empty after expanding variables" : STOPPING,
      output: "",
      truncated: false,
    });
  }
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let kept = 0;
    let truncated = false;
    let failure: string | undefined;
    let settled = false;
    let killTimer: NodeJS.Timeout | undefined;

    const child = spawn(program, args, { env, shell: false, stdio: ["pipe", "pipe", "pipe"] });
    const collect = (chunk: Buffer) => {
      const room = limits.maxOutputBytes - kept;
      if (chunk.length > room) truncated = true;
      if (room > 0) {
        const part = chunk.length > room ? chunk.subarray(0, room) : chunk;
        chunks.push(part);
        kept += part.length;
      }
    };
    child.stdout.on("data", collect);
    child.stderr.on("data", collect);
    // A command that does not read its stdin may exit before we finish writing: not an error.
    child.stdin.on("error", () => undefined);
    child.stdin.end(input.stdin);

    const stop = (why: string) => {
      if (settled || child.pid === undefined || child.exitCode !== null || child.signalCode !== null) return;
      failure ??= why;
      child.kill("SIGTERM");
      killTimer = setTimeout(() => child.kill("SIGKILL"), limits.killGraceMs);
    };
    const timeout = setTimeout(() => stop(`timed out after ${limits.timeoutMs / 1000} s`), limits.timeoutMs);
    const onAbort = () => stop(STOPPING);
    signal?.addEventListener("abort", onAbort, { once: true });

    const finish = (code: number | null, signalName: NodeJS.Signals | null, error?: Error) => {
      if (settled) return;
      settled = true;
      clearTimeout(timeout);
      clearTimeout(killTimer);
      signal?.removeEventListener("abort", onAbort);
      // A grandchild may still hold the pipes open; what it writes later is not this command's output.
      child.stdout.destroy();
      child.stderr.destroy();
      const reason = error && ((error as NodeJS.ErrnoException).code ?? error.message);
      if (error)
        failure = child.pid === undefined ? `cannot start ${boundText(program)}: ${reason}` : `${reason}`;
      else if (failure === undefined && code !== 0)
        failure = code !== null ? `exit status ${code}` : `killed by ${signalName}`;
      resolve({
        ok: failure === undefined,
        failure,
        output: trimSpace(Buffer.concat(chunks).toString("utf8")),
        truncated,
      });
    };
    child.on("error", (err) => finish(null, null, err));
    // 'close' waits for the pipes too; give them a moment after 'exit' to deliver the last output.
    child.on("close", (code, signalName) => finish(code, signalName));
    child.on("exit", (code, signalName) => {
      setTimeout(() => finish(code, signalName), 100).unref();
    });
  });
}
