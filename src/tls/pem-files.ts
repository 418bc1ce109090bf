/**
 * Checks of the TLS files an operator names (etcd's --etcd-cafile/-certfile/-keyfile, the Kubernetes CA),
 * made when they are read. Node's TLS takes a CA file without one PEM certificate in it silently, and then
 * every connection fails certificate checks, retried forever with no word about the file; Go (flanneld)
 * refuses such a file at start. So do we, with the file's name.
 */
import { createPrivateKey, X509Certificate } from "node:crypto";
import { boundText } from "../text/untrusted-text.js";
import { UserError } from "../user-error.js";

const CERTIFICATE_BLOCK = /-----BEGIN CERTIFICATE-----[^-]*-----END CERTIFICATE-----/g;

/** `data` must hold one or more PEM certificates, each of which parses; `source` names the file. */
export function requirePemCertificates(data: Buffer, source: string, hint: string): void {
  const blocks = data.toString("latin1").match(CERTIFICATE_BLOCK) ?? [];
  if (blocks.length === 0) {
    throw new UserError(`${source} holds no PEM certificate (no "-----BEGIN CERTIFICATE-----" block)`, hint);
  }
  for (const [index, block] of blocks.entries()) {
    try {
      new X509Certificate(block);
    } catch (err) {
      throw new UserError(
        `${source}: certificate ${index + 1} of ${blocks.length} cannot be read (${boundText((err as Error).message)})`,
        hint,
      );
    }
  }
}

/** `data` must be a private key in PEM form. */
export function requirePemKey(data: Buffer, source: string, hint: string): void {
  try {
    createPrivateKey({ key: data, format: "pem" });
  } catch (err) {
    throw new UserError(`${source} is not a PEM private key (${boundText((err as Error).message)})`, hint);
  }
}
