/** vxlan's BackendData: {"VNI":1,"VtepMAC":"ca:02:e3:ba:24:33"} (this key order, as flanneld writes it). */
import { isPlainObject, JsonFields } from "../../config/json-fields.js";
import { describeValue } from "../../text/untrusted-text.js";

export interface VxlanBackendData {
  readonly VNI: number;
  readonly VtepMAC: string;
}

const MAC = /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/i;

export function makeVxlanBackendData(vni: number, mac: string): VxlanBackendData {
  return { VNI: vni, VtepMAC: mac };
}

/**
 * The peer's VTEP MAC, or a reason why it cannot be used. The value is untrusted: it is shown through
 * describeValue (never walked), and a group address is refused here, since no VTEP has one and the
 * kernel rejects it as a neighbour or FDB entry.
 */
export function readVtepMac(data: unknown): { mac: string } | { reason: string } {
  if (!isPlainObject(data)) return { reason: "its BackendData is missing or not an object" };
  const mac = new JsonFields(data).get("VtepMAC");
  if (typeof mac !== "string" || !MAC.test(mac))
    return { reason: `its VtepMAC ${describeValue(mac)} is not a MAC address` };
  const lower = mac.toLowerCase();
  // The low bit of the first octet marks a group address (multicast; ff:ff:ff:ff:ff:ff is broadcast).
  if ((Number.parseInt(lower.slice(0, 2), 16) & 1) === 1) {
    const kind = lower === "ff:ff:ff:ff:ff:ff" ? "broadcast" : "multicast";
    return { reason: `its VtepMAC ${lower} is a ${kind} address, not a VTEP's` };
  }
  // An all-zero FDB entry is the device's default destination: it would send every unknown frame there.
  if (lower === "00:00:00:00:00:00") return { reason: "its VtepMAC is the all-zero address, not a VTEP's" };
  return { mac: lower };
}
