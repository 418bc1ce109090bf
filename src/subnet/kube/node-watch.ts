/**
 * Keeps every Node (slimmed to what weft needs) up to date from the API without losing a change: list at
 * resourceVersion=0, then watch from the list's resourceVersion with bookmarks, as client-go's reflector
 * does for flanneld (same request pattern). A watch that ends cleanly resumes from the last
 * resourceVersion seen (bookmarks keep it fresh); 410 Gone or any error means re-list and diff.
 */

import { KubeApiError, type KubeClient, type WatchEvent } from "../../kube/kube-client.js";
import { describeError } from "../../user-error.js";
import { type KubeNode, toKubeNode } from "./kube-node.js";

export interface NodeWatchHandlers {
  /** The full set after a (re-)list, and after each watch event. */
  onChange(nodes: ReadonlyMap<string, KubeNode>, changed: readonly string[]): void;
  onWarning(message: string): void;
}

const RETRY_MIN_MS = 500;
const RETRY_MAX_MS = 5000;

interface NodeList {
  metadata?: { resourceVersion?: string; continue?: string };
  items?: unknown[];
}

export class NodeWatch {
  readonly nodes = new Map<string, KubeNode>();
  private closed = false;
  private stopCurrent: (() => void) | undefined;
  private synced = false;
  private readonly syncWaiters: (() => void)[] = [];
  private wake: (() => void) | undefined;

  constructor(
    private readonly client: KubeClient,
    private readonly annotationPrefix: string,
    private readonly handlers: NodeWatchHandlers,
  ) {}

  start(): void {
    void this.loop();
  }

  /** Resolves after the first successful list. */
  whenSynced(): Promise<void> {
    if (this.synced) return Promise.resolve();
    return new Promise((resolve) => this.syncWaiters.push(resolve));
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

  private async loop(): Promise<void> {
    let retryMs = RETRY_MIN_MS;
    let rv: string | undefined;
    while (!this.closed) {
      try {
        if (rv === undefined) {
          const before = new Map(this.nodes);
          rv = await this.list();
          if (this.closed) return;
          const changed = [...new Set([...before.keys(), ...this.nodes.keys()])].filter(
            (name) => before.get(name)?.resourceVersion !== this.nodes.get(name)?.resourceVersion,
          );
          if (!this.synced) {
            this.synced = true;
            for (const resolve of this.syncWaiters.splice(0)) resolve();
          }
          this.handlers.onChange(this.nodes, changed);
        }
        const outcome = await this.watchFrom(rv);
        if (outcome.kind === "resume") {
          rv = outcome.rv;
          retryMs = RETRY_MIN_MS;
          continue;
        }
        this.handlers.onWarning(`node watch interrupted (${outcome.reason}); re-listing nodes`);
        rv = undefined;
        if (outcome.backoff) await this.sleep(retryMs);
        retryMs = outcome.backoff ? Math.min(retryMs * 2, RETRY_MAX_MS) : RETRY_MIN_MS;
      } catch (err) {
        if (this.closed) return;
        rv = undefined;
        this.handlers.onWarning(`cannot list nodes (${describeError(err)}); retrying in ${retryMs} ms`);
        await this.sleep(retryMs);
        retryMs = Math.min(retryMs * 2, RETRY_MAX_MS);
      }
    }
  }

  /** One watch request; says whether to resume from a resourceVersion or re-list. */
  private async watchFrom(
    rv: string,
  ): Promise<{ kind: "resume"; rv: string } | { kind: "relist"; reason: string; backoff: boolean }> {
    // client-go picks the timeout at random in [5 min, 10 min) so watches of many clients do not end together.
    const timeoutSeconds = 300 + Math.floor(Math.random() * 300);
    const path =
      `/api/v1/nodes?allowWatchBookmarks=true&resourceVersion=${encodeURIComponent(rv)}` +
      `&timeout=${Math.floor(timeoutSeconds / 60)}m${timeoutSeconds % 60}s&timeoutSeconds=${timeoutSeconds}&watch=true`;
    let last = rv;
    let failure: { reason: string; backoff: boolean } | undefined;
    let handle: Awaited<ReturnType<KubeClient["watch"]>>;
    try {
      handle = await this.client.watch(path, (event) => {
        if (failure) return;
        const result = this.apply(event);
        if (typeof result === "string") last = result;
        else if (result) {
          failure = result;
          handle?.close();
        }
      });
    } catch (err) {
      if (err instanceof KubeApiError && err.code === 410)
        return { kind: "relist", reason: "resourceVersion too old (410 Gone)", backoff: false };
      return { kind: "relist", reason: describeError(err), backoff: true };
    }
    this.stopCurrent = () => handle.close();
    const done = await handle.done;
    this.stopCurrent = undefined;
    if (failure) return { kind: "relist", ...failure };
    if (this.closed) return { kind: "resume", rv: last };
    if (done === "end") return { kind: "resume", rv: last };
    return { kind: "relist", reason: done.message, backoff: true };
  }

  /** Applies one event: the new resourceVersion, or why the watch must stop. */
  private apply(event: WatchEvent): string | { reason: string; backoff: boolean } | undefined {
    const object = event.object as {
      metadata?: { resourceVersion?: string };
      code?: number;
      message?: string;
    };
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
        return object.metadata?.resourceVersion || undefined;
      case "ERROR":
        if (object.code === 410)
          return { reason: `resourceVersion too old (410 Gone: ${object.message ?? ""})`, backoff: false };
        return {
          reason: `the API sent an error: ${object.message ?? JSON.stringify(object)}`,
          backoff: true,
        };
      default:
        return { reason: `unknown watch event type ${JSON.stringify(event.type)}`, backoff: true };
    }
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(resolve, ms);
      this.wake = () => {
        clearTimeout(timer);
        resolve();
      };
    });
  }

  close(): void {
    this.closed = true;
    this.stopCurrent?.();
    this.wake?.();
  }
}
