/**
 * strongSwan's charon as weftd's child, as flanneld runs it: found on flannel's list of paths (or
 * WEFT_CHARON), started with weftd's environment (STRONGSWAN_CONF chooses its config), told to stop
 * with SIGTERM when weftd stops. weft also restarts it when it dies (flanneld does not), with backoff,
 * and reaches it over VICI on its socket (WEFT_CHARON_VICI, default charon's /var/run/charon.vici).
 */
import { type ChildProcess, spawn } from "node:child_process";
import { accessSync, constants } from "node:fs";
import { delimiter, join } from "node:path";
import { UserError } from "../../user-error.js";
import { ViciClient } from "../../vici/vici-client.js";

/** flannel's search list: PATH, then where distributions put charon. */
const CHARON_PATHS = [
  "/usr/lib/strongswan/charon",
  "/usr/lib/ipsec/charon",
  "/usr/libexec/strongswan/charon",
  "/usr/libexec/ipsec/charon",
];
export const DEFAULT_VICI_SOCKET = "/var/run/charon.vici";

export function findCharon(env: NodeJS.ProcessEnv): string {
  const executable = (path: string) => {
    try {
      accessSync(path, constants.X_OK);
      return true;
    } catch {
      return false;
    }
  };
  if (env.WEFT_CHARON) {
    if (executable(env.WEFT_CHARON)) return env.WEFT_CHARON;
    throw new UserError(`WEFT_CHARON=${env.WEFT_CHARON} is not an executable file`);
  }
  const onPath = (env.PATH ?? "")
    .split(delimiter)
    .filter(Boolean)
    .map((dir) => join(dir, "charon"));
  const found = [...onPath, ...CHARON_PATHS].find(executable);
  if (!found)
    throw new UserError(
      `the ipsec backend needs strongSwan's charon, found neither on PATH nor in ${CHARON_PATHS.join(", ")}: install strongswan-charon (Debian) or set WEFT_CHARON`,
    );
  return found;
}

export interface CharonOptions {
  readonly path: string;
  readonly socket: string;
  readonly log: (message: string) => void;
  readonly warn: (message: string) => void;
  /** Runs after each start once VICI answers (weft loads our own PSK here). */
  readonly onReady: (client: ViciClient) => Promise<void>;
}

export class CharonProcess {
  private child: ChildProcess | undefined;
  private client: ViciClient | undefined;
  private closing = false;
  private restartDelay = 1000;
  private restartTimer: NodeJS.Timeout | undefined;
  private ready: Promise<void> | undefined;
  private connecting: Promise<ViciClient> | undefined;
  /** Times charon was started; a test reads it after killing charon. */
  starts = 0;

  constructor(private readonly options: CharonOptions) {}

  get pid(): number | undefined {
    return this.child?.pid;
  }

  start(): void {
    if (this.closing) return;
    const child = spawn(this.options.path, [], { stdio: ["ignore", "inherit", "inherit"] });
    this.child = child;
    this.starts++;
    this.ready = undefined;
    this.options.log(`started charon (${this.options.path}, pid ${child.pid})`);
    child.once("error", (error) => this.options.warn(`charon: ${error.message}`));
    // After a restart, reload our PSK and connections as soon as VICI answers, not at the next full run.
    if (this.starts > 1)
      void this.vici().catch((error: Error) => this.options.warn(`charon after restart: ${error.message}`));
    child.once("exit", (code, signal) => {
      if (this.child === child) this.child = undefined;
      this.client?.close();
      this.client = undefined;
      if (this.closing) return;
      this.options.warn(
        `charon exited (${signal ?? `code ${code}`}); starting it again in ${this.restartDelay / 1000} s`,
      );
      this.restartTimer = setTimeout(() => this.start(), this.restartDelay);
      this.restartDelay = Math.min(this.restartDelay * 2, 30_000);
    });
  }

  /** A VICI client on the running charon, waiting up to `waitMs` for its socket after a start. */
  async vici(waitMs = 10_000): Promise<ViciClient> {
    if (this.client && !this.client.closed) {
      await this.ready;
      return this.client;
    }
    // One connection attempt at a time, so onReady runs once per charon.
    this.connecting ??= this.connect(waitMs).finally(() => {
      this.connecting = undefined;
    });
    return this.connecting;
  }

  private async connect(waitMs: number): Promise<ViciClient> {
    const deadline = Date.now() + waitMs;
    for (;;) {
      if (!this.child) throw new Error("charon is not running");
      try {
        const client = await ViciClient.open(this.options.socket);
        this.client = client;
        this.ready = this.options.onReady(client).then(() => {
          this.restartDelay = 1000;
        });
        await this.ready;
        return client;
      } catch (error) {
        this.client?.close();
        this.client = undefined;
        if (Date.now() >= deadline)
          throw new Error(
            `charon's VICI socket ${this.options.socket} does not answer: ${(error as Error).message}`,
          );
        await new Promise((r) => setTimeout(r, 200));
      }
    }
  }

  /** SIGTERM and wait (bounded) for charon to go, as flanneld does on shutdown. */
  async close(): Promise<void> {
    this.closing = true;
    clearTimeout(this.restartTimer);
    this.client?.close();
    const child = this.child;
    if (!child || child.exitCode !== null) return;
    const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
    child.kill("SIGTERM");
    const timer = setTimeout(() => child.kill("SIGKILL"), 5000);
    await exited;
    clearTimeout(timer);
  }
}
