/**
 * The plugin's dispatcher, in the CNI Go skeleton's order: environment, then the config's name, container
 * ID, interface name and version, then the command. Returns what goes to stdout; throws CniError.
 * Each command's module is loaded only when it runs: a plugin starts once per pod, and every module
 * the ESM loader resolves costs start-up time.
 */
import { boundText } from "../text/untrusted-text.js";
import { type CniEnv, readCniEnv, validateContainerID, validateInterfaceName } from "./cni-env.js";
import { CniError, ErrorCode } from "./cni-error.js";
import { requireSupportedVersion, requireVersionFor, versionInfoJson } from "./cni-version.js";
import {
  configVersion,
  decodeFlannelNetConf,
  parseConfigDocument,
  validatedNetworkName,
} from "./net-conf.js";
import { netnsIsOwn } from "./netns.js";

export async function runPlugin(processEnv: NodeJS.ProcessEnv, readStdin: () => string): Promise<string> {
  const env = readCniEnv(processEnv);
  // VERSION must answer without stdin or subnet.env: runtimes probe plugins with it.
  if (env.command === "VERSION") return versionInfoJson();

  const doc = parseConfigDocument(readStdin());
  validatedNetworkName(doc);
  const perContainer = env.command === "ADD" || env.command === "DEL" || env.command === "CHECK";
  if (perContainer) {
    validateContainerID(env.containerID);
    validateInterfaceName(env.ifName);
  }
  const version = configVersion(doc);
  if (env.command === "CHECK") requireVersionFor("CHECK", version, "0.4.0");
  if (env.command === "GC" || env.command === "STATUS") requireVersionFor(env.command, version, "1.1.0");
  requireSupportedVersion(version);
  return dispatch(env, doc, version);
}

async function dispatch(env: CniEnv, doc: Record<string, unknown>, version: string): Promise<string> {
  const conf = decodeFlannelNetConf(doc);
  switch (env.command) {
    case "ADD":
      if (netnsIsOwn(env.netns)) {
        throw new CniError(
          ErrorCode.invalidNetns,
          "plugin's netns and netns from CNI_NETNS should not be the same",
        );
      }
      return (await import("./command-add.js")).commandAdd(env, conf, version);
    case "DEL":
      return (await import("./command-del.js")).commandDel(env, conf);
    case "CHECK":
      return (await import("./command-check.js")).commandCheck(env, conf);
    case "GC":
      return (await import("./command-gc.js")).commandGc(conf);
    case "STATUS":
      return (await import("./command-status.js")).commandStatus(env, conf);
    default:
      throw new CniError(ErrorCode.invalidEnvironment, `unknown CNI_COMMAND: ${boundText(env.command)}`);
  }
}
