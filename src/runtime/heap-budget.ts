/**
 * The heap budget weftd gives its runtime. JSC (Bun's engine) sizes its heap by the machine's RAM: on a
 * 24 GB host it lets ~32 MB of garbage pile up between collections and doubles the heap at each step, so
 * the cold start of 5,000 peers scatters their long-lived objects over ~30 MB of heap blocks, which a
 * non-moving collector can never give back. Told the machine has 100 MB, it collects sooner and grows
 * by 1.5x: ~8 MB less after a cold start, ~20 MB less after lease events, at ~0.1 s more cold start
 * (BENCHMARKS.md). It only changes when JSC collects, never how much it may use.
 *
 * JSC reads its options once, from its environment, when it starts, so weftd re-executes itself (same
 * pid, same arguments, stdio) with the option set; an operator's own value is kept. Bun's execve keeps
 * no other inherited descriptor, so under socket activation (LISTEN_FDS: --listen=fd://) weftd runs
 * as it is. On Node (development) there is nothing to do.
 */
import { bun } from "./bun.js";

/** JSC's option, in bytes. */
export const HEAP_RAM_OPTION = "BUN_JSC_forceRAMSize";
export const HEAP_RAM_BYTES = "100000000";

/** Bun's path for a compiled executable's own entry point: then argv[1] is not an argument. */
const EMBEDDED_ENTRY = "/$bunfs/";

interface Execve {
  execve?(file: string, args: string[], env: Record<string, string | undefined>): never;
}

/** What to re-execute; undefined when there is nothing to do (Node, set already, socket activation). */
export function reexecArguments(
  argv: readonly string[],
  execArgv: readonly string[],
  execPath: string,
  env: Readonly<Record<string, string | undefined>>,
  onBun: boolean,
): { file: string; args: string[]; env: Record<string, string | undefined> } | undefined {
  if (!onBun || env[HEAP_RAM_OPTION] !== undefined || env["LISTEN_FDS"] !== undefined) return undefined;
  const compiled = argv[1]?.startsWith(EMBEDDED_ENTRY) ?? false;
  // A compiled executable gets only the user's arguments; `bun [flags] script.js` gets its flags and
  // script again.
  const rest = compiled ? argv.slice(2) : [...execArgv, ...argv.slice(1)];
  return { file: execPath, args: [execPath, ...rest], env: { ...env, [HEAP_RAM_OPTION]: HEAP_RAM_BYTES } };
}

/** Re-executes weftd with the heap budget set, once; returns only when that is not needed or not possible. */
export function ensureHeapBudget(): void {
  const run = reexecArguments(
    process.argv,
    process.execArgv,
    process.execPath,
    process.env,
    bun !== undefined,
  );
  const { execve } = process as unknown as Execve;
  if (!run || typeof execve !== "function") return;
  try {
    execve.call(process, run.file, run.args, run.env);
  } catch {
    // A sandbox that forbids execve: weftd runs as it is, with JSC's default sizing.
  }
}
