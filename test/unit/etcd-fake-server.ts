/** A stand-in for etcd's gRPC API over h2c on 127.0.0.1, for the etcd-grpc and etcd-watch unit tests. */
import http2, { type Http2Server, type ServerHttp2Stream } from "node:http2";
import { type AddressInfo, connect, createServer, type Server, type Socket } from "node:net";
import { encodeGrpcFrame, GrpcFrameReader } from "../../src/subnet/etcd/grpc-frame.js";
import { ProtoReader, ProtoWriter, WIRE_LEN, WIRE_VARINT } from "../../src/subnet/etcd/protobuf.js";

export interface FakeCall {
  /** "KV/Range", "Watch/Watch", ... */
  readonly method: string;
  readonly token: string | undefined;
  /** The grpc-timeout header, if any (e.g. "1999m"). */
  readonly timeout: string | undefined;
  /** The "hasleader" metadata (clientv3's WithRequireLeader sends "true"). */
  readonly hasLeader: string | undefined;
  /** The request messages so far (a unary call has one). */
  readonly messages: Buffer[];
}

/** How a handler answers; it may also never answer. */
export interface FakeReply {
  /** One framed message (response headers go first, once). */
  message(bytes: Uint8Array): void;
  /** Raw DATA bytes, for frames split or joined at will. */
  raw(bytes: Uint8Array): void;
  /** Ends the call with this status in the trailers (OK by default). */
  end(code?: number, message?: string): void;
  /** A trailers-only answer: headers carrying the status, no messages. */
  fail(code: number, message: string): void;
  readonly stream: ServerHttp2Stream;
}

export type FakeHandler = (call: FakeCall, reply: FakeReply) => void;

export class FakeEtcd {
  readonly calls: FakeCall[] = [];
  /** TCP connections accepted so far. */
  connections = 0;
  private readonly sockets = new Set<Socket>();

  private constructor(
    private readonly server: Http2Server,
    readonly endpoint: string,
  ) {
    server.on("connection", (socket: Socket) => {
      this.connections += 1;
      this.sockets.add(socket);
      socket.on("close", () => this.sockets.delete(socket));
    });
  }

  /** Calls `handler` at each call's first message (or at its end, if it sends none). */
  static async start(handler: FakeHandler): Promise<FakeEtcd> {
    let fake: FakeEtcd | undefined;
    const server = http2.createServer();
    server.on("stream", (stream, headers) => {
      const path = String(headers[":path"] ?? "");
      const call: FakeCall = {
        method: path.replace(/^\/etcdserverpb\./, ""),
        token: typeof headers["token"] === "string" ? headers["token"] : undefined,
        timeout: typeof headers["grpc-timeout"] === "string" ? headers["grpc-timeout"] : undefined,
        hasLeader: typeof headers["hasleader"] === "string" ? headers["hasleader"] : undefined,
        messages: [],
      };
      fake!.calls.push(call);
      const reply = replyOn(stream);
      const frames = new GrpcFrameReader();
      let handled = false;
      const handle = () => {
        if (handled) return;
        handled = true;
        handler(call, reply);
      };
      stream.on("data", (chunk: Buffer) => {
        for (const message of frames.push(chunk)) {
          call.messages.push(Buffer.from(message));
          handle();
        }
      });
      stream.on("end", handle);
      stream.on("error", () => {});
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    fake = new FakeEtcd(server, `http://127.0.0.1:${(server.address() as AddressInfo).port}`);
    return fake;
  }

  /** An endpoint where nothing listens (a port that was just free). */
  static async refusedEndpoint(): Promise<string> {
    const server = createServer();
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const port = (server.address() as AddressInfo).port;
    await new Promise<void>((resolve) => server.close(() => resolve()));
    return `http://127.0.0.1:${port}`;
  }

  methods(): string[] {
    return this.calls.map((c) => c.method);
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

function replyOn(stream: ServerHttp2Stream): FakeReply {
  const respond = () => {
    if (!stream.headersSent && !stream.destroyed) {
      stream.respond({ ":status": 200, "content-type": "application/grpc" }, { waitForTrailers: true });
      stream.on("wantTrailers", () => stream.sendTrailers(trailers));
    }
  };
  let trailers: Record<string, string> = { "grpc-status": "0" };
  return {
    stream,
    message(bytes) {
      respond();
      if (!stream.destroyed) stream.write(encodeGrpcFrame(bytes));
    },
    raw(bytes) {
      respond();
      if (!stream.destroyed) stream.write(bytes);
    },
    end(code = 0, message = "") {
      respond();
      trailers = { "grpc-status": String(code), ...(message ? { "grpc-message": encodeURI(message) } : {}) };
      if (!stream.destroyed) stream.end();
    },
    fail(code, message) {
      if (stream.destroyed) return;
      stream.respond(
        {
          ":status": 200,
          "content-type": "application/grpc",
          "grpc-status": String(code),
          "grpc-message": encodeURI(message),
        },
        { endStream: true },
      );
    },
  };
}

/**
 * A TCP relay to `target` that can go silent: freeze() stops passing anything on, in both directions, as a
 * peer that vanished (the connection stays open, nothing answers).
 */
export class FreezableRelay {
  private frozen = false;

  private constructor(
    private readonly server: Server,
    readonly endpoint: string,
    private readonly sockets: Set<Socket>,
  ) {}

  static async start(target: string): Promise<FreezableRelay> {
    const { hostname, port } = new URL(target);
    let relay: FreezableRelay | undefined;
    const sockets = new Set<Socket>();
    const server = createServer((client) => {
      const upstream = connect(Number(port), hostname);
      sockets.add(client).add(upstream);
      client.on("data", (chunk) => {
        if (!relay!.frozen) upstream.write(chunk);
      });
      upstream.on("data", (chunk) => {
        if (!relay!.frozen) client.write(chunk);
      });
      client.on("close", () => upstream.destroy());
      upstream.on("close", () => client.destroy());
      client.on("error", () => {});
      upstream.on("error", () => {});
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    relay = new FreezableRelay(server, `http://127.0.0.1:${(server.address() as AddressInfo).port}`, sockets);
    return relay;
  }

  freeze(): void {
    this.frozen = true;
  }

  async stop(): Promise<void> {
    for (const socket of this.sockets) socket.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}

/** A message's fields in order, varints as bigint and length-delimited ones as bytes. */
export function fields(data: Uint8Array): Array<[number, bigint | Buffer]> {
  const reader = new ProtoReader(data);
  const out: Array<[number, bigint | Buffer]> = [];
  for (let field = reader.next(); field !== undefined; field = reader.next()) {
    if (reader.currentWireType === WIRE_VARINT) out.push([field, reader.uint64()]);
    else if (reader.currentWireType === WIRE_LEN) out.push([field, Buffer.from(reader.bytes())]);
    else reader.skip();
  }
  return out;
}

/** ResponseHeader{revision} inside a response, as field 1. */
export function header(revision: number | bigint): ProtoWriter {
  return new ProtoWriter().int64(1, 14841639068965178418n).int64(2, 10276657743932975437n).int64(3, revision);
}

/** mvccpb.KeyValue. */
export function keyValue(
  key: string,
  value: string,
  modRevision: number,
  lease: bigint | number = 0,
): ProtoWriter {
  return new ProtoWriter()
    .bytesField(1, key)
    .int64(2, modRevision)
    .int64(3, modRevision)
    .int64(4, 1)
    .bytesField(5, value)
    .int64(6, lease);
}

export const b = (hex: string) => Buffer.from(hex.replace(/\s+/g, ""), "hex");
