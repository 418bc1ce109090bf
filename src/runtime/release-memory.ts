/**
 * Giving memory back after a burst of work (RSS is what operators see): a full garbage collection, then
 * the runtime's clean code pages handed back to the kernel (native/resident-code.c). weftd ships on Bun,
 * whose Bun.gc(true) collects synchronously; on Node (development) the collector is there only when
 * weftd was started with --expose-gc (its "#!" line has it).
 */
import { residentCodeAddon } from "../netlink/addon.js";
import { bun } from "./bun.js";

export function releaseMemory(): void {
  if (bun !== undefined) bun.gc(true);
  else (globalThis as { gc?: () => void }).gc?.();
  residentCodeAddon().pageOutCode();
}

/** A burst (lease events, reconcile runs) is over this long after its last event; then memory is released once. */
const QUIET_MS = 2_000;

/** Releases memory once a burst of changes has been quiet for QUIET_MS: never in the middle of one. */
export class MemoryRelease {
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly release: () => void = releaseMemory,
    private readonly quietMs = QUIET_MS,
  ) {}

  /** Something changed; release after the burst (restarts the quiet period). */
  afterBurst(): void {
    clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.release();
    }, this.quietMs);
    this.timer.unref();
  }

  close(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
  }
}
