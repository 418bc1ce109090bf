/**
 * The watch: a bidirectional /etcdserverpb.Watch/Watch stream carrying one WatchCreateRequest out and
 * WatchResponses back for as long as it lives. The first response confirms the watch ("created"); until
 * then a failure rejects, after it every failure ends in exactly one onBroken.
 */

import { EtcdError, isAuthTokenError } from "./etcd-errors.js";
import { callError, type EtcdGrpc, type StartedCall } from "./etcd-grpc.js";
import {
  decodeWatchResponse,
  encodeWatchCreateRequest,
  type StoredValue,
  type WatchCreate,
  type WatchMessage,
} from "./etcd-messages.js";
import type { GrpcOutcome } from "./grpc-call.js";
import { GRPC_OK, GRPC_UNAVAILABLE } from "./grpc-status.js";

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

/**
 * A stream silent for this long is taken as dead. etcd sends a progress notification every 10 min by
 * default when asked (progress_notify); a dead peer is noticed far sooner by HTTP/2 PING.
 */
export const WATCH_SILENCE_MS = 3 * 10 * 60 * 1000;

/** Opens a watch and resolves once etcd confirms it, re-authenticating once if etcd refuses the token. */
export async function openWatch(
  grpc: EtcdGrpc,
  create: WatchCreate,
  handlers: PrefixWatchHandlers,
  silenceMs = WATCH_SILENCE_MS,
): Promise<WatchHandle> {
  const deadline = Date.now() + grpc.callTimeoutMs;
  return grpc.withToken(deadline, (token) =>
    grpc.tryEndpoints(deadline, async (endpoint) => {
      const watch = new Watch(grpc, endpoint, token, create, handlers, silenceMs);
      await watch.created(grpc.attemptDeadline(deadline), grpc.attemptMs());
      return watch;
    }),
  );
}

const METHOD = "Watch/Watch";

class Watch implements WatchHandle {
  private state: "creating" | "watching" | "done" = "creating";
  private confirm: { resolve(): void; reject(err: Error): void } | undefined;
  private creationFailure: Error | undefined;
  private silenceTimer: NodeJS.Timeout | undefined;
  private readonly started: StartedCall | undefined;
  private readonly stopKeepAlive: () => void = () => {};

  constructor(
    private readonly grpc: EtcdGrpc,
    private readonly endpoint: string,
    token: string | undefined,
    create: WatchCreate,
    private readonly handlers: PrefixWatchHandlers,
    private readonly silenceMs: number,
  ) {
    try {
      this.started = grpc.start(endpoint, METHOD, token, {
        onMessage: (message) => this.onMessage(message),
        onEnd: (outcome) => this.onEnd(outcome),
      });
    } catch (err) {
      this.fail(new EtcdError(endpoint, (err as Error).message));
      return;
    }
    // Our side stays open, as clientv3's: etcd may take it for the end of the watch otherwise.
    this.started.call.send(encodeWatchCreateRequest(create), false);
    this.stopKeepAlive = grpc.sessions.keepAlive(this.started.session);
    this.armSilenceTimer();
  }

  /** Resolves at the "created" message; rejects if the stream fails first or nothing comes in time. */
  created(deadline: number, timeoutMs: number): Promise<void> {
    if (this.state === "watching") return Promise.resolve();
    if (this.creationFailure) return Promise.reject(this.creationFailure);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(
        () => {
          // A connection not made in time is given up, so the next try connects anew (maybe elsewhere).
          const session = this.started?.session;
          const connecting = session?.connecting ?? false;
          if (connecting) session?.destroy();
          this.fail(
            new EtcdError(this.endpoint, `no watch confirmation within ${timeoutMs} ms`, {
              notSent: connecting,
              timedOut: true,
            }),
          );
        },
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
    this.stop();
  }

  private onMessage(bytes: Buffer): void {
    if (!this.open()) return;
    this.armSilenceTimer();
    let message: WatchMessage;
    try {
      message = decodeWatchResponse(bytes);
    } catch (err) {
      this.fail(`unreadable watch message: ${(err as Error).message}`);
      return;
    }
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
        this.fail(
          new EtcdError(this.endpoint, `watch canceled: ${message.reason}`, {
            tokenRejected: isAuthTokenError(undefined, message.reason),
          }),
        );
        return;
    }
  }

  private onEnd(outcome: GrpcOutcome): void {
    if (outcome.kind === "status" && outcome.status.code === GRPC_OK) {
      this.fail("the watch stream ended");
      return;
    }
    this.fail(callError(this.endpoint, METHOD, outcome, this.grpc.unansweredMeansNotSent(this.started)));
  }

  // Methods, not inline comparisons: a handler may change the state while we look.
  private watching(): boolean {
    return this.state === "watching";
  }

  private open(): boolean {
    return this.state !== "done";
  }

  /** The one way out: rejects creation, or calls onBroken once; never after close(). */
  private fail(what: string | EtcdError): void {
    if (this.state === "done") return;
    const wasCreating = this.state === "creating";
    this.state = "done";
    this.stop();
    const error = typeof what === "string" ? new EtcdError(this.endpoint, what) : what;
    if (wasCreating) {
      this.creationFailure = error;
      this.confirm?.reject(error);
    } else {
      // A member that ended our watch with "no leader" or stopped answering is not where we list again.
      if (error.grpcCode === undefined || error.grpcCode === GRPC_UNAVAILABLE) this.grpc.avoid(this.endpoint);
      this.handlers.onBroken(error.message);
    }
  }

  private stop(): void {
    clearTimeout(this.silenceTimer);
    this.stopKeepAlive();
    this.started?.call.cancel();
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
