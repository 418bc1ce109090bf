/**
 * ADD: subnet.env + network config -> delegate config, saved to dataDir (so DEL can replay it) before the
 * delegate runs; the delegate's result is flannel's result.
 */

import type { CniEnv } from "./cni-env.js";
import { asCniError, CniError, ErrorCode } from "./cni-error.js";
import { buildDelegateConfig } from "./delegate-config.js";
import { execPlugin, findPlugin } from "./delegate-exec.js";
import { subnetEnvFailure, withPrefix } from "./flannel-errors.js";
import { goPathError } from "./go-errors.js";
import { type FlannelNetConf, isObject } from "./net-conf.js";
import { convertResult } from "./result-convert.js";
import { readScratch, removeScratch, saveScratch, scratchPath } from "./scratch-store.js";
import { loadSubnetEnv } from "./subnet-env.js";

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
    throw new CniError(
      ErrorCode.ioFailure,
      goPathError(err, "open", scratchPath(conf.dataDir, env.containerID)),
      `flannel keeps each container's delegate config in dataDir (${conf.dataDir}); it must be writable`,
    );
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
