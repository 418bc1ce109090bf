#!/usr/bin/env node
/**
 * Runs the Kubernetes API test server as its own process (the lab starts it in the fabric namespace):
 *   node dist/test/kube-api/server-main.js --listen=172.31.0.254:6443 --dir=<tls and kubeconfig dir>
 *     [--admin-token=T] [--weft-token=T] [--bookmark-interval-ms=N] [--history=N] [--log-requests]
 *     [--faults=<JSON array of fault rules, see faults.ts>]
 * Prints one JSON line {"url","caFile",...} on stdout once it listens; stops on SIGTERM.
 */
import { mkdirSync } from "node:fs";
import { KubeApiServer } from "./api-server.js";
import { parseFaultRules } from "./faults.js";
import { ADMIN_USER, DEFAULT_ADMIN_TOKEN, DEFAULT_WEFT_TOKEN, WEFT_USER } from "./identities.js";
import { CLIENT_CERT_CN, makeTlsMaterial } from "./tls-material.js";

function option(name: string, fallback: string): string {
  const prefix = `--${name}=`;
  const arg = process.argv.slice(2).find((a) => a.startsWith(prefix));
  return arg ? arg.slice(prefix.length) : fallback;
}

async function main(): Promise<void> {
  const listen = option("listen", "127.0.0.1:0");
  const colon = listen.lastIndexOf(":");
  const host = listen.slice(0, colon);
  const port = Number(listen.slice(colon + 1));
  const dir = option("dir", "");
  if (!dir) throw new Error("--dir is required");
  mkdirSync(dir, { recursive: true });
  const tls = makeTlsMaterial(dir, host === "127.0.0.1" || host === "0.0.0.0" ? [] : [host]);
  const adminToken = option("admin-token", DEFAULT_ADMIN_TOKEN);
  const weftToken = option("weft-token", DEFAULT_WEFT_TOKEN);
  const logRequests = process.argv.includes("--log-requests");
  const server = new KubeApiServer({
    host,
    port,
    tls,
    tokens: new Map([
      [adminToken, { name: ADMIN_USER, role: "admin" }],
      [weftToken, { name: WEFT_USER, role: "flannel" }],
    ]),
    certificateRoles: new Map([[CLIENT_CERT_CN, "flannel"]]),
    historyLimit: Number(option("history", "1000")),
    bookmarkIntervalMs: Number(option("bookmark-interval-ms", "60000")),
    faults: parseFaultRules(JSON.parse(option("faults", "[]"))),
    ...(logRequests
      ? {
          onRequest: (e) =>
            process.stderr.write(
              `${e.method} ${e.url} ct=${e.contentType} user=${e.user}${e.body ? ` ${e.body}` : ""}\n`,
            ),
        }
      : {}),
  });
  const url = await server.listen();
  process.stdout.write(
    `${JSON.stringify({ url, caFile: tls.caFile, clientCertFile: tls.clientCertFile, clientKeyFile: tls.clientKeyFile, adminToken, weftToken })}\n`,
  );
  const stop = () => void server.close().finally(() => process.exit(0));
  process.on("SIGTERM", stop);
  process.on("SIGINT", stop);
}

main().catch((err: Error) => {
  process.stderr.write(`kube-api test server: ${err.message}\n`);
  process.exit(1);
});
