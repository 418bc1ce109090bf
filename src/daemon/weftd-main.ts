#!/usr/bin/env -S node --max-semi-space-size=1 --expose-gc
import { ensureHeapBudget } from "../runtime/heap-budget.js";
import { weftVersion } from "../runtime/version.js";
/**
 * The weftd command: flags, then the daemon; operator errors print one line, never a stack trace.
 * The Node flag above is part of weftd: a 1 MB young generation keeps RSS ~20 MB lower at no measured
 * cost in speed (BENCHMARKS.md); the lab and the benchmarks start weftd with the flags of this line.
 */
import { boundText } from "../text/untrusted-text.js";
import { describeError } from "../user-error.js";
import { Daemon } from "./daemon.js";
import { type Flags, parseFlags, usage } from "./flags.js";
import { createLogger, LOG_MESSAGE_MAX } from "./logger.js";
import { systemdNotifier } from "./sd-notify.js";

function version(): string {
  return `weft ${weftVersion()} (flanneld-compatible)`;
}

function fail(message: string): never {
  // Before the logger exists, the same defence: a flag's value is escaped and bounded.
  process.stderr.write(`weftd: ${boundText(message, LOG_MESSAGE_MAX)}\n`);
  process.exit(1);
}

async function main(): Promise<void> {
  let flags: Flags;
  try {
    flags = parseFlags(process.argv.slice(2), process.env);
  } catch (err) {
    fail(describeError(err));
  }
  if (flags.bool("help")) {
    process.stdout.write(usage("weftd"));
    return;
  }
  if (flags.bool("version")) {
    process.stdout.write(`${version()}\n`);
    return;
  }
  ensureHeapBudget();
  const log = createLogger(flags.int("v"));
  if (flags.rest.length > 0) log.warn(`ignoring arguments after the flags: ${flags.rest.join(" ")}`);

  if (flags.string("listen") !== "") {
    await serve(flags, log);
    return;
  }

  let stopping = false;
  const systemd = systemdNotifier({ env: process.env, warn: (m) => log.warn(m) });
  const daemon = new Daemon(
    flags,
    log,
    (err) => {
      log.error(describeError(err));
      void daemon.stop().finally(() => process.exit(1));
    },
    (peers) => systemd.ready(`datapath programmed for ${peers} peer(s)`),
  );
  const shutdown = (signal: string) => {
    if (stopping) return;
    stopping = true;
    log.info(`received ${signal}; exiting and leaving the datapath in place`);
    systemd.stopping();
    void daemon.stop().finally(() => process.exit(0));
  };
  process.on("SIGTERM", () => shutdown("SIGTERM"));
  process.on("SIGINT", () => shutdown("SIGINT"));
  try {
    await daemon.start();
  } catch (err) {
    if (stopping) return;
    log.error(describeError(err));
    await daemon.stop().catch(() => undefined);
    process.exit(1);
  }
}

/** --listen: the client/server mode's server, no datapath (flanneld v0.7's `--listen`). */
async function serve(flags: Flags, log: ReturnType<typeof createLogger>): Promise<void> {
  const { runServer } = await import("../server/run-server.js");
  const server = await runServer(flags, process.env, log).catch((err) => fail(describeError(err)));
  const shutdown = (signal: string) => {
    log.info(`received ${signal}; exiting`);
    void server.close().finally(() => process.exit(0));
  };
  process.on("SIGTERM", () => shutdown("SIGTERM"));
  process.on("SIGINT", () => shutdown("SIGINT"));
}

main().catch((err) => fail(describeError(err)));
