/**
 * The part of Bun's API weft uses, typed here once (the package does not depend on Bun's types), and
 * whether weft runs on Bun at all: `bun` is undefined under Node (development).
 */

export interface BunRuntime {
  /** Collects garbage; `true`: synchronously and in full. */
  gc(force: boolean): void;
  spawn(
    cmd: string[],
    options: { stdin: Buffer | "ignore"; stdout: "pipe"; stderr: "pipe"; timeout: number },
  ): { stdout: ReadableStream<Uint8Array>; stderr: ReadableStream<Uint8Array>; exited: Promise<number> };
  spawnSync(options: {
    cmd: string[];
    stdin: Buffer;
    env: Record<string, string | undefined>;
    stdout: "pipe";
    stderr: "pipe";
    maxBuffer: number;
  }): {
    exitCode: number | null;
    signalCode: string | null;
    stdout: Buffer | undefined;
    stderr: Buffer | undefined;
    exitedDueToMaxBuffer?: boolean;
  };
}

export const bun = (globalThis as { Bun?: BunRuntime }).Bun;
