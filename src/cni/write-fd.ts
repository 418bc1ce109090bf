/**
 * Writes all of data to a file descriptor, synchronously. Used instead of process.stdout/stderr: creating
 * those streams on a pipe loads node's net module, a few milliseconds of start-up for a plugin.
 */
import { writeSync } from "node:fs";

export function writeFully(fd: number, data: Buffer | string): void {
  const bytes = typeof data === "string" ? Buffer.from(data, "utf8") : data;
  let done = 0;
  // EAGAIN (a non-blocking pipe that is full) is retried, a bounded number of times.
  for (let tries = 0; done < bytes.length && tries < 10_000; tries++) {
    try {
      done += writeSync(fd, bytes, done, bytes.length - done);
    } catch (err) {
      if ((err as { code?: string }).code !== "EAGAIN") return; // the reader is gone: nobody to tell
    }
  }
}
