/** STATUS (CNI 1.1): ready when subnet.env is readable and complete and the delegate is installed. */

import type { CniEnv } from "./cni-env.js";
import { asCniError } from "./cni-error.js";
import { findPlugin } from "./delegate-exec.js";
import { notAvailable, subnetEnvFailure } from "./flannel-errors.js";
import type { FlannelNetConf } from "./net-conf.js";
import { loadSubnetEnv } from "./subnet-env.js";

export function commandStatus(env: CniEnv, conf: FlannelNetConf): string {
  try {
    loadSubnetEnv(conf.subnetFile);
  } catch (err) {
    throw notAvailable(subnetEnvFailure(err));
  }
  const type = conf.delegate?.["type"];
  if (env.path !== "") {
    try {
      findPlugin(typeof type === "string" ? type : "bridge", env.path);
    } catch (err) {
      throw notAvailable(asCniError(err));
    }
  }
  return "";
}
