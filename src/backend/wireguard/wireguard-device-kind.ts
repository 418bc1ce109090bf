/**
 * Each WireGuard device's own settings (private key, listen port) as a kind of managed state: a
 * wireguard-go started anew has none, and a key set by hand (`wg set flannel-wg private-key ...`) is
 * put back by the next full run.
 */
import type { KindShape, StateKind } from "../../reconcile/state-kind.js";
import type { WireguardControl } from "./wireguard-control.js";

export interface WgDeviceEntry {
  readonly device: string;
  /** base64. Never logged. */
  readonly privateKey: string;
  readonly listenPort: number;
}

export const wgDeviceShape: KindShape<WgDeviceEntry> = {
  name: "wg-device",
  plural: "wireguard device settings",
  key: (e) => e.device,
  same: (a, b) => a.device === b.device && a.privateKey === b.privateKey && a.listenPort === b.listenPort,
  describe: (e) => `wireguard device ${e.device} (key from the key file, port ${e.listenPort})`,
};

export function wgDeviceKind(control: () => WireguardControl | undefined): StateKind<WgDeviceEntry> {
  return {
    ...wgDeviceShape,
    layer: 0,
    owns() {
      return true;
    },
    async readActual() {
      const entries: WgDeviceEntry[] = [];
      const devices = control();
      if (!devices) return entries;
      for (const device of devices.names) {
        const state = await devices.get(device);
        if (state?.privateKey) {
          const privateKey = Buffer.from(state.privateKey, "hex").toString("base64");
          entries.push({ device, privateKey, listenPort: state.listenPort });
        }
      }
      return entries;
    },
    async put(entry) {
      const keyHex = Buffer.from(entry.privateKey, "base64").toString("hex");
      const devices = control();
      if (!devices) throw new Error("the wireguard devices are not set up yet");
      await devices.setDevice(entry.device, keyHex, entry.listenPort);
    },
    async remove() {
      // Nothing to undo: a device we no longer want is stopped with its process.
    },
  };
}
