/**
 * The wireguard backend's keys in Backend{...}, with flannel's defaults (pkg/backend/wireguard at HEAD):
 * ListenPort 51820, ListenPortV6 51821, MTU = the external interface's (the device gets MTU - 80), PSK
 * (optional, a WireGuard key in base64), PersistentKeepaliveInterval (seconds; 0 = off) and Mode.
 */
import { ConfigError } from "../../config/network-config.js";
import { describeValue } from "../../text/untrusted-text.js";
import { BackendKeys } from "../backend-keys.js";
import { decodeKey } from "./wireguard-key.js";

export type WireguardMode = "separate" | "auto" | "ipv4" | "ipv6";
const MODES: readonly WireguardMode[] = ["separate", "auto", "ipv4", "ipv6"];

/** Bytes WireGuard adds: outer IP (20, or 40 for IPv6) + UDP 8 + type 4 + index 4 + nonce 8 + tag 16, as flannel rounds it. */
export const WIREGUARD_OVERHEAD = 80;
export const WG_DEVICE = "flannel-wg";
export const WG_DEVICE_V6 = "flannel-wg-v6";

export interface WireguardConfig {
  readonly listenPort: number;
  readonly listenPortV6: number;
  /** The configured MTU; 0 = the external interface's. The device's is this minus the overhead. */
  readonly mtu: number;
  /** The preshared key as 32 raw bytes, or undefined. */
  readonly psk: Buffer | undefined;
  readonly keepaliveSeconds: number;
  readonly mode: WireguardMode;
}

export function parseWireguardConfig(backend: Readonly<Record<string, unknown>>): WireguardConfig {
  const keys = new BackendKeys("wireguard", backend);
  const modeText = keys.string("Mode") || "separate";
  // flannel compares the string as written: "Auto" is not a mode there either.
  if (!(MODES as readonly string[]).includes(modeText)) {
    throw new ConfigError(
      `Backend.Mode of the wireguard backend must be one of ${MODES.join(", ")}, not ${describeValue(modeText)}`,
    );
  }
  const pskText = keys.string("PSK");
  let psk: Buffer | undefined;
  if (pskText !== "") {
    psk = decodeKey(pskText);
    // The value is a secret: never echo it.
    if (!psk)
      throw new ConfigError(
        `Backend.PSK of the wireguard backend is not a WireGuard key (${pskText.length} characters): it must be 32 bytes in base64, as \`wg genpsk\` prints`,
      );
  }
  return {
    listenPort: keys.int("ListenPort", 51820, 1, 65535),
    listenPortV6: keys.int("ListenPortV6", 51821, 1, 65535),
    mtu: keys.int("MTU", 0, WIREGUARD_OVERHEAD + 68, 65535),
    psk,
    // flannel reads a JSON number of "nanoseconds" and multiplies by a second: the number is seconds.
    keepaliveSeconds: keys.int("PersistentKeepaliveInterval", 0, 0, 65535),
    mode: modeText as WireguardMode,
  };
}

/** The device's MTU (and the pods'): the configured or external MTU minus WireGuard's overhead. */
export function wireguardMtu(settings: WireguardConfig, externalMtu: number): number {
  return (settings.mtu || externalMtu) - WIREGUARD_OVERHEAD;
}
