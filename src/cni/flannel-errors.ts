/** The errors flannel adds to the CNI skeleton's, worded for the operator who reads them in a pod event. */
import { CniError, ErrorCode } from "./cni-error.js";
import { SubnetEnvError } from "./subnet-env.js";

const weftdHint =
  "subnet.env is written by weftd (flanneld) once it holds this node's lease: is weftd running on this node? Check its log";

/** Upstream's exact message (operators search for it); guidance goes in details, except when the file is
 * simply missing, where upstream's message already says where to look and the golden output has no details. */
export function subnetEnvFailure(err: unknown, alwaysHint = false): CniError {
  const msg = `failed to load flannel 'subnet.env' file: ${(err as Error).message}. Check the flannel pod log for this node.`;
  const missing = err instanceof SubnetEnvError && err.missing;
  return new CniError(ErrorCode.internal, msg, missing && !alwaysHint ? "" : weftdHint);
}

/** STATUS: what keeps ADD from working, and the hint that goes with it. */
export function notAvailable(err: CniError): CniError {
  return new CniError(ErrorCode.pluginNotAvailable, `plugin not available: ${err.message}`, err.details);
}

/** `prefix: message`, keeping the code and details (as Go's %w wrapping keeps the wrapped error). */
export function withPrefix(err: unknown, prefix: string): CniError {
  if (err instanceof CniError) return new CniError(err.code, `${prefix}: ${err.message}`, err.details);
  return new CniError(ErrorCode.internal, `${prefix}: ${(err as Error).message ?? String(err)}`);
}
