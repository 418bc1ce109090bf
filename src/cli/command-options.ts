/**
 * Splits a weft subcommand's own options (--output json, -o json, --svg=FILE) from weftd's flags, which
 * go to weftd's parser unchanged. Pure.
 */
import { UserError } from "../user-error.js";

export function splitCommandOptions(
  argv: readonly string[],
  names: readonly string[],
): { options: Map<string, string>; daemonArgs: string[] } {
  const options = new Map<string, string>();
  const daemonArgs: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    const match = /^--?([a-z]+)(?:=(.*))?$/.exec(arg);
    const name = match?.[1] === "o" ? "output" : match?.[1];
    if (!match || name === undefined || !names.includes(name)) {
      daemonArgs.push(arg);
      continue;
    }
    let value = match[2];
    if (value === undefined) {
      value = argv[++i];
      if (value === undefined) throw new UserError(`--${name} needs a value`, "see weft --help");
    }
    options.set(name, value);
  }
  return { options, daemonArgs };
}
