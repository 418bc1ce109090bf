/** Reads all of stdin synchronously: a plugin run is short and has nothing else to do meanwhile. */
import { readSync } from "node:fs";
import { errnoCode } from "./go-errors.js";

const maxWaitMs = 60_000;
/** A network config is kilobytes; a stdin that never ends (/dev/zero) must fail, not fill memory. */
export const STDIN_MAX_BYTES = 16 * 1024 * 1024;

export function readStdin(): string {
  const chunks: Buffer[] = [];
  const buf = Buffer.alloc(64 * 1024);
  let sleeper: Int32Array | undefined;
  const deadline = Date.now() + maxWaitMs;
  let total = 0;
  for (;;) {
    let n: number;
    try {
      n = readSync(0, buf, 0, buf.length, null);
    } catch (err) {
      const code = errnoCode(err);
      if (code === "EOF") break;
      if (code === "EBADF" || code === "EINVAL") break; // stdin closed: no config given
      if (code !== "EAGAIN") throw err;
      // A non-blocking stdin (some runtimes pass a socket): poll until end of file, bounded.
      if (Date.now() > deadline)
        throw new Error(`stdin did not reach end of file within ${maxWaitMs / 1000}s`);
      sleeper ??= new Int32Array(new SharedArrayBuffer(4));
      Atomics.wait(sleeper, 0, 0, 5);
      continue;
    }
    if (n === 0) break;
    chunks.push(Buffer.from(buf.subarray(0, n)));
    total += n;
    if (total > STDIN_MAX_BYTES) {
      throw new Error(`the network config on stdin is larger than ${STDIN_MAX_BYTES} bytes`);
    }
  }
  return Buffer.concat(chunks).toString("utf8");
}
