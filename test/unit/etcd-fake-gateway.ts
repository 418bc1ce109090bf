/** A stand-in for etcd's JSON gateway on 127.0.0.1, for the etcd-http and etcd-watch unit tests. */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo, Socket } from "node:net";

export interface FakeRequest {
  path: string;
  authorization: string | undefined;
  body: Record<string, unknown>;
}

export type FakeHandler = (request: FakeRequest, response: ServerResponse) => void;

export class FakeGateway {
  readonly requests: FakeRequest[] = [];
  private readonly sockets = new Set<Socket>();

  private constructor(
    private readonly server: Server,
    readonly endpoint: string,
  ) {
    server.on("connection", (socket) => {
      this.sockets.add(socket);
      socket.on("close", () => this.sockets.delete(socket));
    });
  }

  /** Calls `handler` with each parsed request; the handler answers (or never does). */
  static async start(handler: FakeHandler): Promise<FakeGateway> {
    let gateway: FakeGateway | undefined;
    const server = createServer((req: IncomingMessage, res: ServerResponse) => {
      const chunks: Buffer[] = [];
      req.on("data", (chunk: Buffer) => chunks.push(chunk));
      req.on("end", () => {
        const text = Buffer.concat(chunks).toString("utf8");
        const request: FakeRequest = {
          path: req.url ?? "",
          authorization: req.headers.authorization,
          body: text ? (JSON.parse(text) as Record<string, unknown>) : {},
        };
        gateway!.requests.push(request);
        handler(request, res);
      });
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    gateway = new FakeGateway(server, `http://127.0.0.1:${(server.address() as AddressInfo).port}`);
    return gateway;
  }

  /** An endpoint where nothing listens (a port that was just free). */
  static async refusedEndpoint(): Promise<string> {
    const server = createServer();
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const port = (server.address() as AddressInfo).port;
    await new Promise<void>((resolve) => server.close(() => resolve()));
    return `http://127.0.0.1:${port}`;
  }

  paths(): string[] {
    return this.requests.map((r) => r.path);
  }

  /** Cuts every connection, as a crashed etcd would. */
  dropConnections(): void {
    for (const socket of this.sockets) socket.destroy();
  }

  async stop(): Promise<void> {
    this.dropConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}

export function answerJson(response: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  response.writeHead(status, {
    "content-type": "application/json",
    "content-length": Buffer.byteLength(text),
  });
  response.end(text);
}

/** etcd's error body, e.g. answerError(res, 401, 16, "etcdserver: invalid auth token"). */
export function answerError(response: ServerResponse, status: number, code: number, message: string): void {
  answerJson(response, status, { error: message, message, code });
}

export const HEADER = { cluster_id: "1", member_id: "2", revision: "7", raft_term: "2" };
