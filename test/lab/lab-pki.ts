/** Test certificates for etcd with TLS: a CA, and a server and a client certificate for the fabric's address. */
import { execFile } from "node:child_process";
import { mkdtemp, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { promisify } from "node:util";

export interface Pki {
  dir: string;
  ca: string;
  serverCert: string;
  serverKey: string;
  /** CN=client: etcd takes the Common Name for the user when no token comes with a call. */
  clientCert: string;
  clientKey: string;
}

/** A CA and a server and a client certificate for 172.31.0.254 in a fresh folder under `parent`. */
export async function makePki(parent: string): Promise<Pki> {
  const dir = await mkdtemp(join(parent, "pki-"));
  const openssl = (args: string[]) => promisify(execFile)("openssl", args, { cwd: dir });
  await openssl([
    "req",
    "-x509",
    "-newkey",
    "rsa:2048",
    "-nodes",
    "-days",
    "1",
    "-subj",
    "/CN=weft-test-ca",
    "-keyout",
    "ca.key",
    "-out",
    "ca.crt",
  ]);
  await writeFile(
    join(dir, "san.cnf"),
    "subjectAltName=IP:172.31.0.254\nextendedKeyUsage=serverAuth,clientAuth\n",
  );
  for (const [name, subject] of [
    ["server", "/CN=server"],
    ["client", "/CN=client"],
  ] as const) {
    await openssl([
      "req",
      "-newkey",
      "rsa:2048",
      "-nodes",
      "-subj",
      subject,
      "-keyout",
      `${name}.key`,
      "-out",
      `${name}.csr`,
    ]);
    await openssl([
      "x509",
      "-req",
      "-in",
      `${name}.csr`,
      "-CA",
      "ca.crt",
      "-CAkey",
      "ca.key",
      "-CAcreateserial",
      "-days",
      "1",
      "-extfile",
      "san.cnf",
      "-out",
      `${name}.crt`,
    ]);
  }
  return {
    dir,
    ca: join(dir, "ca.crt"),
    serverCert: join(dir, "server.crt"),
    serverKey: join(dir, "server.key"),
    clientCert: join(dir, "client.crt"),
    clientKey: join(dir, "client.key"),
  };
}
