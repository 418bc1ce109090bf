// A long-running process inside a lab namespace: captured output, waiting for output, stopping by pid.
import { type ChildProcess, spawn } from "node:child_process";
import { createWriteStream, readlinkSync, statSync, type WriteStream } from "node:fs";
import { basename } from "node:path";
import { describeArgv } from "./lab-command.js";

export interface ExitStatus {
  /** Exit code, or null when the process was ended by a signal. */
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface SpawnOptions {
  /** Extra environment variables, on top of this process's environment. */
  env?: Record<string, string>;
  /** Also append everything the process prints to this file. */
  logFile?: string;
}

/** How much output a process keeps in memory: the last ~1 MB. */
const OUTPUT_LIMIT_CHARS = 1 << 20;
/** After the process exits, how long to wait for its pipes to drain (a forked child may hold them open). */
const PIPE_DRAIN_MS = 200;
const START_TIMEOUT_MS = 5_000;

interface OutputWaiter {
  pattern: RegExp;
  resolve: (match: RegExpMatchArray) => void;
  reject: (error: Error) => void;
  timer: NodeJS.Timeout;
}

export class LabProcess {
  readonly pid: number;
  /** The namespace the process runs in. */
  readonly namespace: string;
  /** The program and its arguments, without the `ip netns exec` prefix. */
  readonly argv: readonly string[];
  /** Resolves once the process has exited and its output has been read. Never rejects. */
  readonly exited: Promise<ExitStatus>;
  /** Set once the process has exited. */
  exitStatus: ExitStatus | undefined;

  private readonly child: ChildProcess;
  private outputText = "";
  private readonly waiters = new Set<OutputWaiter>();
  private readonly log: WriteStream | undefined;

  private constructor(child: ChildProcess, namespace: string, argv: readonly string[], logFile?: string) {
    this.child = child;
    this.pid = child.pid!;
    this.namespace = namespace;
    this.argv = argv;
    this.log = logFile ? createWriteStream(logFile, { flags: "a" }) : undefined;
    this.log?.on("error", () => {}); // a broken log file must not crash the test
    for (const stream of [child.stdout!, child.stderr!]) {
      stream.setEncoding("utf8").on("data", (chunk: string) => this.append(chunk));
    }
    this.exited = new Promise((resolve) => {
      let closed = false;
      child.on("close", () => {
        closed = true;
      });
      child.on("exit", (code, signal) => {
        const status = { code, signal };
        const finish = () => {
          this.exitStatus = status;
          this.log?.end();
          this.rejectWaiters(`exited (${describeStatus(status)})`);
          resolve(status);
        };
        if (closed) finish();
        else {
          const drain = setTimeout(finish, PIPE_DRAIN_MS);
          child.once("close", () => {
            clearTimeout(drain);
            finish();
          });
        }
      });
    });
  }

  /**
   * Starts argv inside namespace via `ip netns exec`, which execs the program in place, so the pid of the
   * spawned child is the program's own. Resolves once the pid is verified to be inside the namespace.
   */
  static async start(
    namespace: string,
    argv: readonly string[],
    options: SpawnOptions = {},
  ): Promise<LabProcess> {
    if (argv.length === 0) throw new Error("spawn needs a program to run");
    const child = spawn("ip", ["netns", "exec", namespace, ...argv], {
      env: options.env ? { ...process.env, ...options.env } : process.env,
      stdio: ["ignore", "pipe", "pipe"],
      // Its own process group: Ctrl-C in a terminal reaches only this process, which then cleans up in order.
      detached: true,
    });
    if (child.pid === undefined) {
      const error = await new Promise<Error>((resolve) => child.once("error", resolve));
      throw new Error(`cannot spawn ${describeArgv(argv)} in ${namespace}: ${error.message}`);
    }
    const labProcess = new LabProcess(child, namespace, argv, options.logFile);
    await labProcess.verifyStarted();
    return labProcess;
  }

  /** True until the process has exited. */
  get running(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  /** Everything the process printed on stdout and stderr, interleaved, bounded to the last ~1 MB. */
  output(): string {
    return this.outputText;
  }

  /** Resolves with the first match of pattern in the output; rejects on timeout or if the process exits first. */
  waitForOutput(pattern: RegExp, timeoutMs = 10_000): Promise<RegExpMatchArray> {
    // A global or sticky regex keeps state between matches; a plain copy answers the same question every time.
    const plain = new RegExp(pattern.source, pattern.flags.replace(/[gy]/g, ""));
    const match = this.outputText.match(plain);
    if (match) return Promise.resolve(match);
    if (this.exitStatus) {
      return Promise.reject(this.waitError(plain, `exited (${describeStatus(this.exitStatus)})`));
    }
    return new Promise((resolve, reject) => {
      const waiter: OutputWaiter = {
        pattern: plain,
        resolve,
        reject,
        timer: setTimeout(() => {
          this.waiters.delete(waiter);
          reject(this.waitError(plain, `timed out after ${timeoutMs} ms`));
        }, timeoutMs),
      };
      this.waiters.add(waiter);
    });
  }

  /** Sends signal; after timeoutMs sends SIGKILL (to its process group). Resolves with how it exited. */
  async stop(signal: NodeJS.Signals = "SIGTERM", timeoutMs = 5_000): Promise<ExitStatus> {
    if (!this.running) return this.exited;
    sendSignal(this.pid, signal);
    if (await exitsWithin(this.exited, timeoutMs)) return this.exited;
    sendSignal(-this.pid, "SIGKILL") || sendSignal(this.pid, "SIGKILL");
    if (await exitsWithin(this.exited, 5_000)) return this.exited;
    throw new Error(`pid ${this.pid} (${describeArgv(this.argv)}) did not exit 5 s after SIGKILL`);
  }

  /** Kills the process group at once without waiting; for synchronous cleanup at process exit. */
  killNow(): void {
    if (this.running) sendSignal(-this.pid, "SIGKILL") || sendSignal(this.pid, "SIGKILL");
  }

  private append(chunk: string): void {
    this.log?.write(chunk);
    this.outputText += chunk;
    if (this.outputText.length > OUTPUT_LIMIT_CHARS)
      this.outputText = this.outputText.slice(-OUTPUT_LIMIT_CHARS);
    for (const waiter of this.waiters) {
      const match = this.outputText.match(waiter.pattern);
      if (match) {
        clearTimeout(waiter.timer);
        this.waiters.delete(waiter);
        waiter.resolve(match);
      }
    }
  }

  private rejectWaiters(why: string): void {
    for (const waiter of this.waiters) {
      clearTimeout(waiter.timer);
      waiter.reject(this.waitError(waiter.pattern, why));
    }
    this.waiters.clear();
  }

  private waitError(pattern: RegExp, why: string): Error {
    return new Error(
      `${describeArgv(this.argv)} (pid ${this.pid} in ${this.namespace}) ${why} before printing ${pattern}; ` +
        `last output:\n${this.outputText.slice(-2000)}`,
    );
  }

  /**
   * Waits until the pid is inside the namespace and, unless the program is `ip` itself, no longer `ip`:
   * then signals sent to this pid reach the program. A program that exits at once is also fine.
   */
  private async verifyStarted(): Promise<void> {
    const expectedNet = `net:[${statSync(`/run/netns/${this.namespace}`).ino}]`;
    const programIsIp = basename(this.argv[0]!) === "ip";
    const deadline = Date.now() + START_TIMEOUT_MS;
    for (;;) {
      if (!this.running) return;
      let net: string;
      let exe: string;
      try {
        net = readlinkSync(`/proc/${this.pid}/ns/net`);
        exe = readlinkSync(`/proc/${this.pid}/exe`);
      } catch {
        return; // exited (or a zombie) between the checks
      }
      if (net === expectedNet && (programIsIp || basename(exe) !== "ip")) return;
      if (Date.now() > deadline) {
        this.killNow();
        throw new Error(
          `pid ${this.pid} did not become ${describeArgv(this.argv)} in ${this.namespace} within ` +
            `${START_TIMEOUT_MS} ms (it is ${exe} in ${net}); output:\n${this.outputText.slice(-2000)}`,
        );
      }
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
  }
}

export function describeStatus(status: ExitStatus): string {
  return status.code === null ? `signal ${status.signal}` : `code ${status.code}`;
}

/** Sends a signal to a pid (or, if negative, a process group); false if there is no such process. */
function sendSignal(pid: number, signal: NodeJS.Signals): boolean {
  try {
    process.kill(pid, signal);
    return true;
  } catch {
    return false;
  }
}

async function exitsWithin(exited: Promise<ExitStatus>, timeoutMs: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<false>((resolve) => {
    timer = setTimeout(() => resolve(false), timeoutMs);
  });
  const result = await Promise.race([exited.then(() => true as const), timeout]);
  clearTimeout(timer);
  return result;
}
