/**
 * One gRPC call on an HTTP/2 session: POST /<service>/<method> with content-type application/grpc, our
 * messages framed out, etcd's framed back, and how the call ended: a gRPC status (from the trailers, or
 * the headers of a trailers-only answer), an HTTP answer that is not gRPC, or a failure of the transport.
 */
import http2, { type ClientHttp2Session, type ClientHttp2Stream, type IncomingHttpHeaders } from "node:http2";
import { encodeGrpcFrame, GrpcFrameReader } from "./grpc-frame.js";
import { type GrpcStatus, readGrpcStatus } from "./grpc-status.js";

export type GrpcOutcome =
  | { readonly kind: "status"; readonly status: GrpcStatus }
  | { readonly kind: "http"; readonly httpStatus: number; readonly contentType: string }
  | {
      readonly kind: "failed";
      readonly error: Error;
      /** etcd sent response headers: the request certainly reached it. */
      readonly answered: boolean;
      /** The server refused the stream unprocessed (REFUSED_STREAM, GOAWAY): safe to send elsewhere. */
      readonly refused: boolean;
    };

export interface GrpcCallEvents {
  /** Each message from etcd, in order. */
  onMessage(message: Buffer): void;
  /** How the call ended; exactly once, and never after cancel(). */
  onEnd(outcome: GrpcOutcome): void;
  /** The stream is gone, cancelled or not: for releasing what the call held. */
  onClose?(): void;
}

export class GrpcCall {
  private stream: ClientHttp2Stream | undefined;
  private headers: IncomingHttpHeaders | undefined;
  private trailers: IncomingHttpHeaders | undefined;
  private error: Error | undefined;
  /** etcd's bytes were not gRPC messages we accept: ends the call whatever the status says. */
  private frameError: Error | undefined;
  /** The connection went away under the stream. */
  private aborted = false;
  private done = false;
  private readonly frames = new GrpcFrameReader();

  /** `path` is "/etcdserverpb.KV/Range" and the like; `metadata` extra headers (the auth token). */
  constructor(
    session: ClientHttp2Session,
    path: string,
    metadata: Record<string, string>,
    private readonly events: GrpcCallEvents,
  ) {
    try {
      this.stream = session.request(
        {
          ":method": "POST",
          ":path": path,
          "content-type": "application/grpc",
          te: "trailers",
          ...metadata,
        },
        { endStream: false },
      );
    } catch (err) {
      // The session closed under us (GOAWAY, destroyed): nothing was sent.
      queueMicrotask(() => {
        this.events.onClose?.();
        this.end({ kind: "failed", error: err as Error, answered: false, refused: true });
      });
      return;
    }
    const stream = this.stream;
    stream.on("response", (headers) => {
      this.headers = headers;
    });
    stream.on("data", (chunk: Buffer) => this.onData(chunk));
    stream.on("trailers", (trailers) => {
      this.trailers = trailers;
    });
    stream.on("aborted", () => {
      this.aborted = true;
    });
    stream.on("error", (err) => {
      this.error ??= err;
    });
    // etcd ending its side ends the call, even while ours is open (the watch): Node would only emit
    // "close" once both sides are done.
    stream.on("end", () => {
      this.finish();
      if (!stream.destroyed) stream.close();
    });
    stream.on("close", () => {
      this.events.onClose?.();
      this.finish();
    });
  }

  /** Sends one message; `last` ends our side of the stream (a unary call's only message). */
  send(message: Uint8Array, last: boolean): void {
    const stream = this.stream;
    if (!stream || stream.destroyed || this.done) return;
    const frame = encodeGrpcFrame(message);
    if (last) stream.end(frame);
    else stream.write(frame);
  }

  /** Ends the call from our side (RST_STREAM CANCEL); no event comes after this. */
  cancel(): void {
    this.done = true;
    const stream = this.stream;
    if (stream && !stream.destroyed) stream.close(http2.constants.NGHTTP2_CANCEL);
  }

  private onData(chunk: Buffer): void {
    // Only a gRPC answer carries gRPC messages; anything else is reported from its headers at the end.
    if (this.done || !this.isGrpcAnswer()) return;
    let messages: Buffer[];
    try {
      messages = this.frames.push(chunk);
    } catch (err) {
      this.frameError = err as Error;
      this.stream?.close(http2.constants.NGHTTP2_CANCEL);
      return;
    }
    for (const message of messages) {
      // A handler may cancel the call: nothing more after that.
      if (this.done) return;
      this.events.onMessage(message);
    }
  }

  /** Works out how the call ended, once: at the end of etcd's side or when the stream closes. */
  private finish(): void {
    if (!this.done) this.end(this.outcome());
  }

  private outcome(): GrpcOutcome {
    const answered = this.headers !== undefined;
    if (this.frameError) return { kind: "failed", error: this.frameError, answered, refused: false };
    if (answered && !this.isGrpcAnswer()) {
      const httpStatus = Number(this.headers?.[":status"] ?? 0);
      return { kind: "http", httpStatus, contentType: String(this.headers?.["content-type"] ?? "") };
    }
    const status = readGrpcStatus(this.trailers) ?? readGrpcStatus(this.headers);
    if (status) return { kind: "status", status };
    const rstCode = this.stream?.rstCode;
    const refused =
      rstCode === http2.constants.NGHTTP2_REFUSED_STREAM ||
      (this.error as NodeJS.ErrnoException | undefined)?.code === "ERR_HTTP2_GOAWAY_SESSION";
    const error = this.error ?? new Error(this.whyEnded(answered, rstCode));
    return { kind: "failed", error, answered, refused };
  }

  private isGrpcAnswer(): boolean {
    const contentType = String(this.headers?.["content-type"] ?? "");
    return Number(this.headers?.[":status"]) === 200 && contentType.startsWith("application/grpc");
  }

  /** Why a stream that gave no status and no error ended. */
  private whyEnded(answered: boolean, rstCode: number | undefined): string {
    if (this.aborted)
      return answered ? "the connection closed" : "the connection closed before etcd answered";
    if (rstCode) return `etcd reset the stream (${rstCodeName(rstCode)})`;
    if (this.frames.partialBytes > 0) return "the stream ended inside a message";
    return "the stream ended without a gRPC status";
  }

  private end(outcome: GrpcOutcome): void {
    if (this.done) return;
    this.done = true;
    this.events.onEnd(outcome);
  }
}

/** HTTP/2 error codes (RFC 9113 section 7) by number. */
const RST_CODES = [
  "NO_ERROR",
  "PROTOCOL_ERROR",
  "INTERNAL_ERROR",
  "FLOW_CONTROL_ERROR",
  "SETTINGS_TIMEOUT",
  "STREAM_CLOSED",
  "FRAME_SIZE_ERROR",
  "REFUSED_STREAM",
  "CANCEL",
  "COMPRESSION_ERROR",
  "CONNECT_ERROR",
  "ENHANCE_YOUR_CALM",
  "INADEQUATE_SECURITY",
  "HTTP_1_1_REQUIRED",
];

function rstCodeName(code: number): string {
  return RST_CODES[code] ?? `HTTP/2 error ${code}`;
}
