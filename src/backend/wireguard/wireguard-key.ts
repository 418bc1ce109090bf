/**
 * WireGuard keys: Curve25519 (X25519) key pairs as 32 raw bytes, written in base64 in configs and
 * leases and in hex on the userspace UAPI. The private key is generated once and kept in the key file
 * (flannel's /run/flannel/wgkey, or $WIREGUARD_KEY_FILE), so a restart publishes the same public key.
 */
import { createPrivateKey, createPublicKey, generateKeyPairSync } from "node:crypto";
import { readFile, rename, writeFile } from "node:fs/promises";
import { dirname } from "node:path";
import { makeDirectories } from "../../fs/make-directories.js";
import { UserError } from "../../user-error.js";

export const DEFAULT_KEY_FILE = "/run/flannel/wgkey";
const KEY_BYTES = 32;
/** DER prefixes of PKCS#8 / SPKI X25519 keys (RFC 8410): the raw 32 bytes follow them. */
const PKCS8_X25519 = Buffer.from("302e020100300506032b656e04220420", "hex");

/** A base64 WireGuard key as 32 bytes, or undefined when it is not one (wgtypes.ParseKey's rule). */
export function decodeKey(text: string): Buffer | undefined {
  if (!/^[A-Za-z0-9+/]{43}=$/.test(text)) return undefined;
  const bytes = Buffer.from(text, "base64");
  return bytes.length === KEY_BYTES ? bytes : undefined;
}

export function encodeKey(bytes: Buffer): string {
  return bytes.toString("base64");
}

/** The public key of a raw private key. */
export function publicKeyOf(privateKey: Buffer): Buffer {
  const key = createPrivateKey({
    key: Buffer.concat([PKCS8_X25519, privateKey]),
    format: "der",
    type: "pkcs8",
  });
  const spki = createPublicKey(key).export({ format: "der", type: "spki" });
  return spki.subarray(spki.length - KEY_BYTES);
}

/** A new private key, clamped as `wg genkey` does (curve25519 clamps anyway; this keeps the bytes equal). */
export function generatePrivateKey(): Buffer {
  const { privateKey } = generateKeyPairSync("x25519");
  const der = privateKey.export({ format: "der", type: "pkcs8" });
  const raw = Buffer.from(der.subarray(der.length - KEY_BYTES));
  raw[0]! &= 248;
  raw[31]! &= 127;
  raw[31]! |= 64;
  return raw;
}

export interface KeyPair {
  readonly privateKey: Buffer;
  readonly publicKey: Buffer;
  readonly created: boolean;
}

/** Reads the key file, or creates it (mode 0400, as flannel) with a new key when it does not exist. */
export async function loadOrCreateKey(path: string): Promise<KeyPair> {
  let text: string | undefined;
  try {
    text = await readFile(path, "utf8");
  } catch (err) {
    if ((err as { code?: string }).code !== "ENOENT") {
      throw new UserError(`cannot read the WireGuard key file ${path}: ${(err as Error).message}`);
    }
  }
  if (text !== undefined) {
    // flannel writes no newline; `wg genkey > file` does: accept both.
    const privateKey = decodeKey(text.trim());
    if (!privateKey) {
      throw new UserError(
        `the WireGuard key file ${path} does not hold a private key (32 bytes in base64)`,
        "delete it to have a new key made, or write one with `wg genkey`",
      );
    }
    return { privateKey, publicKey: publicKeyOf(privateKey), created: false };
  }
  const privateKey = generatePrivateKey();
  makeDirectories(dirname(path), 0o755); // not Node's recursive mkdir: it spins under /proc
  // Written whole under another name first, so a crash never leaves half a key.
  const partial = `${path}.${process.pid}.tmp`;
  await writeFile(partial, encodeKey(privateKey), { mode: 0o400 });
  await rename(partial, path);
  return { privateKey, publicKey: publicKeyOf(privateKey), created: true };
}
