/**
 * Keeps every Node (slimmed to what weft needs) up to date from the API without losing a change: list at
 * resourceVersion=0, then watch from the list's resourceVersion with bookmarks, as client-go's reflector
 * does for flanneld (same request pattern). A watch that ends, breaks or goes silent (a half-open
 * connection) resumes from the last resourceVersion seen (bookmarks keep it fresh); 410 Gone or an error
 * event means re-list and diff. Transient API failures are retried with backoff for ever; a permanent one
 * before the first list (RBAC, credentials) fails whenSynced with one clear error.
 */

import { classifyApiFailure, permanentApiError } from "../../kube/api-failure.js";
import { API_BACKOFF } from "../../kube/api-retry.js";
import {
  KubeApiError,
  type KubeClient,
  KubeWatchIdleError,
  WATCH_IDLE_MS,
  type WatchEvent,
} from "../../kube/kube-client.js";
import { Backoff } from "../../retry/backoff.js";
import { boundText, describeValue } from "../../text/untrusted-text.js";
import { describeError } from "../../user-error.js";
import { type KubeNode, toKubeNode } from "./kube-node.js";

export interface NodeWatchHandlers {
  /** The full set after a (re-)list, and after each watch event. */
  onChange(nodes: ReadonlyMap<string, KubeNode>, changed: readonly string[]): void;
  onWarning(message: string): void;
}

export interface NodeWatchOptions {
  /** Cut a watch that carried nothing for this long (WATCH_IDLE_MS by default). */
  readonly idleMs?: number;
}

interface NodeList {
  metadata?: { resourceVersion?: string; continue?: string };
  items?: unknown[];
}

/** alive: the stream carried at least one event or bookmark, so the API was answering. */
type WatchOutcome = { alive: boolean } & (
  | { kind: "resume"; rv: string; reason?: string; backoff: boolean; retryAfterMs?: number }
  | { kind: "relist"; reason: string; backoff: boolean }
);

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

export class NodeWatch {
  readonly nodes = new Map<string, KubeNode>();
  private closed = false;
  private stopCurrent: (() => void) | undefined;
  private synced = false;
  private failure: Error | undefined;
  private readonly syncWaiters: { resolve: () => void; reject: (err: Error) => void }[] = [];
  private wake: (() => void) | undefined;
  private said = "";
  private listFailed = false;

  constructor(
    private readonly client: KubeClient,
    private readonly annotationPrefix: string,
    private readonly handlers: NodeWatchHandlers,
    private readonly options: NodeWatchOptions = {},
  ) {}

  start(): void {
    void this.loop();
  }

  /** Resolves after the first successful list; rejects if the first list failed permanently. */
  whenSynced(): Promise<void> {
    if (this.synced) return Promise.resolve();
    if (this.failure) return Promise.reject(this.failure);
    return new Promise((resolve, reject) => this.syncWaiters.push({ resolve, reject }));
  }

  private async list(): Promise<string> {
    // flanneld's reflector: limit=500&resourceVersion=0 (served from the API's cache); follow continue if paged.
    let path = "/api/v1/nodes?limit=500&resourceVersion=0";
    const fresh = new Map<string, KubeNode>();
    let rv = "";
    for (;;) {
      const page = await this.client.request<NodeList>("GET", path);
      for (const item of page.items ?? []) {
        const node = toKubeNode(item, this.annotationPrefix);
        if (node) fresh.set(node.name, node);
      }
      rv = page.metadata?.resourceVersion ?? rv;
      const token = page.metadata?.continue;
      if (!token) break;
      path = `/api/v1/nodes?limit=500&continue=${encodeURIComponent(token)}`;
    }
    this.nodes.clear();
    for (const [name, node] of fresh) this.nodes.set(name, node);
    return rv;
  }

  /** Logs each distinct trouble once (a long outage is one line, not one per retry). */
  private warn(message: string): void {
    if (message === this.said) return;
    this.said = message;
    this.handlers.onWarning(message);
  }

  private async loop(): Promise<void> {
    const backoff = new Backoff(API_BACKOFF);
    let rv: string | undefined;
    while (!this.closed) {
      if (rv === undefined) {
        try {
          const before = new Map(this.nodes);
          rv = await this.list();
          if (this.closed) return;
          const changed = [...new Set([...before.keys(), ...this.nodes.keys()])].filter(
            (name) => before.get(name)?.resourceVersion !== this.nodes.get(name)?.resourceVersion,
          );
          if (this.listFailed)
            this.handlers.onWarning(`listed ${this.nodes.size} node(s): the Kubernetes API answers again`);
          this.listFailed = false;
          this.said = "";
          this.failure = undefined;
          if (!this.synced) {
            this.synced = true;
            for (const waiter of this.syncWaiters.splice(0)) waiter.resolve();
          }
          this.handlers.onChange(this.nodes, changed);
        } catch (err) {
          if (this.closed) return;
          this.listFailed = true;
          const failure = classifyApiFailure(err);
          const wait = Math.max(backoff.next(), (failure.transient && failure.retryAfterMs) || 0);
          if (failure.transient) {
            this.warn(`cannot list nodes (${describeError(err)}); retrying`);
          } else {
            const error = permanentApiError(err, "list nodes");
            if (!this.synced) {
              this.failure = error;
              for (const waiter of this.syncWaiters.splice(0)) waiter.reject(error);
            }
            // After the first list the datapath keeps its last peers while we keep trying.
            this.warn(`${describeError(error)}; retrying`);
          }
          await this.sleep(wait);
          continue;
        }
      }
      const outcome = await this.watchFrom(rv);
      if (this.closed) return;
      if (outcome.alive) {
        backoff.reset();
        this.said = "";
      }
      if (outcome.kind === "resume") {
        rv = outcome.rv;
        if (outcome.reason) this.warn(`node watch interrupted (${outcome.reason}); resuming`);
        if (outcome.backoff) await this.sleep(Math.max(backoff.next(), outcome.retryAfterMs ?? 0));
        continue;
      }
      this.warn(`node watch interrupted (${outcome.reason}); re-listing nodes`);
      rv = undefined;
      if (outcome.backoff) await this.sleep(backoff.next());
    }
  }

  /** One watch request; says whether to resume from a resourceVersion or re-list. */
  private async watchFrom(rv: string): Promise<WatchOutcome> {
    // client-go picks the timeout at random in [5 min, 10 min) so watches of many clients do not end together.
    const timeoutSeconds = 300 + Math.floor(Math.random() * 300);
    const path =
      `/api/v1/nodes?allowWatchBookmarks=true&resourceVersion=${encodeURIComponent(rv)}` +
      `&timeout=${Math.floor(timeoutSeconds / 60)}m${timeoutSeconds % 60}s&timeoutSeconds=${timeoutSeconds}&watch=true`;
    let last = rv;
    let alive = false;
    let failure: { reason: string; backoff: boolean } | undefined;
    let handle: Awaited<ReturnType<KubeClient["watch"]>>;
    try {
      handle = await this.client.watch(
        path,
        (event) => {
          if (failure) return;
          alive = true;
          const result = this.apply(event);
          if (typeof result === "string") last = result;
          else if (result) {
            failure = result;
            handle?.close();
          }
        },
        this.options.idleMs ?? WATCH_IDLE_MS,
      );
    } catch (err) {
      if (err instanceof KubeApiError && err.code === 410)
        return { kind: "relist", reason: "resourceVersion too old (410 Gone)", backoff: false, alive };
      // The list worked and its resourceVersion is still good, so try the watch again from it, whether
      // the API is busy or away (as client-go does for refusals and 429) or refuses the watch (RBAC: said
      // once, clearly, while the peers listed stay programmed).
      const failure = classifyApiFailure(err);
      return {
        kind: "resume",
        alive,
        rv,
        reason: describeError(failure.transient ? err : permanentApiError(err, "watch nodes")),
        backoff: true,
        ...(failure.transient && failure.retryAfterMs !== undefined
          ? { retryAfterMs: failure.retryAfterMs }
          : {}),
      };
    }
    this.stopCurrent = () => handle.close();
    const done = await handle.done;
    this.stopCurrent = undefined;
    if (failure) return { kind: "relist", alive, ...failure };
    // A clean end (the server's timeoutSeconds) resumes at once, unless it came with nothing at all.
    if (this.closed || done === "end") return { kind: "resume", rv: last, backoff: !alive, alive };
    // A broken or silent stream: nothing was lost up to `last`, so carry on from there.
    return {
      kind: "resume",
      alive,
      rv: last,
      reason: done.message,
      backoff: !(done instanceof KubeWatchIdleError),
    };
  }

  /**
   * Applies one event: the new resourceVersion, or why the watch must stop. It runs in the stream's data
   * callback, where a throw would end weftd, so a line of any shape (null, a number, an event without an
   * object) is read defensively, and what it carries is bounded before it reaches a log line.
   */
  private apply(event: WatchEvent): string | { reason: string; backoff: boolean } | undefined {
    if (!isRecord(event)) {
      return { reason: `the watch sent ${describeValue(event)} instead of an event`, backoff: true };
    }
    const object = (isRecord(event.object) ? event.object : {}) as {
      metadata?: { resourceVersion?: unknown };
      code?: unknown;
      message?: unknown;
    };
    const message = typeof object.message === "string" ? boundText(object.message, 300) : undefined;
    const metadata = isRecord(object.metadata) ? object.metadata : {};
    switch (event.type) {
      case "ADDED":
      case "MODIFIED": {
        const node = toKubeNode(event.object, this.annotationPrefix);
        if (!node) return undefined;
        this.nodes.set(node.name, node);
        this.handlers.onChange(this.nodes, [node.name]);
        return node.resourceVersion || undefined;
      }
      case "DELETED": {
        const node = toKubeNode(event.object, this.annotationPrefix);
        if (!node) return undefined;
        this.nodes.delete(node.name);
        this.handlers.onChange(this.nodes, [node.name]);
        return node.resourceVersion || undefined;
      }
      case "BOOKMARK":
        return typeof metadata.resourceVersion === "string"
          ? metadata.resourceVersion || undefined
          : undefined;
      case "ERROR":
        if (object.code === 410)
          return { reason: `resourceVersion too old (410 Gone: ${message ?? ""})`, backoff: false };
        return {
          reason: `the API sent an error: ${message ?? describeValue(event.object)}`,
          backoff: true,
        };
      default:
        return { reason: `unknown watch event type ${describeValue(event.type)}`, backoff: true };
    }
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(resolve, ms);
      this.wake = () => {
        clearTimeout(timer);
        resolve();
      };
      if (this.closed) this.wake();
    });
  }

  close(): void {
    this.closed = true;
    this.stopCurrent?.();
    this.wake?.();
  }
}
