/**
 * A CA, a server certificate and a client certificate for the test API server, made with the openssl CLI
 * into a directory at start. The server certificate covers 127.0.0.1, the lab's fabric address and the
 * in-cluster service names; the client certificate (CN weft-node) is for kubeconfig client-certificate users.
 */
import { execFileSync } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";

export interface TlsMaterial {
  readonly dir: string;
  readonly caFile: string;
  readonly caCert: string;
  readonly serverKey: string;
  readonly serverCert: string;
  readonly clientCertFile: string;
  readonly clientKeyFile: string;
}

export const CLIENT_CERT_CN = "weft-node";

function openssl(args: string[]): void {
  execFileSync("openssl", args, { stdio: ["ignore", "ignore", "pipe"], timeout: 20_000 });
}

function keyAndRequest(dir: string, name: string, subject: string): void {
  openssl([
    "req",
    "-new",
    "-newkey",
    "ec",
    "-pkeyopt",
    "ec_paramgen_curve:prime256v1",
    "-nodes",
    "-keyout",
    join(dir, `${name}.key`),
    "-out",
    join(dir, `${name}.csr`),
    "-subj",
    subject,
  ]);
}

function sign(dir: string, name: string, extensions: string): void {
  const extFile = join(dir, `${name}.ext`);
  writeFileSync(extFile, extensions);
  openssl([
    "x509",
    "-req",
    "-in",
    join(dir, `${name}.csr`),
    "-CA",
    join(dir, "ca.crt"),
    "-CAkey",
    join(dir, "ca.key"),
    "-CAcreateserial",
    "-days",
    "3",
    "-out",
    join(dir, `${name}.crt`),
    "-extfile",
    extFile,
  ]);
}

export function makeTlsMaterial(dir: string, extraIps: readonly string[] = []): TlsMaterial {
  openssl([
    "req",
    "-x509",
    "-newkey",
    "ec",
    "-pkeyopt",
    "ec_paramgen_curve:prime256v1",
    "-nodes",
    "-keyout",
    join(dir, "ca.key"),
    "-out",
    join(dir, "ca.crt"),
    "-days",
    "3",
    "-subj",
    "/CN=weft-test-ca",
  ]);
  const ips = ["127.0.0.1", "172.31.0.254", ...extraIps].map((ip) => `IP:${ip}`);
  const dns = ["localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc"].map(
    (d) => `DNS:${d}`,
  );
  keyAndRequest(dir, "server", "/CN=kube-apiserver");
  sign(
    dir,
    "server",
    `subjectAltName=${[...ips, ...dns].join(",")}\nextendedKeyUsage=serverAuth\nbasicConstraints=CA:FALSE\n`,
  );
  keyAndRequest(dir, "client", `/O=system:nodes/CN=${CLIENT_CERT_CN}`);
  sign(dir, "client", "extendedKeyUsage=clientAuth\nbasicConstraints=CA:FALSE\n");
  return {
    dir,
    caFile: join(dir, "ca.crt"),
    caCert: readFileSync(join(dir, "ca.crt"), "utf8"),
    serverKey: readFileSync(join(dir, "server.key"), "utf8"),
    serverCert: readFileSync(join(dir, "server.crt"), "utf8"),
    clientCertFile: join(dir, "client.crt"),
    clientKeyFile: join(dir, "client.key"),
  };
}
