/** DEL: replays the delegate config saved by ADD, then forgets it; nothing saved means nothing to undo. */

import type { CniEnv } from "./cni-env.js";
import { CniError, ErrorCode } from "./cni-error.js";
import { execPlugin, findPlugin } from "./delegate-exec.js";
import { goPathError } from "./go-errors.js";
import { type FlannelNetConf, isObject } from "./net-conf.js";
import { readScratch, removeScratch, scratchPath } from "./scratch-store.js";
import { writeFully } from "./write-fd.js";

export async function commandDel(env: CniEnv, conf: FlannelNetConf): Promise<string> {
  let saved: Buffer | undefined;
  try {
    saved = readScratch(conf.dataDir, env.containerID);
  } catch (err) {
    throw new CniError(
      ErrorCode.ioFailure,
      goPathError(err, "open", scratchPath(conf.dataDir, env.containerID)),
    );
  }
  if (!saved) return "";

  let type: unknown;
  try {
    const parsed: unknown = JSON.parse(saved.toString("utf8"));
    type = isObject(parsed) ? parsed["type"] : undefined;
  } catch {
    type = undefined;
  }
  if (typeof type !== "string") {
    // Nothing can be replayed from it; the veth goes when the netns does. Upstream also succeeds here.
    writeFully(2, `flannel: ignoring unreadable ${scratchPath(conf.dataDir, env.containerID)}\n`);
    removeScratch(conf.dataDir, env.containerID);
    return "";
  }
  // On failure the file stays, so the runtime's retry of DEL can still clean up.
  await execPlugin(findPlugin(type, env.path), "DEL", saved, "failed to delegate del");
  removeScratch(conf.dataDir, env.containerID);
  return "";
}
