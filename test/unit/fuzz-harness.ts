/**
 * The fuzz suite's runner: fast-check properties with a fixed number of runs and a time bound each, the
 * seed printed on every run (and the seed and shrink path on failure), and the checks every area shares:
 * only weft's own error types may escape, with a bounded one-line message, and no single call may take
 * long enough to look like a hang or a blow-up.
 *
 * FUZZ_SEED=<n> replays a run: each property's seed is derived from it and the property's name, so a
 * failure replays alone too (--test-name-pattern), and FUZZ_PATH=<path> starts at the failing input.
 * FUZZ_RUNS=<n> overrides every property's number of runs (for long local runs; the time bound grows with
 * it). FUZZ_RUN_KNOWN=1 also runs the properties skipped for known findings. Failures are not shrunk (a
 * 1 MB input shrinks slowly); FUZZ_SHRINK=1 shrinks them.
 */
import type { TestContext } from "node:test";
import { Worker } from "node:worker_threads";
import fc from "fast-check";
import { boundText } from "../../src/text/untrusted-text.js";

/** The longest message (and hint, details) an error may carry, whatever the input's size. */
export const MESSAGE_MAX = 1000;

/** A single call slower than this is reported as a hang or a super-linear blow-up (generous: CI is shared). */
export const CALL_TIME_MAX_MS = 5000;

/** A run still going after this long is a hang nothing inside the process can interrupt: the watchdog ends it. */
const HANG_MS = 30_000;

// C0 (newline included: a message is one line), DEL, C1, and the Unicode line/paragraph separators.
const CONTROL = /[\u0000-\u001f\u007f-\u009f\u2028\u2029]/;

const envSeed = process.env["FUZZ_SEED"];
const envRuns = process.env["FUZZ_RUNS"];
const envPath = process.env["FUZZ_PATH"];
/** The runner to replay with: the same seed gives the same inputs on both (t.fullName is the same). */
const TEST_COMMAND = process.versions["bun"] ? "bun test --timeout=300000" : "node --test";
const seedBase =
  envSeed !== undefined && envSeed !== "" ? Number(envSeed) | 0 : Date.now() ^ (process.pid << 8);

/** A property's seed: the run's seed mixed with its name (FNV-1a), independent of which others run. */
function propertySeed(name: string): number {
  let hash = 0x811c9dc5;
  for (let i = 0; i < name.length; i++) hash = Math.imul(hash ^ name.charCodeAt(i), 0x01000193);
  return (seedBase ^ hash) | 0;
}

export interface PropertyOptions {
  /** Runs for this property (FUZZ_RUNS overrides it). */
  readonly runs: number;
  /** Wall-clock bound for all of the property's runs; runs stop (and pass) when it is spent. */
  readonly timeLimitMs?: number;
}

/** An error type an area is allowed to throw, with why (for the failure message). */
export type ErrorClass = abstract new (...args: never[]) => Error;

/** Why a thrown value is a finding, or undefined when it is one of the allowed, bounded errors. */
export function errorFinding(
  err: unknown,
  allowed: readonly ErrorClass[],
  checkText = true,
): string | undefined {
  if (!(err instanceof Error)) return `threw a non-Error: ${typeof err}`;
  const name = err.constructor?.name ?? "Error";
  if (!allowed.some((type) => err instanceof type && isExactlyAllowed(err, type, allowed))) {
    return `${name} escaped (allowed: ${allowed.map((t) => t.name).join(", ")}): ${clip(err.message)}`;
  }
  if (!checkText) return undefined;
  for (const [field, text] of errorTexts(err)) {
    const finding = textFinding(text);
    if (finding) return `${name}.${field} ${finding}: ${clip(text)}`;
  }
  return undefined;
}

/**
 * `Error` itself may be on an allowed list (the CNI plugin's upstream-worded errors), but then only a plain
 * Error matches it: a TypeError or RangeError is an Error too and must not pass as one.
 */
function isExactlyAllowed(err: Error, type: ErrorClass, allowed: readonly ErrorClass[]): boolean {
  if (type !== Error) return true;
  return err.constructor === Error || allowed.some((t) => t !== Error && err instanceof t);
}

function errorTexts(err: Error): Array<[string, string]> {
  const texts: Array<[string, string]> = [["message", err.message]];
  for (const field of ["hint", "details"]) {
    const value = (err as unknown as Record<string, unknown>)[field];
    if (typeof value === "string") texts.push([field, value]);
  }
  return texts;
}

/** Why a text that may reach a log line or a user is not acceptable, or undefined. */
export function textFinding(text: string): string | undefined {
  if (text.length > MESSAGE_MAX) return `is ${text.length} characters long (max ${MESSAGE_MAX})`;
  const control = CONTROL.exec(text);
  if (control)
    return `holds the raw control character U+${control[0].charCodeAt(0).toString(16).padStart(4, "0")}`;
  return undefined;
}

/** Quoted, cut and with every control character escaped, so a report can neither flood nor forge a line. */
function clip(text: string, max = 300): string {
  return `"${boundText(text, max)}"`;
}

/**
 * Fails (throws) when `fn` throws anything but an allowed, bounded error; returns its result or undefined.
 * `checkText: false` checks the error's type only (while a known unbounded message awaits its fix).
 */
export function onlyOwnErrors<T>(
  allowed: readonly ErrorClass[],
  fn: () => T,
  options: { checkText?: boolean } = {},
): T | undefined {
  const started = performance.now();
  try {
    return fn();
  } catch (err) {
    const finding = errorFinding(err, allowed, options.checkText ?? true);
    if (finding) throw new FuzzFinding(finding, err);
    return undefined;
  } finally {
    checkElapsed(started);
  }
}

/** The async form: also bounds the call's wall-clock time, so an awaited hang fails instead of stalling. */
export async function onlyOwnErrorsAsync<T>(
  allowed: readonly ErrorClass[],
  fn: () => Promise<T>,
): Promise<T | undefined> {
  const started = performance.now();
  let timer: NodeJS.Timeout | undefined;
  const hang = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new FuzzFinding(`did not settle within ${CALL_TIME_MAX_MS} ms (a hang)`)),
      CALL_TIME_MAX_MS,
    );
  });
  try {
    return await Promise.race([fn(), hang]);
  } catch (err) {
    if (err instanceof FuzzFinding) throw err;
    const finding = errorFinding(err, allowed);
    if (finding) throw new FuzzFinding(finding, err);
    return undefined;
  } finally {
    clearTimeout(timer);
    checkElapsed(started);
  }
}

/** Fails when a text that goes to a log or a user (a warning, a skip reason) is unbounded or multi-line. */
export function assertBoundedText(what: string, text: string | undefined): void {
  if (text === undefined) return;
  const finding = textFinding(text);
  if (finding) throw new FuzzFinding(`${what} ${finding}: ${clip(text)}`);
}

function checkElapsed(started: number): void {
  const ms = performance.now() - started;
  if (ms > CALL_TIME_MAX_MS) throw new FuzzFinding(`one call took ${Math.round(ms)} ms (a hang or blow-up)`);
}

/**
 * The options for a property that fails on a known finding another branch is fixing: skipped, naming the
 * finding, unless FUZZ_RUN_KNOWN=1 (to see which of them pass once the fixes are merged).
 */
export function known(finding: string): { skip?: string } {
  return process.env["FUZZ_RUN_KNOWN"] === "1" ? {} : { skip: finding };
}

/** A property violation, with the escaping error's stack kept for the report. */
export class FuzzFinding extends Error {
  constructor(message: string, cause?: unknown) {
    super(message, cause === undefined ? undefined : { cause });
    this.name = "FuzzFinding";
  }
}

/**
 * A synchronous hang (a loop, a regexp backtracking over 1 MB) blocks the event loop, so neither
 * fast-check's time limit nor node:test's timeout can fire. A watchdog thread watches when the current
 * run started; when one has gone on for HANG_MS it prints which property, seed and run, and kills the
 * process, so the test file fails with that line instead of stalling CI.
 */
const shared = new SharedArrayBuffer(16 + 512);
const runClock = new Float64Array(shared, 0, 2); // [run start (ms since epoch) or 0, run index]
const runLabel = new Uint8Array(shared, 16, 512);
let watchdog: Worker | undefined;

/** The watchdog thread's code: it runs as a CommonJS worker, so it takes its modules from require. */
function watchdogMain(): void {
  const { workerData } = require("node:worker_threads") as typeof import("node:worker_threads");
  const { writeSync } = require("node:fs") as typeof import("node:fs");
  const clock = new Float64Array(workerData.shared, 0, 2);
  const label = new Uint8Array(workerData.shared, 16, 512);
  const tick = new Int32Array(new SharedArrayBuffer(4));
  for (;;) {
    Atomics.wait(tick, 0, 0, 250);
    const started = clock[0]!;
    if (started > 0 && Date.now() - started > workerData.hangMs) {
      const end = label.indexOf(0);
      const text = Buffer.from(label.subarray(0, end < 0 ? label.length : end)).toString("utf8");
      const seconds = Math.round((Date.now() - started) / 1000);
      writeSync(
        2,
        `\nfuzz watchdog: a run has gone on for ${seconds} s (a hang): ${text}, run ${clock[1]} (replay: FUZZ_PATH=${clock[1]})\n`,
      );
      process.kill(process.pid, "SIGKILL");
    }
  }
}

function watchRuns(label: string): void {
  watchdog ??= new Worker(`(${watchdogMain.toString()})()`, {
    eval: true,
    workerData: { shared, hangMs: HANG_MS },
  });
  watchdog.unref();
  runLabel.fill(0);
  runLabel.set(Buffer.from(label, "utf8").subarray(0, runLabel.length - 1));
  runClock[1] = -1;
}

/** The predicate, with each run's start and index published to the watchdog. */
function watched<T, R>(predicate: (value: T) => R): (value: T) => R {
  return (value) => {
    runClock[1]++;
    runClock[0] = Date.now();
    try {
      return predicate(value);
    } finally {
      runClock[0] = 0;
    }
  };
}

function watchedAsync<T>(predicate: (value: T) => Promise<void>): (value: T) => Promise<void> {
  return async (value) => {
    runClock[1]++;
    runClock[0] = Date.now();
    try {
      await predicate(value);
    } finally {
      runClock[0] = 0;
    }
  };
}

function parameters(name: string, options: PropertyOptions): fc.Parameters<unknown> {
  const runs = envRuns !== undefined && envRuns !== "" ? Number(envRuns) : options.runs;
  const scale = runs / options.runs;
  return {
    seed: propertySeed(name),
    numRuns: runs,
    interruptAfterTimeLimit: Math.round((options.timeLimitMs ?? 3000) * Math.max(1, scale)),
    markInterruptAsFailure: false,
    endOnFailure: process.env["FUZZ_SHRINK"] !== "1",
    ...(envPath ? { path: envPath } : {}),
  };
}

/** What a failed run says: seed, path, a clipped counterexample and the finding (with the escaping stack). */
function report(details: fc.RunDetails<unknown>): string {
  const lines = [
    `property failed after ${details.numRuns} run(s)`,
    `replay: FUZZ_SEED=${seedBase} FUZZ_PATH=${details.counterexamplePath} ${TEST_COMMAND} <this file> (fast-check seed ${details.seed}, path "${details.counterexamplePath}")`,
    `counterexample: ${printable(details.counterexample)}`,
  ];
  const err = details.errorInstance;
  if (err instanceof Error) {
    lines.push(
      `finding: ${err.message
        .split("\n")
        .slice(0, 40)
        .map((line) => boundText(line, 300))
        .join("\n")}`,
    );
    const cause = (err as Error & { cause?: unknown }).cause;
    if (cause instanceof Error) lines.push(`escaped error: ${describeThrown(cause)}`);
    else if (!(err instanceof FuzzFinding)) lines.push(describeThrown(err));
  } else {
    lines.push(`finding: ${boundText(String(err), 300)}`);
  }
  return lines.join("\n");
}

/** The counterexample, clipped; fast-check's printer recurses, so a deeply nested value is only named. */
function printable(value: unknown): string {
  try {
    return clip(fc.stringify(value), 600);
  } catch {
    return "(too deeply nested to print; replay it with the seed)";
  }
}

/** An error's name, clipped message and stack frames (the stack's own copy of the message may be 1 MB). */
function describeThrown(err: Error): string {
  const frames = (err.stack ?? "")
    .split("\n")
    .filter((line) => line.startsWith("    at "))
    .slice(0, 12);
  return [`${err.constructor?.name ?? err.name}: ${clip(err.message)}`, ...frames].join("\n");
}

function note(t: TestContext, details: fc.RunDetails<unknown>): void {
  t.diagnostic(
    `FUZZ_SEED=${seedBase} (property seed ${details.seed}), ${details.numRuns} run(s)${details.interrupted ? ", stopped at the time bound" : ""}`,
  );
}

/** Runs a synchronous property over `input` under node:test's context `t` (use fc.tuple for several). */
export function checkProperty<T>(
  t: TestContext,
  options: PropertyOptions,
  input: fc.Arbitrary<T>,
  predicate: (value: T) => void,
): void {
  const params = parameters(t.fullName, options) as fc.Parameters<[T]>;
  watchRuns(`${t.fullName}: FUZZ_SEED=${seedBase} (property seed ${params.seed})`);
  const details = fc.check(fc.property(input, watched(predicate)), params);
  note(t, details as fc.RunDetails<unknown>);
  if (details.failed) throw new Error(report(details as fc.RunDetails<unknown>));
}

/** Runs an asynchronous property; each run is also bounded by fast-check's own timeout. */
export async function checkAsyncProperty<T>(
  t: TestContext,
  options: PropertyOptions,
  input: fc.Arbitrary<T>,
  predicate: (value: T) => Promise<void>,
): Promise<void> {
  const params = { ...parameters(t.fullName, options), timeout: CALL_TIME_MAX_MS * 2 } as fc.Parameters<[T]>;
  watchRuns(`${t.fullName}: FUZZ_SEED=${seedBase} (property seed ${params.seed})`);
  const details = await fc.check(fc.asyncProperty(input, watchedAsync(predicate)), params);
  note(t, details as fc.RunDetails<unknown>);
  if (details.failed) throw new Error(report(details as fc.RunDetails<unknown>));
}
