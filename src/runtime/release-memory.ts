/**
 * A full garbage collection, so the runtime returns the pages a burst of work left behind (RSS is what
 * operators see). weftd ships on Bun, whose Bun.gc(true) collects synchronously; on Node (development)
 * the collector is there only when weftd was started with --expose-gc (its "#!" line has it).
 */
export function releaseMemory(): void {
  const bun = (globalThis as { Bun?: { gc(force: boolean): void } }).Bun;
  if (bun !== undefined) {
    bun.gc(true);
    return;
  }
  (globalThis as { gc?: () => void }).gc?.();
}
