// Running short-lived commands for the lab: argument arrays only (never a shell), every run bounded.
import { spawn } from "node:child_process";

export interface CommandResult {
  /** Exit code, or null when the command was ended by a signal. */
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

export interface CommandOptions {
  /** Kill the command (SIGKILL) and reject after this long. Default 10 s. */
  timeoutMs?: number;
  /** Extra environment variables, on top of this process's environment. */
  env?: Record<string, string>;
  /** Written to the command's stdin, which is then closed. */
  input?: string;
}

export const DEFAULT_COMMAND_TIMEOUT_MS = 10_000;

/** A readable form of argv for error messages. */
export function describeArgv(argv: readonly string[]): string {
  return argv.map((arg) => (/^[\w@%+=:,./-]+$/.test(arg) ? arg : JSON.stringify(arg))).join(" ");
}

/** Runs argv to completion and resolves with its exit status and output; rejects only on timeout or spawn failure. */
export function runCommand(argv: readonly string[], options: CommandOptions = {}): Promise<CommandResult> {
  const timeoutMs = options.timeoutMs ?? DEFAULT_COMMAND_TIMEOUT_MS;
  return new Promise((resolve, reject) => {
    const child = spawn(argv[0]!, argv.slice(1), {
      env: options.env ? { ...process.env, ...options.env } : process.env,
      stdio: [options.input === undefined ? "ignore" : "pipe", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    child.stdout!.setEncoding("utf8").on("data", (chunk: string) => {
      stdout += chunk;
    });
    child.stderr!.setEncoding("utf8").on("data", (chunk: string) => {
      stderr += chunk;
    });
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(
        new Error(`timed out after ${timeoutMs} ms: ${describeArgv(argv)}\nstderr: ${stderr.slice(-2000)}`),
      );
    }, timeoutMs);
    child.on("error", (error) => {
      clearTimeout(timer);
      reject(new Error(`cannot run ${describeArgv(argv)}: ${error.message}`));
    });
    child.on("close", (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
    if (options.input !== undefined) {
      child.stdin!.on("error", () => {}); // the command may exit without reading its input
      child.stdin!.end(options.input);
    }
  });
}

/** Runs argv and resolves with its stdout; rejects, with stderr in the message, unless it exits 0. */
export async function runChecked(argv: readonly string[], options: CommandOptions = {}): Promise<string> {
  const result = await runCommand(argv, options);
  if (result.code !== 0) {
    const status = result.code === null ? `signal ${result.signal}` : `exit code ${result.code}`;
    throw new Error(`${describeArgv(argv)} failed (${status}): ${(result.stderr || result.stdout).trim()}`);
  }
  return result.stdout;
}
