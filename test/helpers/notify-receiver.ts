/** Reading what test/helpers/notify-receiver.py (a real unix datagram socket standing in for systemd) received. */
import { join } from "node:path";
import { repoRoot } from "./reference.js";

export const notifyReceiverScript = join(repoRoot, "test", "helpers", "notify-receiver.py");

export interface NotifyMessage {
  /** When it arrived, on the receiver's monotonic clock. */
  readonly ms: number;
  /** The sender's pid as the kernel reported it (what systemd checks for NotifyAccess=main). */
  readonly pid: number | null;
  readonly message: string;
}

/** The datagrams in the receiver's output so far (its first line only says it is listening). */
export function notifyMessages(output: string): NotifyMessage[] {
  return output
    .split("\n")
    .filter((line) => line.startsWith("{") && !line.includes('"listening"'))
    .map((line) => JSON.parse(line) as NotifyMessage);
}

/** Messages whose first assignment is `assignment`, e.g. "READY=1". */
export function withAssignment(messages: readonly NotifyMessage[], assignment: string): NotifyMessage[] {
  return messages.filter((m) => m.message.split("\n").includes(assignment));
}
