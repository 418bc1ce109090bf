/** Runs a firewall tool (iptables-save, nft, ...) with optional stdin; one clear error when it fails. */
import { execFile } from "node:child_process";
import { type BunRuntime, bun } from "../runtime/bun.js";
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

const TIMEOUT_MS = 30_000;

function notInstalled(command: string, pkg: string): UserError {
  return new UserError(`${command} is not installed`, `install the ${pkg} package`);
}

function failed(command: string, args: string[], stderr: string, otherwise: string): CommandFailed {
  return new CommandFailed(`${command} ${args.join(" ")} failed: ${stderr.trim() || otherwise}`, stderr);
}

/**
 * On Bun (what ships) through Bun.spawn: node:child_process is emulated there in JavaScript, and the
 * resync every 5 s brought ~5 MB of its code back into memory each time. Under Node, execFile.
 */
async function runOnBun(runtime: BunRuntime, command: string, args: string[], pkg: string, input?: string) {
  let child: ReturnType<BunRuntime["spawn"]>;
  try {
    const stdin = input === undefined ? "ignore" : Buffer.from(input);
    child = runtime.spawn([command, ...args], { stdin, stdout: "pipe", stderr: "pipe", timeout: TIMEOUT_MS });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") throw notInstalled(command, pkg);
    throw err;
  }
  const [stdout, stderr, status] = await Promise.all([
    new Response(child.stdout).text(),
    new Response(child.stderr).text(),
    child.exited,
  ]);
  if (status === 0) return stdout;
  throw failed(command, args, stderr, `exit status ${status}`);
}

/** Rejects with a UserError naming the package when the tool is missing, CommandFailed when it fails. */
export function runCommand(command: string, args: string[], pkg: string, input?: string): Promise<string> {
  if (bun) return runOnBun(bun, command, args, pkg, input);
  return new Promise((resolve, reject) => {
    const child = execFile(
      command,
      args,
      { timeout: TIMEOUT_MS, maxBuffer: 64 * 1024 * 1024 },
      (err, stdout, stderr) => {
        if (!err) return resolve(stdout);
        if ((err as NodeJS.ErrnoException).code === "ENOENT") return reject(notInstalled(command, pkg));
        reject(failed(command, args, stderr, err.message));
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
