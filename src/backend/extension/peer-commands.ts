/**
 * Runs SubnetAddCommand and SubnetRemoveCommand per peer, reconciling what the commands were last run
 * for against the peers the store has now. Each peer has its own queue, so the add and remove of one
 * peer run in order while a failing or slow peer never holds up the others. A failing command is logged
 * with its output (once per distinct cause) and retried with backoff until it succeeds or a newer state
 * of the same peer replaces it (a failing add is dropped when the peer goes away; the remove then runs
 * with the variables the add was given). A peer that comes and goes before its add started runs nothing.
 * A peer whose values did not change runs nothing again; one that changed runs the add again, as
 * flannel does for an updated lease.
 */
import type { Lease } from "../../lease/lease.js";
import { Backoff, type BackoffOptions } from "../../retry/backoff.js";
import { boundText } from "../../text/untrusted-text.js";
import { type CommandInput, peerInput } from "./command-inputs.js";
import type { CommandLine } from "./command-line.js";
import type { CommandOutcome, RunCommand } from "./command-process.js";

export interface PeerCommandsOptions {
  readonly add: CommandLine | undefined;
  readonly remove: CommandLine | undefined;
  readonly run: RunCommand;
  readonly log: { info(message: string): void; warn(message: string): void };
  readonly backoff: BackoffOptions;
  /** Commands running at once, across all peers. */
  readonly concurrency: number;
}

interface PeerState {
  /** The peer's lease in the store now; undefined once it is gone. */
  desired: Lease | undefined;
  /** The lease nothing more needs doing for: its add succeeded, or it was skipped on purpose. */
  doneLease: Lease | undefined;
  /** What the last successful add was given. */
  doneInput: CommandInput | undefined;
  /** What the last add tried was given, successful or not: a remove runs with it. */
  triedInput: CommandInput | undefined;
  driving: boolean;
  backoff: Backoff;
  failures: number;
  lastFailure: string;
  reportedProblem: string;
  wake: (() => void) | undefined;
}

type Action = { kind: "add"; lease: Lease } | { kind: "remove"; input: CommandInput };

const sameInput = (a: CommandInput, b: CommandInput) =>
  a.stdin === b.stdin && JSON.stringify(a.variables) === JSON.stringify(b.variables);

/** What a peer needs next, if anything. Pure. */
function nextAction(state: PeerState): Action | undefined {
  const { desired } = state;
  if (desired) {
    if (state.doneLease === desired) return undefined;
    const input = peerInput(desired);
    if ("stdin" in input && state.doneInput && sameInput(state.doneInput, input)) return undefined;
    return { kind: "add", lease: desired };
  }
  const input = state.doneInput ?? state.triedInput;
  return input ? { kind: "remove", input } : undefined;
}

export class PeerCommands {
  private readonly peers = new Map<string, PeerState>();
  private readonly drivers = new Set<Promise<void>>();
  private readonly abort = new AbortController();
  private started = false;
  private running = 0;
  private readonly slotWaiters: (() => void)[] = [];
  private idleWaiters: (() => void)[] = [];
  /** Commands run, and the failures among them (for tests and metrics). */
  runs = 0;
  failures = 0;

  constructor(private readonly options: PeerCommandsOptions) {}

  /** The peers the commands are for now (already filtered to extension peers other than us). */
  update(peers: Iterable<Lease>): void {
    const seen = new Set<string>();
    const changed: string[] = [];
    for (const lease of peers) {
      seen.add(lease.key);
      const state = this.peers.get(lease.key) ?? this.newState();
      if (state.desired !== lease) changed.push(lease.key);
      state.desired = lease;
      this.peers.set(lease.key, state);
    }
    for (const [key, state] of this.peers) {
      if (seen.has(key) || !state.desired) continue;
      state.desired = undefined;
      changed.push(key);
    }
    // Only peers whose lease changed: the others keep their backoff.
    if (this.started) for (const key of changed) this.drive(key);
  }

  /** Lets commands run: flannel's PostStartupCommand has finished. */
  start(): void {
    this.started = true;
    for (const key of this.peers.keys()) this.drive(key);
  }

  /** Resolves once no peer has anything left to run (all done, or backing off after a failure). */
  settled(): Promise<void> {
    if (this.isSettled()) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  /** Stops: no new command starts; running ones are signalled (SIGTERM, then SIGKILL) and awaited. */
  async close(): Promise<void> {
    this.abort.abort();
    for (const state of this.peers.values()) state.wake?.();
    for (const wake of this.slotWaiters.splice(0)) wake();
    await Promise.all([...this.drivers]);
  }

  private newState(): PeerState {
    return {
      desired: undefined,
      doneLease: undefined,
      doneInput: undefined,
      triedInput: undefined,
      driving: false,
      backoff: new Backoff(this.options.backoff),
      failures: 0,
      lastFailure: "",
      reportedProblem: "",
      wake: undefined,
    };
  }

  private isSettled(): boolean {
    for (const state of this.peers.values()) {
      if (state.wake) continue; // waiting to retry
      if (state.driving || nextAction(state)) return false;
    }
    return true;
  }

  private checkIdle(): void {
    if (!this.isSettled()) return;
    for (const resolve of this.idleWaiters.splice(0)) resolve();
  }

  private drive(key: string): void {
    const state = this.peers.get(key)!;
    if (state.driving) {
      state.wake?.(); // a newer state cuts a backoff short
      return;
    }
    state.driving = true;
    const driver = this.loop(key, state).finally(() => {
      state.driving = false;
      this.drivers.delete(driver);
      // An update that came in while the loop was returning still needs a driver.
      if (!this.abort.signal.aborted && nextAction(state)) this.drive(key);
      else if (!state.desired && !state.doneInput && !state.triedInput) this.peers.delete(key);
      this.checkIdle();
    });
    this.drivers.add(driver);
  }

  private async loop(key: string, state: PeerState): Promise<void> {
    for (;;) {
      if (this.abort.signal.aborted) return;
      const action = nextAction(state);
      if (!action) return;
      const outcome = await this.perform(key, state, action);
      if (outcome === undefined || outcome.ok) {
        state.backoff.reset();
        continue;
      }
      await this.waitToRetry(state);
    }
  }

  /** Runs one action; undefined when there was nothing to run (no command, or a skipped peer). */
  private async perform(key: string, state: PeerState, action: Action): Promise<CommandOutcome | undefined> {
    if (action.kind === "remove") {
      const command = this.options.remove;
      const outcome = command ? await this.runCommand(command, action.input) : undefined;
      if (outcome) this.report(key, state, "SubnetRemoveCommand", outcome);
      if (!outcome || outcome.ok) state.doneLease = state.doneInput = state.triedInput = undefined;
      return outcome;
    }
    const { lease } = action;
    const input = peerInput(lease);
    if ("problem" in input) {
      if (state.reportedProblem !== input.problem)
        this.options.log.warn(`not running commands for lease ${key}: ${input.problem}`);
      state.reportedProblem = input.problem;
      // Nothing can be passed on; an earlier add of this peer still stands for its remove.
      state.doneLease = lease;
      return undefined;
    }
    state.reportedProblem = "";
    const command = this.options.add;
    state.triedInput = input;
    const outcome = command ? await this.runCommand(command, input) : undefined;
    if (outcome) this.report(key, state, "SubnetAddCommand", outcome);
    if (!outcome || outcome.ok) {
      state.doneLease = lease;
      state.doneInput = input;
    }
    return outcome;
  }

  private async runCommand(command: CommandLine, input: CommandInput): Promise<CommandOutcome> {
    await this.acquireSlot();
    try {
      if (this.abort.signal.aborted)
        return { ok: false, failure: "weftd is stopping", output: "", truncated: false };
      this.runs++;
      const outcome = await this.options.run(command, input, this.abort.signal);
      if (!outcome.ok) this.failures++;
      return outcome;
    } finally {
      this.releaseSlot();
    }
  }

  private report(key: string, state: PeerState, name: string, outcome: CommandOutcome): void {
    const { log } = this.options;
    const output = describeOutput(outcome);
    if (outcome.ok) {
      const after = state.failures > 0 ? ` after ${state.failures + 1} attempts` : "";
      log.info(`ran ${name} for lease ${key}${after}${output}`);
      state.failures = 0;
      state.lastFailure = "";
      return;
    }
    state.failures++;
    if (this.abort.signal.aborted) return;
    const cause = `${outcome.failure}${output}`;
    // Logged once per distinct cause, not on every retry.
    if (cause !== state.lastFailure) {
      log.warn(`${name} for lease ${key} failed: ${cause}; retrying with backoff`);
    }
    state.lastFailure = cause;
  }

  private waitToRetry(state: PeerState): Promise<void> {
    const delay = state.backoff.next();
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        state.wake = undefined;
        resolve();
      };
      const timer = setTimeout(done, delay);
      state.wake = done;
      this.checkIdle();
    });
  }

  private acquireSlot(): Promise<void> {
    if (this.running < this.options.concurrency) {
      this.running++;
      return Promise.resolve();
    }
    return new Promise((resolve) =>
      this.slotWaiters.push(() => {
        this.running++;
        resolve();
      }),
    );
  }

  private releaseSlot(): void {
    this.running--;
    this.slotWaiters.shift()?.();
  }
}

/** A command's output for a log line: bounded, control characters escaped. */
export function describeOutput(outcome: CommandOutcome): string {
  if (outcome.output === "") return "";
  const more = outcome.truncated ? " (more output dropped)" : "";
  return `; output: ${boundText(outcome.output, 512)}${more}`;
}
