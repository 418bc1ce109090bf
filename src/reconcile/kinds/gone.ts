/** A remove of something already gone is a success: the state is as wanted. */
import { NetlinkError } from "../../netlink/index.js";
import { MissingDeviceError } from "./link-names.js";

/** Errnos the kernel answers a delete with when the entry (or its device) no longer exists. */
const GONE = new Set(["ESRCH", "ENOENT", "ENODEV"]);

export function isGone(err: unknown): boolean {
  return err instanceof MissingDeviceError || (err instanceof NetlinkError && GONE.has(err.code));
}

export async function removeUnlessGone(remove: () => Promise<void>): Promise<void> {
  try {
    await remove();
  } catch (err) {
    if (!isGone(err)) throw err;
  }
}
