/**
 * systemd's notify protocol for Type=notify units: READY=1 once the datapath is programmed, STOPPING=1 on the way
 * out, WATCHDOG=1 at half the watchdog interval. flanneld sends READY=1 once its backend runs; weft waits for the
 * first clean reconcile, so units ordered After=weftd.service (docker with --bip from subnet.env) start on a
 * working host. Outside systemd ($NOTIFY_SOCKET unset) every call does nothing.
 */
import { notifyAddon } from "../netlink/addon.js";
import { describeError } from "../user-error.js";

export interface SystemdNotifier {
  /** The unit is up; `status` is shown by `systemctl status`. Sent once. */
  ready(status: string): void;
  stopping(): void;
  /** Stops the watchdog pings. */
  close(): void;
}

/** Sends one datagram to the socket; the addon's sdNotify in production, anything in tests. */
export type NotifySend = (socket: string, message: string) => void;

export interface NotifyOptions {
  readonly env: NodeJS.ProcessEnv;
  readonly warn: (message: string) => void;
  readonly pid?: number;
  readonly send?: NotifySend;
}

/**
 * How often to ping for a WATCHDOG_USEC meant for this process (WATCHDOG_PID unset or ours), in ms; NaN when
 * WATCHDOG_USEC is not a positive number of microseconds.
 */
export function watchdogIntervalMs(env: NodeJS.ProcessEnv, pid: number): number | undefined {
  const usec = env["WATCHDOG_USEC"];
  if (usec === undefined || usec === "") return undefined;
  if (!/^[1-9][0-9]*$/.test(usec)) return Number.NaN;
  const forPid = env["WATCHDOG_PID"];
  if (forPid !== undefined && forPid !== "" && forPid !== String(pid)) return undefined;
  return Math.max(1, Math.floor(Number(usec) / 2000));
}

export function systemdNotifier(options: NotifyOptions): SystemdNotifier {
  const { env, warn } = options;
  const socket = env["NOTIFY_SOCKET"];
  const none: SystemdNotifier = { ready: () => {}, stopping: () => {}, close: () => {} };
  if (socket === undefined || socket === "") return none;
  if (!socket.startsWith("/") && !socket.startsWith("@")) {
    warn(
      `NOTIFY_SOCKET=${JSON.stringify(socket.slice(0, 108))} is neither an absolute path nor an @abstract name; ` +
        "not reporting readiness to systemd (unset it, or let systemd set it with Type=notify)",
    );
    return none;
  }
  const send = options.send ?? ((s: string, m: string) => notifyAddon().sdNotify(s, m));
  // One warning per distinct failure: a socket that went away must not flood the log every ping.
  let lastError = "";
  const notify = (message: string) => {
    try {
      send(socket, message);
      lastError = "";
    } catch (err) {
      const text = describeError(err);
      if (text !== lastError) warn(`cannot notify systemd at ${socket} (${message.split("\n")[0]}): ${text}`);
      lastError = text;
    }
  };
  let interval = watchdogIntervalMs(env, options.pid ?? process.pid);
  if (Number.isNaN(interval)) {
    warn(
      `WATCHDOG_USEC=${JSON.stringify(env["WATCHDOG_USEC"]?.slice(0, 40))} is not a number of microseconds; not pinging the watchdog`,
    );
    interval = undefined;
  }
  const watchdog =
    interval === undefined ? undefined : setInterval(() => notify("WATCHDOG=1"), interval).unref();
  if (interval !== undefined) notify("WATCHDOG=1");
  let readySent = false;
  return {
    ready(status) {
      if (readySent) return;
      readySent = true;
      notify(`READY=1\nSTATUS=${status.replace(/\n/g, " ")}`);
    },
    stopping() {
      clearInterval(watchdog);
      notify("STOPPING=1");
    },
    close() {
      clearInterval(watchdog);
    },
  };
}
