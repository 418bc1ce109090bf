/**
 * klog-style lines ("I1123 11:27:39.123456 4242 weftd] ..."), so flannel's log tooling reads ours.
 * Every message is escaped and bounded here, whatever its parts were: a control character from a config
 * value or a lease cannot start a forged line, and no value makes a line of megabytes.
 */
import { boundText } from "../text/untrusted-text.js";

/** Longer than any message weftd means to write; what is cut is said (boundText). */
export const LOG_MESSAGE_MAX = 8192;

export type LogLevel = "I" | "W" | "E";

export interface Logger {
  info(message: string, verbosity?: number): void;
  warn(message: string): void;
  error(message: string): void;
}

function stamp(now: Date): string {
  const pad = (n: number, width = 2) => String(n).padStart(width, "0");
  const micros = pad(now.getUTCMilliseconds(), 3) + "000";
  return `${pad(now.getUTCMonth() + 1)}${pad(now.getUTCDate())} ${pad(now.getUTCHours())}:${pad(now.getUTCMinutes())}:${pad(now.getUTCSeconds())}.${micros}`;
}

export function createLogger(
  verbosity: number,
  write: (line: string) => void = (l) => process.stderr.write(l),
): Logger {
  const line = (level: LogLevel, message: string) =>
    write(`${level}${stamp(new Date())} ${process.pid} weftd] ${boundText(message, LOG_MESSAGE_MAX)}\n`);
  return {
    info: (message, v = 0) => {
      if (v <= verbosity) line("I", message);
    },
    warn: (message) => line("W", message),
    error: (message) => line("E", message),
  };
}
