/**
 * Reads a file that is small by nature (subnet.env), shared by weftd and the CNI plugin; imports only
 * node:fs. readFileSync of a path from a config never returns for /dev/zero (it reads until memory runs
 * out) and blocks forever on a FIFO with no writer, so: opened without blocking, refused unless it is a
 * regular file (or a directory, so reading it fails with EISDIR as everywhere else), and read up to a limit.
 */
import { closeSync, constants, fstatSync, openSync, readSync } from "node:fs";

/** An fs error with code, syscall and path like Node's; its message is only the reason, as no errno has it. */
function fsError(code: string, syscall: string, path: string, reason: string): Error {
  return Object.assign(new Error(reason), { code, syscall, path });
}

export function readSmallFile(path: string, maxBytes: number): Buffer {
  const fd = openSync(path, constants.O_RDONLY | constants.O_NONBLOCK);
  try {
    const stat = fstatSync(fd);
    if (!stat.isFile() && !stat.isDirectory()) {
      throw fsError("EINVAL", "open", path, "not a regular file");
    }
    const chunks: Buffer[] = [];
    let total = 0;
    for (;;) {
      const chunk = Buffer.alloc(Math.min(64 * 1024, maxBytes + 1 - total));
      const n = readSync(fd, chunk, 0, chunk.length, null);
      if (n === 0) break;
      chunks.push(chunk.subarray(0, n));
      total += n;
      if (total > maxBytes) throw fsError("EFBIG", "read", path, `larger than ${maxBytes} bytes`);
    }
    return Buffer.concat(chunks, total);
  } finally {
    closeSync(fd);
  }
}
