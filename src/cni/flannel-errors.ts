/** The errors flannel adds to the CNI skeleton's, worded for the operator who reads them in a pod event. */
import { CniError, ErrorCode } from "./cni-error.js";

const weftdHint =
  "subnet.env is written by weftd (flanneld) once it holds this node's lease: is weftd running on this node? Check its log";

/**
 * Upstream's exact code and message (operators and alerts search for them); the hint goes in `details`,
 * which upstream leaves empty. Runtimes print a CNI error as "<msg>; <details>" (libcni's Error()), so the
 * upstream text stays a prefix of what the operator sees and the hint follows it.
 */
export function subnetEnvFailure(err: unknown): CniError {
  const msg = `failed to load flannel 'subnet.env' file: ${(err as Error).message}. Check the flannel pod log for this node.`;
  return new CniError(ErrorCode.internal, msg, weftdHint);
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
