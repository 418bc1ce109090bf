#!/usr/bin/env node
/**
 * The `flannel` CNI plugin's entry. Everything fails as a CNI error JSON on stdout and exit status 1, never
 * as a stack trace; the plugin is loaded inside the guard so even a broken install answers in CNI terms.
 * What ships is one executable, dist/cni/flannel (`bun build --compile --bytecode`: Bun with this code
 * compiled in; no Node on the host). The same source also runs on Node for development: tsc's output, or
 * the bundle dist/cni/flannel.cjs. No top-level await: both builds are CommonJS (Bun's bytecode needs it).
 */
import { writeSync } from "node:fs";

/** stdout and stderr by descriptor: the process.stdout/stderr streams would load more of node. */
function writeOut(text: string, fd = 1): void {
  const data = Buffer.from(text, "utf8");
  let done = 0;
  for (let tries = 0; done < data.length && tries < 10_000; tries++) {
    try {
      done += writeSync(fd, data, done, data.length - done);
    } catch (err) {
      if ((err as { code?: string }).code !== "EAGAIN") return; // stdout gone: nobody to tell
    }
  }
}

/** Last resort when even the error module cannot load: the same JSON shape, by hand. */
function fallbackError(err: unknown): string {
  const msg = (err instanceof Error ? err.message : String(err)).slice(0, 900);
  return `{\n    "code": 999,\n    "msg": ${JSON.stringify(`flannel plugin failed to start: ${msg}`)}\n}`;
}

async function main(): Promise<number> {
  try {
    const { runPlugin } = await import("./plugin.js");
    const { readStdin } = await import("./stdin.js");
    try {
      const out = await runPlugin(process.env, readStdin);
      if (out !== "") writeOut(out);
      return 0;
    } catch (err) {
      const { asCniError, formatCniError } = await import("./cni-error.js");
      const cniError = asCniError(err);
      if (cniError.code === 4 && !process.env["CNI_COMMAND"]) {
        const { supportedVersions } = await import("./cni-version.js");
        writeOut(
          `CNI Plugin flannel (weft)\nCNI protocol versions supported: ${supportedVersions.join(", ")}\n`,
          2,
        );
      }
      writeOut(formatCniError(cniError));
      return 1;
    }
  } catch (err) {
    writeOut(fallbackError(err));
    return 1;
  }
}

void main().then((code) => {
  process.exitCode = code;
});
