/**
 * An error raised while reading or using one lease someone else wrote. It stays with that lease: the
 * caller reports it as that lease's problem and goes on with the others. The text is bounded, since the
 * message of an unexpected error may carry the untrusted value.
 */
import { boundText } from "../text/untrusted-text.js";
import { LeaseDecodeError } from "./lease-json.js";

/** How much of an unexpected error's message a report shows. */
const FAULT_MESSAGE_MAX = 120;

/**
 * One bounded phrase for a lease's fault: the decoder's own reason, or what failed (`doing`: "reading
 * it", "using it") with the error's type and message.
 */
export function describeLeaseFault(err: unknown, doing: "reading it" | "using it"): string {
  if (err instanceof LeaseDecodeError) return err.message;
  if (err instanceof Error) {
    return `${doing} failed (${boundText(err.name, 40)}: ${boundText(err.message, FAULT_MESSAGE_MAX)})`;
  }
  return `${doing} failed (${typeof err})`;
}
