/**
 * GC (CNI 1.1): forgets saved delegate configs of this network's attachments the runtime no longer has.
 * Files of other networks sharing the dataDir are left alone.
 */
import { CniError, ErrorCode } from "./cni-error.js";
import { type FlannelNetConf, isObject } from "./net-conf.js";
import { listScratch, readScratch, removeScratch } from "./scratch-store.js";

export function commandGc(conf: FlannelNetConf): string {
  const attachments = conf.raw["cni.dev/valid-attachments"];
  if (!Array.isArray(attachments)) {
    throw new CniError(
      ErrorCode.invalidNetworkConfig,
      'GC needs "cni.dev/valid-attachments" (a list of {containerID, ifname}) in the config',
    );
  }
  const valid = new Set<string>();
  for (const a of attachments)
    if (isObject(a) && typeof a["containerID"] === "string") valid.add(a["containerID"]);

  for (const id of listScratch(conf.dataDir)) {
    if (valid.has(id)) continue;
    let owner: unknown;
    try {
      const saved = readScratch(conf.dataDir, id);
      const parsed: unknown = saved ? JSON.parse(saved.toString("utf8")) : undefined;
      owner = isObject(parsed) ? parsed["name"] : undefined;
    } catch {
      owner = undefined; // unreadable: useless to any network's DEL
    }
    if (typeof owner === "string" && owner !== conf.name) continue;
    removeScratch(conf.dataDir, id);
  }
  return "";
}
