/**
 * weftd --listen: serves the v0.7 client/server API backed by etcd (the --etcd-* flags) and runs no
 * datapath, as `flanneld --listen` does. SIGTERM closes the listener and every long poll.
 */
import { connectEtcdStore, etcdPrefix } from "../subnet/etcd/open-etcd-subnet-manager.js";
import type { StoreFlags } from "../subnet/registry.js";
import { readRemoteTlsFiles } from "../subnet/remote/remote-tls.js";
import { UserError } from "../user-error.js";
import { parseListenTarget, RemoteServer } from "./remote-server.js";

export interface ServerLogger {
  info(message: string, verbosity?: number): void;
  warn(message: string): void;
}

export async function runServer(
  flags: StoreFlags,
  env: NodeJS.ProcessEnv,
  log: ServerLogger,
): Promise<RemoteServer> {
  const target = parseListenTarget(flags.string("listen"), env);
  const tls = readRemoteTlsFiles(flags);
  if (tls.ca && !tls.cert) {
    throw new UserError(
      "--remote-cafile on the server needs --remote-certfile and --remote-keyfile",
      "give the server's certificate and key; the CA then verifies the clients' certificates",
    );
  }
  const store = await connectEtcdStore(flags);
  const server = new RemoteServer({
    store,
    prefix: etcdPrefix(flags),
    tls: tls.cert ? tls : undefined,
    log: (m, v) => log.info(m, v),
    warn: (m) => log.warn(m),
  });
  try {
    await server.listen(target);
  } catch (err) {
    store.close();
    throw new UserError(
      `cannot listen on ${flags.string("listen")}: ${(err as Error).message}`,
      "choose a free address of this host",
    );
  }
  const where = "fd" in target ? "the socket from systemd (fd 3)" : `${target.host}:${target.port}`;
  log.info(
    `running as server on ${where} (${tls.cert ? (tls.ca ? "HTTPS, client certificates required" : "HTTPS") : "HTTP"}); etcd prefix ${etcdPrefix(flags)}`,
  );
  return server;
}
