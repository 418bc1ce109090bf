/** --healthz-ip/--healthz-port: /healthz (alive), /readyz (lease held, datapath programmed), /metrics. */
import { createServer, type Server } from "node:http";
import { UserError } from "../user-error.js";

export interface HealthSource {
  ready(): boolean;
  /** Prometheus text exposition lines. */
  metrics(): string;
}

export async function startHealthServer(host: string, port: number, source: HealthSource): Promise<Server> {
  const server = createServer((req, res) => {
    const path = (req.url ?? "/").split("?")[0];
    if (path === "/healthz") {
      res.writeHead(200, { "content-type": "text/plain" }).end("weftd is running\n");
    } else if (path === "/readyz") {
      const ready = source.ready();
      res
        .writeHead(ready ? 200 : 503, { "content-type": "text/plain" })
        .end(ready ? "ready\n" : "not ready\n");
    } else if (path === "/metrics") {
      res.writeHead(200, { "content-type": "text/plain; version=0.0.4" }).end(source.metrics());
    } else {
      res
        .writeHead(404, { "content-type": "text/plain" })
        .end("not found: try /healthz, /readyz or /metrics\n");
    }
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", (err: NodeJS.ErrnoException) => reject(listenError(host, port, err)));
    server.listen(port, host, () => resolve());
  });
  return server;
}

/** What the operator can do about a failed listen depends on why: the port, or the address. */
function listenError(host: string, port: number, err: NodeJS.ErrnoException): UserError {
  const where = `cannot serve health checks on ${host.includes(":") ? `[${host}]` : host}:${port}`;
  switch (err.code) {
    case "EADDRINUSE":
      return new UserError(`${where}: the port is in use`, "choose another --healthz-port");
    case "EACCES":
      return new UserError(`${where}: permission denied`, "choose a --healthz-port of 1024 or more");
    case "EADDRNOTAVAIL":
      return new UserError(
        `${where}: no interface of this host has that address`,
        "choose one of this host's addresses for --healthz-ip, or 0.0.0.0",
      );
    default:
      return new UserError(`${where}: ${err.code ?? err.message}`, "check --healthz-ip and --healthz-port");
  }
}
