/**
 * An error meant for the operator: what is wrong and what to do about it.
 * The top level prints these as one line (plus the hint) instead of a stack trace.
 */
export class UserError extends Error {
  readonly hint: string | undefined;

  constructor(message: string, hint?: string) {
    super(message);
    this.name = "UserError";
    this.hint = hint;
  }
}

/** One line for a log or terminal, with the hint after it when there is one. */
export function describeError(err: unknown): string {
  if (err instanceof UserError) return err.hint ? `${err.message} (${err.hint})` : err.message;
  if (err instanceof Error) return err.message;
  return String(err);
}
