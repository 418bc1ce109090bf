/**
 * ADD: subnet.env + network config -> delegate config, saved to dataDir (so DEL can replay it) before the
 * delegate runs; the delegate's result is flannel's result.
 */

import { boundText } from "../text/untrusted-text.js";
import type { CniEnv } from "./cni-env.js";
import { asCniError, CniError, ErrorCode } from "./cni-error.js";
import { buildDelegateConfig } from "./delegate-config.js";
import { execPlugin, findPlugin } from "./delegate-exec.js";
import { subnetEnvFailure, withPrefix } from "./flannel-errors.js";
import { errnoCode, goPathError } from "./go-errors.js";
import { type FlannelNetConf, isObject } from "./net-conf.js";
import { convertResult } from "./result-convert.js";
import { readScratch, removeScratch, saveScratch, scratchPath } from "./scratch-store.js";
import { loadSubnetEnv } from "./subnet-env.js";

/** Linux's limit on one file name, in bytes. */
const NAME_MAX = 255;

export async function commandAdd(env: CniEnv, conf: FlannelNetConf, version: string): Promise<string> {
  let subnetEnv: ReturnType<typeof loadSubnetEnv>;
  try {
    subnetEnv = loadSubnetEnv(conf.subnetFile);
  } catch (err) {
    throw subnetEnvFailure(err);
  }
  const delegate = buildDelegateConfig(conf, subnetEnv);

  // A repeated ADD must not lose the config an earlier, successful ADD saved: DEL still needs it.
  const previous = readScratch(conf.dataDir, env.containerID);
  try {
    saveScratch(conf.dataDir, env.containerID, delegate.bytes);
  } catch (err) {
    throw scratchFailure(err, conf.dataDir, env.containerID);
  }
  try {
    const path = findPlugin(delegate.type, env.path);
    const stdout = await execPlugin(path, "ADD", delegate.bytes, "failed to delegate add");
    return formatResult(stdout, version);
  } catch (err) {
    restore(conf.dataDir, env.containerID, previous);
    // The delegate's own CNI error goes out verbatim, as upstream's does.
    if (err instanceof CniError && err.message.startsWith("failed to find plugin")) {
      throw withPrefix(err, "failed to delegate add");
    }
    throw asCniError(err);
  }
}

/** Why the delegate config could not be saved, bounded: the container ID may be of any length. */
function scratchFailure(err: unknown, dataDir: string, containerID: string): CniError {
  const idBytes = Buffer.byteLength(containerID);
  if (errnoCode(err) === "ENAMETOOLONG" && idBytes > NAME_MAX) {
    // Upstream fails here too, with "open <dataDir>/<the whole ID>: file name too long".
    return new CniError(
      ErrorCode.ioFailure,
      `container ID ${boundText(containerID)} is ${idBytes} bytes long: flannel saves each container's ` +
        `delegate config in dataDir under the container's ID, and a file name can have at most ${NAME_MAX} bytes`,
      "the container runtime must use shorter container IDs (runtimes use 64 hex characters)",
    );
  }
  return new CniError(
    ErrorCode.ioFailure,
    goPathError(err, "open", scratchPath(dataDir, containerID)),
    `flannel keeps each container's delegate config in dataDir (${boundText(dataDir, 300)}); it must be writable`,
  );
}

/** No half state: the saved file is what it was before this ADD (usually: none). */
function restore(dataDir: string, containerID: string, previous: Buffer | undefined): void {
  try {
    if (previous) saveScratch(dataDir, containerID, previous.toString("utf8"));
    else removeScratch(dataDir, containerID);
  } catch {
    // Best effort; the ADD error is what the runtime must see.
  }
}

function formatResult(stdout: Buffer, version: string): string {
  let result: unknown;
  try {
    result = JSON.parse(stdout.toString("utf8"));
  } catch (err) {
    throw new CniError(
      ErrorCode.decodingFailure,
      `failed to delegate add: the delegate's result is not JSON: ${(err as Error).message}`,
    );
  }
  if (!isObject(result)) {
    throw new CniError(
      ErrorCode.decodingFailure,
      "failed to delegate add: the delegate's result is not a JSON object",
    );
  }
  return JSON.stringify(convertResult(result, version, version), null, 4);
}
