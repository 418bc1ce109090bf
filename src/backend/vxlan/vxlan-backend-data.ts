/** vxlan's BackendData: {"VNI":1,"VtepMAC":"ca:02:e3:ba:24:33"} (this key order, as flanneld writes it). */
import { isPlainObject, JsonFields } from "../../config/json-fields.js";

export interface VxlanBackendData {
  readonly VNI: number;
  readonly VtepMAC: string;
}

const MAC = /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/i;

export function makeVxlanBackendData(vni: number, mac: string): VxlanBackendData {
  return { VNI: vni, VtepMAC: mac };
}

/** The peer's VTEP MAC, or a reason why it cannot be used. */
export function readVtepMac(data: unknown): { mac: string } | { reason: string } {
  if (!isPlainObject(data)) return { reason: "its BackendData is missing or not an object" };
  const mac = new JsonFields(data).get("VtepMAC");
  if (typeof mac !== "string" || !MAC.test(mac))
    return { reason: `its VtepMAC ${JSON.stringify(mac)} is not a MAC address` };
  return { mac: mac.toLowerCase() };
}
