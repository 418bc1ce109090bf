/**
 * WireGuard's cross-platform userspace API (https://www.wireguard.com/xplatform/), which wireguard-go
 * serves on /var/run/wireguard/<device>.sock: a request is "get=1" or "set=1" and key=value lines,
 * ended by an empty line; the answer is key=value lines ending with "errno=N" and an empty line. Keys
 * are hex there (base64 everywhere else). Pure encoding and parsing; the socket is wireguard-uapi-client.ts.
 */

/** The device as `get=1` reports it (what weft compares; handshake times and counters are dropped). */
export interface UapiDevice {
  /** Hex; undefined when no private key is set. */
  readonly privateKey: string | undefined;
  readonly listenPort: number;
  readonly peers: readonly UapiPeer[];
}

export interface UapiPeer {
  /** Hex. */
  readonly publicKey: string;
  /** Hex; all zeros = none. */
  readonly presharedKey: string;
  /** "10.0.0.2:51820" or "[fd00::2]:51821"; undefined when none is known. */
  readonly endpoint: string | undefined;
  readonly keepaliveSeconds: number;
  readonly allowedIPs: readonly string[];
}

/** A peer as weft sets it: every field given, its allowed IPs replacing the old ones. */
export interface UapiPeerSet {
  readonly publicKey: string;
  readonly presharedKey: string | undefined;
  readonly endpoint: string;
  readonly keepaliveSeconds: number;
  readonly allowedIPs: readonly string[];
}

export const ZERO_KEY_HEX = "0".repeat(64);

export class UapiError extends Error {
  constructor(
    message: string,
    readonly errno: number,
  ) {
    super(message);
    this.name = "UapiError";
  }
}

export const GET_REQUEST = "get=1\n\n";

/** Values are weft's own (keys, addresses, numbers), never free text: a newline would end the request. */
function line(key: string, value: string | number): string {
  const text = String(value);
  if (/[\n=]/.test(text)) throw new Error(`UAPI value for ${key} may not contain a newline or "="`);
  return `${key}=${text}\n`;
}

export function encodeSetDevice(privateKeyHex: string, listenPort: number): string {
  return `set=1\n${line("private_key", privateKeyHex)}${line("listen_port", listenPort)}\n`;
}

export function encodeSetPeer(peer: UapiPeerSet): string {
  let text = "set=1\n";
  text += line("public_key", peer.publicKey);
  text += line("preshared_key", peer.presharedKey ?? ZERO_KEY_HEX);
  text += line("endpoint", peer.endpoint);
  text += line("persistent_keepalive_interval", peer.keepaliveSeconds);
  text += "replace_allowed_ips=true\n";
  for (const ip of peer.allowedIPs) text += line("allowed_ip", ip);
  return `${text}\n`;
}

export function encodeRemovePeer(publicKeyHex: string): string {
  return `set=1\n${line("public_key", publicKeyHex)}remove=true\n\n`;
}

/** The errno line of an answer; throws UapiError unless it is 0. */
export function checkErrno(answer: string, what: string): void {
  const match = /(?:^|\n)errno=(-?\d+)\n/.exec(answer);
  if (!match) throw new UapiError(`${what}: the answer has no errno line`, -1);
  const errno = Number(match[1]);
  if (errno !== 0) throw new UapiError(`${what} failed with errno ${errno}`, errno);
}

/** Parses the answer to get=1. */
export function parseGetAnswer(answer: string): UapiDevice {
  checkErrno(answer, "get=1");
  let privateKey: string | undefined;
  let listenPort = 0;
  const peers: UapiPeer[] = [];
  let peer: { -readonly [K in keyof UapiPeer]: UapiPeer[K] } | undefined;
  for (const text of answer.split("\n")) {
    if (text === "") continue;
    const eq = text.indexOf("=");
    if (eq < 0) throw new UapiError(`malformed UAPI line ${JSON.stringify(text)}`, -1);
    const key = text.slice(0, eq);
    const value = text.slice(eq + 1);
    if (key === "public_key") {
      peer = {
        publicKey: value,
        presharedKey: ZERO_KEY_HEX,
        endpoint: undefined,
        keepaliveSeconds: 0,
        allowedIPs: [],
      };
      peers.push(peer);
      continue;
    }
    if (!peer) {
      if (key === "private_key") privateKey = value === ZERO_KEY_HEX ? undefined : value;
      else if (key === "listen_port") listenPort = Number(value);
      continue;
    }
    if (key === "preshared_key") peer.presharedKey = value;
    else if (key === "endpoint") peer.endpoint = value;
    else if (key === "persistent_keepalive_interval") peer.keepaliveSeconds = Number(value);
    else if (key === "allowed_ip") peer.allowedIPs = [...peer.allowedIPs, value];
  }
  return { privateKey, listenPort, peers };
}
