/** Runs a firewall tool (iptables-save, nft, ...) with optional stdin; one clear error when it fails. */
import { execFile } from "node:child_process";
import { UserError } from "../user-error.js";

/** The tool exited non-zero; stderr says why (e.g. nft's "No such file or directory" for a missing table). */
export class CommandFailed extends UserError {
  constructor(
    message: string,
    readonly stderr: string,
  ) {
    super(message);
  }
}

/** Rejects with a UserError naming the package when the tool is missing, CommandFailed when it fails. */
export function runCommand(command: string, args: string[], pkg: string, input?: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = execFile(
      command,
      args,
      { timeout: 30_000, maxBuffer: 64 * 1024 * 1024 },
      (err, stdout, stderr) => {
        if (!err) return resolve(stdout);
        if ((err as NodeJS.ErrnoException).code === "ENOENT")
          return reject(new UserError(`${command} is not installed`, `install the ${pkg} package`));
        reject(
          new CommandFailed(`${command} ${args.join(" ")} failed: ${stderr.trim() || err.message}`, stderr),
        );
      },
    );
    if (input !== undefined) child.stdin?.end(input);
  });
}

/** True for the "not installed" error of runCommand. */
export function isNotInstalled(err: unknown): boolean {
  return (
    err instanceof UserError && !(err instanceof CommandFailed) && err.message.endsWith("is not installed")
  );
}
