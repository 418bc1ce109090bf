/**
 * The kernel WireGuard datapath: devices of type wireguard made over rtnetlink and configured over
 * generic netlink (the "wireguard" family, its id asked of nlctrl once). Chosen when the kernel can make
 * a wireguard device. This machine's kernel cannot (no module), so this file is exercised only through
 * its codec's byte tests (test/unit/genetlink-wireguard.test.ts); the userspace path is the tested one.
 */
import { NetlinkError } from "../../netlink/errors.js";
import { decodeFamilyId, encodeGetFamily, NETLINK_GENERIC } from "../../netlink/genetlink.js";
import type { RtNetlink } from "../../netlink/index.js";
import { NetlinkSocket } from "../../netlink/socket.js";
import {
  decodeDevice,
  encodeGetDevice,
  encodeSetDevice,
  WG_GENL_NAME,
} from "../../netlink/wireguard-genl.js";
import type { WireguardControl } from "./wireguard-control.js";
import type { UapiDevice, UapiPeerSet } from "./wireguard-uapi.js";

export class KernelWireguard implements WireguardControl {
  readonly datapath = "kernel";
  private socket: NetlinkSocket | undefined;
  private familyId: number | undefined;

  constructor(
    readonly names: readonly string[],
    private readonly netlink: RtNetlink,
    private readonly log: (message: string) => void,
  ) {}

  /** True when this kernel makes wireguard devices (it made or already has `name`). */
  static async available(netlink: RtNetlink, name: string): Promise<boolean> {
    const existing = await netlink.linkFind(name);
    if (existing) return existing.kind === "wireguard";
    try {
      await netlink.linkAdd({ name, kind: "wireguard" });
      return true;
    } catch (err) {
      // "Unknown device type": no module, or it cannot be loaded here.
      if (err instanceof NetlinkError && err.code === "EOPNOTSUPP") return false;
      throw err;
    }
  }

  private async family(): Promise<{ socket: NetlinkSocket; id: number }> {
    this.socket ??= NetlinkSocket.open({ protocol: NETLINK_GENERIC });
    if (this.familyId === undefined) {
      const replies = await this.socket.request(encodeGetFamily(WG_GENL_NAME), {
        operation: "resolve the wireguard genetlink family",
      });
      const id = replies.map(decodeFamilyId).find((v) => v !== undefined);
      if (id === undefined) throw new Error("nlctrl gave no id for the wireguard family");
      this.familyId = id;
    }
    return { socket: this.socket, id: this.familyId };
  }

  async ensureAll(): Promise<void> {
    for (const name of this.names) {
      const link = await this.netlink.linkFind(name);
      if (link?.kind === "wireguard") continue;
      if (link) {
        this.log(
          `device ${name} exists as ${link.kind ?? "a plain device"}; replacing it with a wireguard device`,
        );
        await this.netlink.linkDel(link.index);
      }
      await this.netlink.linkAdd({ name, kind: "wireguard" });
      this.log(`created kernel wireguard device ${name}`);
    }
  }

  async get(device: string): Promise<UapiDevice | undefined> {
    const { socket, id } = await this.family();
    try {
      return decodeDevice(
        await socket.request(encodeGetDevice(id, device), {
          dump: true,
          operation: `wireguard get ${device}`,
        }),
      );
    } catch (err) {
      if (err instanceof NetlinkError && err.code === "ENODEV") return undefined;
      throw err;
    }
  }

  private async set(device: string, what: Parameters<typeof encodeSetDevice>[1]): Promise<void> {
    const { socket, id } = await this.family();
    await socket.request(encodeSetDevice(id, what), { operation: `wireguard set ${device}` });
  }

  setDevice(device: string, privateKeyHex: string, listenPort: number): Promise<void> {
    return this.set(device, { ifname: device, privateKey: privateKeyHex, listenPort });
  }

  setPeer(device: string, peer: UapiPeerSet): Promise<void> {
    return this.set(device, { ifname: device, peers: [peer] });
  }

  removePeer(device: string, publicKeyHex: string): Promise<void> {
    return this.set(device, { ifname: device, removePeers: [publicKeyHex] });
  }

  close(): void {
    this.socket?.close();
    this.socket = undefined;
  }
}
