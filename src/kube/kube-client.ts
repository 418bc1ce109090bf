/**
 * A thin Kubernetes API client over node:http(s): JSON requests and line-delimited watch streams, nothing
 * more. It replaces @kubernetes/client-node, which alone adds ~77 MB to the process.
 */
import { readFileSync } from "node:fs";
import { Agent as HttpAgent, request as httpRequest, type IncomingMessage } from "node:http";
import { Agent as HttpsAgent, request as httpsRequest } from "node:https";
import type { KubeConnection } from "./kube-connection.js";

/** The API answered with an error Status. */
export class KubeApiError extends Error {
  constructor(
    readonly method: string,
    readonly path: string,
    readonly code: number,
    readonly reason: string,
    readonly apiMessage: string,
  ) {
    super(`${method} ${path}: ${code} ${reason}: ${apiMessage}`);
    this.name = "KubeApiError";
  }
}

/** The API could not be reached (connection refused, TLS failure, timeout). */
export class KubeConnectionError extends Error {
  constructor(server: string, cause: string) {
    super(`cannot reach the Kubernetes API at ${server}: ${cause}`);
    this.name = "KubeConnectionError";
  }
}

export interface WatchEvent {
  readonly type: string;
  readonly object: unknown;
}

export interface WatchHandle {
  /** Resolves when the stream ends: "end" for a clean end (timeout), else the error. */
  readonly done: Promise<"end" | Error>;
  close(): void;
}

const REQUEST_TIMEOUT_MS = 30_000;

export class KubeClient {
  private readonly agent: HttpAgent | HttpsAgent;
  private readonly secure: boolean;

  constructor(readonly connection: KubeConnection) {
    this.secure = connection.server.startsWith("https://");
    this.agent = this.secure
      ? new HttpsAgent({
          keepAlive: true,
          maxSockets: 4,
          ...(connection.ca ? { ca: connection.ca } : {}),
          ...(connection.cert ? { cert: connection.cert } : {}),
          ...(connection.key ? { key: connection.key } : {}),
          rejectUnauthorized: !connection.insecureSkipTlsVerify,
        })
      : new HttpAgent({ keepAlive: true, maxSockets: 4 });
  }

  private headers(contentType: string | undefined): Record<string, string> {
    const headers: Record<string, string> = {
      accept: "application/json",
      "user-agent": "weftd (flanneld-compatible)",
    };
    if (contentType) headers["content-type"] = contentType;
    const token = this.connection.tokenFile
      ? readFileSync(this.connection.tokenFile, "utf8").trim()
      : this.connection.token;
    if (token) headers.authorization = `Bearer ${token}`;
    return headers;
  }

  private open(
    method: string,
    path: string,
    body: string | undefined,
    contentType: string | undefined,
    timeoutMs: number | undefined,
  ): Promise<IncomingMessage> {
    const send = this.secure ? httpsRequest : httpRequest;
    return new Promise((resolve, reject) => {
      let headers: Record<string, string>;
      try {
        headers = this.headers(contentType);
      } catch (err) {
        reject(
          new KubeConnectionError(this.connection.server, `cannot read the token: ${(err as Error).message}`),
        );
        return;
      }
      const req = send(`${this.connection.server}${path}`, { method, agent: this.agent, headers }, resolve);
      if (timeoutMs) {
        req.setTimeout(timeoutMs, () => req.destroy(new Error(`no answer within ${timeoutMs / 1000} s`)));
      }
      req.on("error", (err: NodeJS.ErrnoException) =>
        reject(
          new KubeConnectionError(
            this.connection.server,
            err.code ? `${err.code} ${err.message}` : err.message,
          ),
        ),
      );
      req.end(body);
    });
  }

  /** A JSON request; resolves with the parsed body of a 2xx answer, rejects with KubeApiError otherwise. */
  async request<T>(
    method: string,
    path: string,
    body?: unknown,
    contentType = "application/json",
  ): Promise<T> {
    const text = body === undefined ? undefined : typeof body === "string" ? body : JSON.stringify(body);
    const res = await this.open(
      method,
      path,
      text,
      text === undefined ? undefined : contentType,
      REQUEST_TIMEOUT_MS,
    );
    const raw = await readAll(res).catch((err: Error) => {
      throw new KubeConnectionError(this.connection.server, err.message);
    });
    const status = res.statusCode ?? 0;
    if (status >= 200 && status < 300) {
      try {
        return JSON.parse(raw) as T;
      } catch {
        throw new KubeApiError(method, path, status, "BadResponse", "the answer is not JSON");
      }
    }
    throw apiError(method, path, status, raw);
  }

  /**
   * Opens a watch; each event line goes to onEvent in order. Rejects with KubeApiError if the API refuses
   * the watch itself; later trouble ends the stream (done resolves with the error).
   */
  async watch(path: string, onEvent: (event: WatchEvent) => void): Promise<WatchHandle> {
    const res = await this.open("GET", path, undefined, undefined, undefined);
    const status = res.statusCode ?? 0;
    if (status !== 200) throw apiError("GET", path, status, await readAll(res).catch(() => ""));
    let closed = false;
    let buffered = "";
    const done = new Promise<"end" | Error>((resolve) => {
      res.setEncoding("utf8");
      res.on("data", (chunk: string) => {
        buffered += chunk;
        let newline = buffered.indexOf("\n");
        while (newline >= 0 && !closed) {
          const line = buffered.slice(0, newline).trim();
          buffered = buffered.slice(newline + 1);
          if (line !== "") {
            let event: WatchEvent;
            try {
              event = JSON.parse(line) as WatchEvent;
            } catch {
              res.destroy();
              resolve(new Error("the watch stream carried a line that is not JSON"));
              return;
            }
            onEvent(event);
          }
          newline = buffered.indexOf("\n");
        }
      });
      res.on("end", () => resolve("end"));
      res.on("error", (err) => resolve(err));
      res.on("close", () => resolve(closed ? "end" : new Error("the watch connection closed")));
    });
    return {
      done,
      close: () => {
        closed = true;
        res.destroy();
      },
    };
  }

  close(): void {
    this.agent.destroy();
  }
}

function apiError(method: string, path: string, status: number, raw: string): KubeApiError {
  let reason = "";
  let message = raw.trim().slice(0, 300);
  try {
    const parsed = JSON.parse(raw) as { reason?: string; message?: string };
    reason = parsed.reason ?? "";
    message = parsed.message ?? message;
  } catch {
    // not a Status body
  }
  return new KubeApiError(method, path, status, reason || `HTTP ${status}`, message);
}

function readAll(res: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    res.on("data", (c: Buffer) => chunks.push(c));
    res.on("end", () => resolve(Buffer.concat(chunks).toString("utf8")));
    res.on("error", reject);
  });
}
