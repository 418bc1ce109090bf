/**
 * Runs one Kubernetes API step until it succeeds: transient failures are retried with weft's backoff
 * (at least as long as the server's Retry-After), each distinct failure logged once; a permanent failure
 * is thrown as one clear UserError, unless the caller says it can resolve itself (then it is waited out).
 */
import { setTimeout as delay } from "node:timers/promises";
import { Backoff, type BackoffOptions } from "../retry/backoff.js";
import { describeError } from "../user-error.js";
import { classifyApiFailure, permanentApiError } from "./api-failure.js";
import { KubeApiError } from "./kube-client.js";

export const API_BACKOFF: BackoffOptions = { minMs: 500, maxMs: 10_000 };
/** A server asking for more than this is still retried, just not later than this. */
const MAX_RETRY_AFTER_MS = 60_000;

export interface ApiRetryOptions {
  /** What the step does, for messages: "write the node's flannel annotations". */
  readonly what: string;
  readonly log: (message: string) => void;
  /** Aborted when the caller shuts down: the wait ends and the last error is thrown. */
  readonly signal?: AbortSignal;
  /**
   * For a permanent API error that can resolve itself (our Node not registered yet): the line to log
   * while waiting for it; undefined means stop with the error.
   */
  readonly waitOn?: (err: KubeApiError) => string | undefined;
  /** What a 404 means for this request, for the error when it is not waited out. */
  readonly notFoundHint?: string;
  readonly backoff?: BackoffOptions;
}

export async function retryApi<T>(step: () => Promise<T>, options: ApiRetryOptions): Promise<T> {
  const backoff = new Backoff(options.backoff ?? API_BACKOFF);
  let said = "";
  for (;;) {
    try {
      const result = await step();
      if (said) options.log(`${options.what}: the Kubernetes API answers again`);
      return result;
    } catch (err) {
      if (options.signal?.aborted) throw err;
      const failure = classifyApiFailure(err);
      const waiting = !failure.transient && err instanceof KubeApiError ? options.waitOn?.(err) : undefined;
      if (!failure.transient && waiting === undefined)
        throw permanentApiError(err, options.what, options.notFoundHint);
      const wait = Math.max(
        backoff.next(),
        Math.min(MAX_RETRY_AFTER_MS, (failure.transient && failure.retryAfterMs) || 0),
      );
      const text = waiting ?? `cannot ${options.what}: ${describeError(err)}; retrying`;
      if (text !== said) options.log(waiting ?? `${text} (next try in ${(wait / 1000).toFixed(1)} s)`);
      said = text;
      try {
        await delay(wait, undefined, options.signal ? { signal: options.signal } : undefined);
      } catch {
        throw err;
      }
    }
  }
}
