/**
 * The one retry policy of weft: exponential backoff with jitter, reset after success. Every loop that
 * retries a store, an API or the kernel uses it, so all of them back off alike and none spins.
 */

export interface BackoffOptions {
  /** First delay. */
  readonly minMs: number;
  /** Delays stop growing here. */
  readonly maxMs: number;
  /** Growth per failure; 2 by default. */
  readonly factor?: number;
  /** Fraction of each delay that is random (0..1), so many hosts do not retry in step; 0.2 by default. */
  readonly jitter?: number;
  readonly random?: () => number;
}

export class Backoff {
  private current: number;

  constructor(private readonly options: BackoffOptions) {
    this.current = options.minMs;
  }

  /** The delay to wait before the next attempt; each call grows the one after it. */
  next(): number {
    const { maxMs, factor = 2, jitter = 0.2, random = Math.random } = this.options;
    const base = this.current;
    this.current = Math.min(maxMs, base * factor);
    return Math.round(base * (1 - jitter + jitter * random()));
  }

  /** After a success: start again from the shortest delay. */
  reset(): void {
    this.current = this.options.minMs;
  }
}

export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

export interface RetryOptions {
  readonly backoff: BackoffOptions;
  /** Logs each distinct failure once (message, the delay before the next try). */
  readonly onFailure?: (err: unknown, delayMs: number, attempt: number) => void;
  /** True: stop retrying and throw (the caller is shutting down). */
  readonly stopped?: () => boolean;
  /** True for errors that retrying cannot fix: thrown at once. */
  readonly isFatal?: (err: unknown) => boolean;
  /** Give up after this many attempts (default: never). */
  readonly attempts?: number;
}

/** Runs `step` until it succeeds, backing off between failures. */
export async function retry<T>(step: () => Promise<T>, options: RetryOptions): Promise<T> {
  const backoff = new Backoff(options.backoff);
  for (let attempt = 1; ; attempt++) {
    try {
      return await step();
    } catch (err) {
      if (options.stopped?.() || options.isFatal?.(err)) throw err;
      if (options.attempts !== undefined && attempt >= options.attempts) throw err;
      const delay = backoff.next();
      options.onFailure?.(err, delay, attempt);
      await sleep(delay);
    }
  }
}

/**
 * An onFailure for retry() that logs each distinct failure once, as "<what>: <error>; retrying", so a
 * wait of hours leaves one line per cause, not one per attempt.
 */
export function logEachDistinct(
  log: (message: string) => void,
  what: string,
  describe: (err: unknown) => string,
): NonNullable<RetryOptions["onFailure"]> {
  let last = "";
  return (err, delayMs) => {
    const text = describe(err);
    if (text !== last) log(`${what}: ${text}; retrying (next in ${(delayMs / 1000).toFixed(1)} s)`);
    last = text;
  };
}
