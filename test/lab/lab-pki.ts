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

/** Where a TLS etcd started with tlsEtcdArgv listens (the fabric's address; 2379 is the lab's plain etcd). */
export const TLS_ETCD_URL = "https://172.31.0.254:2389";

/** The command line of an etcd in the fabric that serves TLS and requires client certificates. */
export function tlsEtcdArgv(pki: Pki, extra: readonly string[] = []): string[] {
  return [
    "etcd",
    "--name=tls",
    `--data-dir=${join(pki.dir, "data")}`,
    `--listen-client-urls=${TLS_ETCD_URL}`,
    `--advertise-client-urls=${TLS_ETCD_URL}`,
    "--listen-peer-urls=http://127.0.0.1:2390",
    "--initial-advertise-peer-urls=http://127.0.0.1:2390",
    "--initial-cluster=tls=http://127.0.0.1:2390",
    `--cert-file=${pki.serverCert}`,
    `--key-file=${pki.serverKey}`,
    `--trusted-ca-file=${pki.ca}`,
    "--client-cert-auth",
    ...extra,
  ];
}

/** etcdctl's flags to reach that etcd with the client certificate. */
export function tlsEtcdctlFlags(pki: Pki): string[] {
  return [
    `--endpoints=${TLS_ETCD_URL}`,
    `--cacert=${pki.ca}`,
    `--cert=${pki.clientCert}`,
    `--key=${pki.clientKey}`,
  ];
}
