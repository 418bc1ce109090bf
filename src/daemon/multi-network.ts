/**
 * flanneld v0.7's multi-network mode, the pure part: which networks --networks names, whether a network
 * the store announces may be joined, and where each network's .env file goes. The store gives a network
 * name as a key segment (<prefix>/<name>/config), so a name is checked before it becomes a file name.
 */
import path from "node:path";
import { describeValue } from "../text/untrusted-text.js";
import { UserError } from "../user-error.js";
import type { Flags } from "./flags.js";

/** A key segment that is also a safe file name: no slash, not "." or "..", nothing invisible. */
const NETWORK_NAME = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,62}$/;

export function isNetworkName(name: string): boolean {
  return NETWORK_NAME.test(name);
}

export interface MultiNetworkOptions {
  /** The networks --networks names, in order, without duplicates; empty: every network (with watch). */
  readonly networks: readonly string[];
  readonly watch: boolean;
  readonly subnetDir: string;
}

/** The multi-network options, or undefined in single-network mode (neither flag given), as v0.7. */
export function multiNetworkOptions(flags: Pick<Flags, "string" | "bool">): MultiNetworkOptions | undefined {
  const networks = parseNetworkList(flags.string("networks"));
  const watch = flags.bool("watch-networks");
  if (networks.length === 0 && !watch) return undefined;
  const subnetDir = flags.string("subnet-dir");
  if (subnetDir === "") {
    throw new UserError("--subnet-dir is empty", "give the directory for the networks' .env files");
  }
  return { networks, watch, subnetDir };
}

export function parseNetworkList(text: string): string[] {
  const names: string[] = [];
  for (const part of text.split(",")) {
    const name = part.trim();
    if (name === "") continue;
    if (!isNetworkName(name)) {
      throw new UserError(
        `--networks has ${describeValue(name)}, which is not a network name`,
        "use names of letters, digits, '_', '-' and '.', as in <prefix>/<name>/config",
      );
    }
    if (!names.includes(name)) names.push(name);
  }
  return names;
}

/** v0.7: with no --networks every network is allowed; else only those named. */
export function isNetworkAllowed(options: MultiNetworkOptions, name: string): boolean {
  return options.networks.length === 0 || options.networks.includes(name);
}

/** <subnet-dir>/<network>.env, as flanneld v0.7 writes it. */
export function networkEnvPath(subnetDir: string, name: string): string {
  return path.join(subnetDir, `${name}.env`);
}
