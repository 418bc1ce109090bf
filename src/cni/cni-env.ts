/**
 * The CNI_* environment, required and validated per command as the CNI Go skeleton does, so a runtime
 * gets the same error codes from this plugin as from upstream's.
 */
import { boundText } from "../text/untrusted-text.js";
import { CniError, ErrorCode } from "./cni-error.js";
import { validName } from "./net-conf.js";

export const commands = ["ADD", "DEL", "CHECK", "GC", "STATUS", "VERSION"] as const;
export type CniCommand = (typeof commands)[number];

export interface CniEnv {
  readonly command: CniCommand;
  readonly containerID: string;
  readonly netns: string;
  readonly ifName: string;
  readonly args: string;
  readonly path: string;
}

const requiredFor: Record<string, readonly string[]> = {
  CNI_CONTAINERID: ["ADD", "CHECK", "DEL"],
  CNI_NETNS: ["ADD", "CHECK"],
  CNI_IFNAME: ["ADD", "CHECK", "DEL"],
  CNI_PATH: ["ADD", "CHECK", "DEL"],
};

const usage =
  "flannel is a CNI plugin: a container runtime runs it with CNI_COMMAND=ADD|DEL|CHECK|GC|STATUS|VERSION, " +
  "the CNI_* variables and the network config on stdin";

export function readCniEnv(env: NodeJS.ProcessEnv): CniEnv {
  const command = env["CNI_COMMAND"] ?? "";
  const missing = command === "" ? ["CNI_COMMAND"] : [];
  for (const [name, commandsNeeding] of Object.entries(requiredFor)) {
    if ((env[name] ?? "") === "" && commandsNeeding.includes(command)) missing.push(name);
  }
  if (missing.length > 0) {
    throw new CniError(
      ErrorCode.invalidEnvironment,
      `required env variables [${missing.join(",")}] missing`,
      command === "" ? usage : "",
    );
  }
  if (!(commands as readonly string[]).includes(command)) {
    throw new CniError(ErrorCode.invalidEnvironment, `unknown CNI_COMMAND: ${boundText(command)}`, usage);
  }
  return {
    command: command as CniCommand,
    containerID: env["CNI_CONTAINERID"] ?? "",
    netns: env["CNI_NETNS"] ?? "",
    ifName: env["CNI_IFNAME"] ?? "",
    args: env["CNI_ARGS"] ?? "",
    path: env["CNI_PATH"] ?? "",
  };
}

/** The container ID names a file in dataDir, so this check also keeps it inside dataDir. */
export function validateContainerID(id: string): void {
  if (id === "") throw new CniError(ErrorCode.unknownContainer, "missing containerID");
  if (!validName.test(id))
    // Upstream puts the ID in details; bounded and escaped here, as it may be anything of any length.
    throw new CniError(ErrorCode.invalidEnvironment, "invalid characters in containerID", boundText(id, 300));
}

export function validateInterfaceName(name: string): void {
  if (name === "") throw new CniError(ErrorCode.invalidEnvironment, "interface name is empty");
  if (Buffer.byteLength(name) > 15) {
    throw new CniError(
      ErrorCode.invalidEnvironment,
      "interface name is too long",
      "interface name should be less than 16 characters",
    );
  }
  if (name === "." || name === "..")
    throw new CniError(ErrorCode.invalidEnvironment, "interface name is . or ..");
  if (/[/:\s\u0085]/.test(name)) {
    throw new CniError(
      ErrorCode.invalidEnvironment,
      "interface name contains / or : or whitespace characters",
    );
  }
}
