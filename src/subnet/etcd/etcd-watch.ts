/**
 * The streaming watch: POST /v3/watch with a create_request, then read newline-delimited JSON messages
 * ({"result":{...}}) for as long as the stream lives. The first message confirms the watch ("created");
 * until then a failure rejects, after it every failure ends in exactly one onBroken.
 */
import { describeSocketError, EtcdError, isAuthTokenError } from "./etcd-errors.js";
import type { EtcdHttp, Exchange } from "./etcd-http.js";
import { parseWatchMessage, type StoredValue, type WatchMessage } from "./etcd-json.js";

export interface PrefixWatchHandlers {
  onPut(kv: StoredValue): void;
  onDelete(key: string, revision: bigint): void;
  /** The watch stream broke (disconnect, cancel, compaction): the caller re-lists and watches anew. */
  onBroken(reason: string): void;
}

export interface WatchHandle {
  /** Ends the watch; no handler is called after it. */
  close(): Promise<void>;
}

/** mvccpb-shaped create_request, keys already base64 and revisions as strings. */
export interface WatchCreateRequest {
  readonly key: string;
  readonly range_end: string;
  readonly start_revision: string;
  readonly progress_notify: boolean;
}

/**
 * A stream silent for this long is taken as dead. etcd sends a progress notification every 10 min by
 * default when asked (progress_notify); dead peers are normally noticed far sooner by TCP keepalive.
 */
export const WATCH_SILENCE_MS = 3 * 10 * 60 * 1000;

/** Splits a byte stream into lines at "\n" (which never occurs inside a UTF-8 multi-byte character). */
export class LineSplitter {
  private pending: Buffer[] = [];

  push(chunk: Buffer): string[] {
    const lines: string[] = [];
    let start = 0;
    for (let end = chunk.indexOf(0x0a); end !== -1; end = chunk.indexOf(0x0a, start)) {
      this.pending.push(chunk.subarray(start, end));
      const line = Buffer.concat(this.pending).toString("utf8").trim();
      this.pending = [];
      if (line !== "") lines.push(line);
      start = end + 1;
    }
    if (start < chunk.length) this.pending.push(chunk.subarray(start));
    return lines;
  }
}

/** Opens a watch and resolves once etcd confirms it, re-authenticating once if etcd refuses the token. */
export async function openWatch(
  http: EtcdHttp,
  createRequest: WatchCreateRequest,
  handlers: PrefixWatchHandlers,
  silenceMs = WATCH_SILENCE_MS,
): Promise<WatchHandle> {
  const deadline = Date.now() + http.callTimeoutMs;
  return http.withToken(deadline, async (token) => {
    const exchange = await http.openStream("/v3/watch", { create_request: createRequest }, token, deadline);
    const watch = new Watch(exchange, handlers, silenceMs);
    try {
      await watch.created(deadline, http.callTimeoutMs);
    } catch (err) {
      void watch.close();
      throw err;
    }
    return watch;
  });
}

class Watch implements WatchHandle {
  private state: "creating" | "watching" | "done" = "creating";
  private confirm: { resolve(): void; reject(err: Error): void } | undefined;
  private creationFailure: Error | undefined;
  private silenceTimer: NodeJS.Timeout | undefined;
  private readonly lines = new LineSplitter();
  private readonly endpoint: string;

  constructor(
    private readonly exchange: Exchange,
    private readonly handlers: PrefixWatchHandlers,
    private readonly silenceMs: number,
  ) {
    this.endpoint = exchange.endpoint;
    const { request, response } = exchange;
    response.on("data", (chunk: Buffer) => this.onData(chunk));
    response.on("end", () => this.fail("the watch stream ended"));
    response.on("close", () => this.fail("the watch connection closed"));
    response.on("error", (err) => this.fail(describeSocketError(err)));
    request.on("error", (err) => this.fail(describeSocketError(err)));
    this.armSilenceTimer();
  }

  /** Resolves at the "created" message; rejects if the stream fails first or nothing comes in time. */
  created(deadline: number, timeoutMs: number): Promise<void> {
    if (this.state === "watching") return Promise.resolve();
    if (this.creationFailure) return Promise.reject(this.creationFailure);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(
        () => this.fail(`no watch confirmation within ${timeoutMs} ms`),
        Math.max(1, deadline - Date.now()),
      );
      this.confirm = {
        resolve: () => {
          clearTimeout(timer);
          resolve();
        },
        reject: (err) => {
          clearTimeout(timer);
          reject(err);
        },
      };
    });
  }

  async close(): Promise<void> {
    if (this.state === "done") return;
    this.state = "done";
    clearTimeout(this.silenceTimer);
    this.exchange.request.destroy();
  }

  private onData(chunk: Buffer): void {
    if (!this.open()) return;
    this.armSilenceTimer();
    for (const line of this.lines.push(chunk)) {
      this.onMessage(parseWatchMessage(line));
      if (!this.open()) return;
    }
  }

  private onMessage(message: WatchMessage): void {
    switch (message.kind) {
      case "created":
        if (this.state === "creating") {
          this.state = "watching";
          this.confirm?.resolve();
        }
        return;
      case "progress":
        return;
      case "events":
        if (this.state !== "watching") {
          this.fail("etcd sent events before confirming the watch");
          return;
        }
        for (const event of message.events) {
          // A handler may close the watch: nothing more after that.
          if (!this.watching()) return;
          if (event.type === "put") this.handlers.onPut(event.kv);
          else this.handlers.onDelete(event.key, event.revision);
        }
        return;
      case "canceled":
        this.fail(`watch canceled: ${message.reason}`, isAuthTokenError(undefined, message.reason));
        return;
      case "error":
        this.fail(message.message, isAuthTokenError(message.grpcCode, message.message));
        return;
    }
  }

  // Methods, not inline comparisons: a handler may change the state while we look.
  private watching(): boolean {
    return this.state === "watching";
  }

  private open(): boolean {
    return this.state !== "done";
  }

  /** The one way out: rejects creation, or calls onBroken once; never after close(). */
  private fail(what: string, tokenRejected = false): void {
    if (this.state === "done") return;
    const wasCreating = this.state === "creating";
    this.state = "done";
    clearTimeout(this.silenceTimer);
    this.exchange.request.destroy();
    const error = new EtcdError(this.endpoint, what, { tokenRejected });
    if (wasCreating) {
      this.creationFailure = error;
      this.confirm?.reject(error);
    } else {
      this.handlers.onBroken(error.message);
    }
  }

  private armSilenceTimer(): void {
    clearTimeout(this.silenceTimer);
    this.silenceTimer = setTimeout(() => {
      const ms = this.silenceMs;
      this.fail(`nothing from the watch stream for ${ms % 60_000 === 0 ? `${ms / 60_000} min` : `${ms} ms`}`);
    }, this.silenceMs);
    this.silenceTimer.unref();
  }
}
