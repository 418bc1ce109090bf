/** The extension backend's keys in Backend{...}: four command lines, each optional. */
import { ConfigError } from "../../config/network-config.js";
import { BackendKeys } from "../backend-keys.js";
import { type CommandLine, parseCommandLine } from "./command-line.js";

export interface ExtensionConfig {
  /** Runs before the lease is acquired; its trimmed output becomes our lease's BackendData. */
  readonly preStartup: CommandLine | undefined;
  /** Runs once the lease is held, before any peer's SubnetAddCommand. */
  readonly postStartup: CommandLine | undefined;
  readonly subnetAdd: CommandLine | undefined;
  readonly subnetRemove: CommandLine | undefined;
}

export const COMMAND_KEYS = {
  preStartup: "PreStartupCommand",
  postStartup: "PostStartupCommand",
  subnetAdd: "SubnetAddCommand",
  subnetRemove: "SubnetRemoveCommand",
} as const;

export type CommandName = keyof typeof COMMAND_KEYS;

export function parseExtensionConfig(backend: Readonly<Record<string, unknown>>): ExtensionConfig {
  const keys = new BackendKeys("extension", backend);
  const command = (name: CommandName): CommandLine | undefined => {
    const key = COMMAND_KEYS[name];
    const text = keys.string(key);
    // flannel skips a command whose text is empty.
    if (text === "") return undefined;
    const parsed = parseCommandLine(text);
    if (parsed.ok) return parsed.command;
    throw new ConfigError(
      `Backend.${key} of the extension backend ${parsed.problem}. weft runs it without a shell, as flannel ` +
        // biome-ignore lint/suspicious/noTemplateCurlyInString: sh's ${NAME}, not a template
        "does since v0.28.2: words are split on whitespace and $NAME or ${NAME} is replaced by its value " +
        "within one argument. Put the shell commands in an executable script and set " +
        `Backend.${key} to the script's path`,
    );
  };
  return {
    preStartup: command("preStartup"),
    postStartup: command("postStartup"),
    subnetAdd: command("subnetAdd"),
    subnetRemove: command("subnetRemove"),
  };
}
