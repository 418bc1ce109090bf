/**
 * The --remote-cafile/--remote-certfile/--remote-keyfile files, shared by the client and the server (v0.7
 * uses the same three flags on both sides): read bounded, checked as PEM, one error naming the flag.
 */
import { readSmallFile } from "../../fs/read-small-file.js";
import { requirePemCertificates, requirePemKey } from "../../tls/pem-files.js";
import { UserError } from "../../user-error.js";
import type { StoreFlags } from "../registry.js";

export interface RemoteTlsFiles {
  readonly ca: Buffer | undefined;
  readonly cert: Buffer | undefined;
  readonly key: Buffer | undefined;
}

function readPem(flags: StoreFlags, flag: string, kind: "certificates" | "key"): Buffer | undefined {
  const path = flags.string(flag);
  if (!path) return undefined;
  let data: Buffer;
  try {
    data = readSmallFile(path, 16 * 1024 * 1024);
  } catch (err) {
    throw new UserError(`cannot read --${flag} ${path}: ${(err as Error).message}`, "check the path");
  }
  const check = kind === "key" ? requirePemKey : requirePemCertificates;
  check(data, `--${flag} ${path}`, "give a PEM file");
  return data;
}

export function readRemoteTlsFiles(flags: StoreFlags): RemoteTlsFiles {
  const files = {
    ca: readPem(flags, "remote-cafile", "certificates"),
    cert: readPem(flags, "remote-certfile", "certificates"),
    key: readPem(flags, "remote-keyfile", "key"),
  };
  if ((files.cert === undefined) !== (files.key === undefined)) {
    throw new UserError(
      "--remote-certfile and --remote-keyfile go together",
      "give both (the certificate and its key) or neither",
    );
  }
  return files;
}

/** v0.7 speaks HTTPS as soon as any of the three is given. */
export function usesTls(files: RemoteTlsFiles): boolean {
  return files.ca !== undefined || files.cert !== undefined || files.key !== undefined;
}
