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
    server.once("error", (err: NodeJS.ErrnoException) =>
      reject(
        new UserError(
          `cannot serve health checks on ${host}:${port}: ${err.code ?? err.message}`,
          "choose another --healthz-port",
        ),
      ),
    );
    server.listen(port, host, () => resolve());
  });
  return server;
}
