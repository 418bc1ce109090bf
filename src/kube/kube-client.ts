/**
 * A thin Kubernetes API client over node:http(s): JSON requests and line-delimited watch streams, nothing
 * more. It replaces @kubernetes/client-node, which alone adds ~77 MB to the process.
 */
import { readFileSync } from "node:fs";
import { Agent as HttpAgent, request as httpRequest, type IncomingMessage } from "node:http";
import { Agent as HttpsAgent, request as httpsRequest } from "node:https";
import { boundText } from "../text/untrusted-text.js";
import { type ExecCredential, ExecCredentials } from "./exec-credential.js";
import type { KubeConnection } from "./kube-connection.js";

/** The API answered with an error Status. */
export class KubeApiError extends Error {
  constructor(
    readonly method: string,
    readonly path: string,
    readonly code: number,
    readonly reason: string,
    readonly apiMessage: string,
    /** The server's Retry-After header, or the Status's details.retryAfterSeconds. */
    readonly retryAfterSeconds?: number,
  ) {
    super(`${method} ${path}: ${code} ${reason}: ${apiMessage}`);
    this.name = "KubeApiError";
  }
}

/** The API could not be reached (connection refused or reset, TLS failure, timeout). */
export class KubeConnectionError extends Error {
  constructor(
    server: string,
    cause: string,
    /** The errno or TLS error code (ECONNRESET, CERT_HAS_EXPIRED), or "TOKEN" when our token is unreadable. */
    readonly code?: string,
  ) {
    super(`cannot reach the Kubernetes API at ${server}: ${cause}`);
    this.name = "KubeConnectionError";
  }
}

/** A watch stream that carried no bytes (not even a bookmark) for too long: likely a half-open connection. */
export class KubeWatchIdleError extends Error {
  constructor(readonly idleMs: number) {
    super(`the watch carried no data for ${idleMs / 1000} s (the connection is probably dead)`);
    this.name = "KubeWatchIdleError";
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
/**
 * With allowWatchBookmarks the API sends a bookmark about once a minute, so 90 s of silence means the
 * connection is dead; an older API that only sends events costs one cheap resume per quiet 90 s.
 */
export const WATCH_IDLE_MS = 90_000;

export class KubeClient {
  private agent: HttpAgent | HttpsAgent;
  private readonly secure: boolean;
  /** The exec plugin's credentials, when the kubeconfig user has one. */
  private readonly credentials: ExecCredentials | undefined;
  /** The credential whose client certificate `agent` presents, if the plugin gave one. */
  private agentCredential: ExecCredential | undefined;

  constructor(readonly connection: KubeConnection) {
    this.secure = connection.server.startsWith("https://");
    this.credentials = connection.exec ? new ExecCredentials(connection.exec) : undefined;
    this.agent = this.makeAgent(connection.cert, connection.key);
  }

  private makeAgent(
    cert: Buffer | string | undefined,
    key: Buffer | string | undefined,
  ): HttpAgent | HttpsAgent {
    const { connection } = this;
    return this.secure
      ? new HttpsAgent({
          keepAlive: true,
          maxSockets: 4,
          ...(connection.ca ? { ca: connection.ca } : {}),
          ...(cert ? { cert } : {}),
          ...(key ? { key } : {}),
          rejectUnauthorized: !connection.insecureSkipTlsVerify,
        })
      : new HttpAgent({ keepAlive: true, maxSockets: 4 });
  }

  /**
   * A plugin's new client certificate needs new TLS connections: the old agent's are closed (a watch on them
   * ends and is resumed by its owner, now with the new certificate).
   */
  private agentFor(credential: ExecCredential | undefined): HttpAgent | HttpsAgent {
    if (credential?.cert && credential !== this.agentCredential) {
      this.agent.destroy();
      this.agent = this.makeAgent(credential.cert, credential.key);
      this.agentCredential = credential;
    }
    return this.agent;
  }

  private headers(
    contentType: string | undefined,
    credential: ExecCredential | undefined,
  ): Record<string, string> {
    const headers: Record<string, string> = {
      accept: "application/json",
      "user-agent": "weftd (flanneld-compatible)",
    };
    if (contentType) headers["content-type"] = contentType;
    const token = credential
      ? credential.token
      : this.connection.tokenFile
        ? readFileSync(this.connection.tokenFile, "utf8").trim()
        : this.connection.token;
    if (token) headers.authorization = `Bearer ${token}`;
    return headers;
  }

  /**
   * open() with the exec plugin's credential; a 401 to that credential runs the plugin again and repeats the
   * request once (a token revoked or expired early), as a second 401 is the answer.
   */
  private async openWithCredentials(
    method: string,
    path: string,
    body: string | undefined,
    contentType: string | undefined,
    timeoutMs: number | undefined,
    timeoutUntilHeaders = false,
  ): Promise<IncomingMessage> {
    for (let attempt = 0; ; attempt++) {
      const credential = await this.credentials?.current();
      const res = await this.open(
        method,
        path,
        body,
        contentType,
        timeoutMs,
        timeoutUntilHeaders,
        credential,
      );
      if (res.statusCode !== 401 || !credential || attempt > 0) return res;
      res.resume();
      this.credentials!.refused(credential);
    }
  }

  private open(
    method: string,
    path: string,
    body: string | undefined,
    contentType: string | undefined,
    timeoutMs: number | undefined,
    timeoutUntilHeaders: boolean,
    credential: ExecCredential | undefined,
  ): Promise<IncomingMessage> {
    const send = this.secure ? httpsRequest : httpRequest;
    return new Promise((resolve, reject) => {
      let headers: Record<string, string>;
      try {
        headers = this.headers(contentType, credential);
      } catch (err) {
        reject(
          new KubeConnectionError(
            this.connection.server,
            `cannot read the token: ${(err as Error).message}`,
            "TOKEN",
          ),
        );
        return;
      }
      const req = send(
        `${this.connection.server}${path}`,
        { method, agent: this.agentFor(credential), headers },
        (res) => {
          // A watch keeps its own idle timer on the body from here on.
          if (timeoutUntilHeaders) req.setTimeout(0);
          resolve(res);
        },
      );
      if (timeoutMs) {
        req.setTimeout(timeoutMs, () => req.destroy(new Error(`no answer within ${timeoutMs / 1000} s`)));
      }
      req.on("error", (err: NodeJS.ErrnoException) =>
        reject(
          new KubeConnectionError(
            this.connection.server,
            err.code ? `${err.code} ${err.message}` : err.message,
            err.code,
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
    const res = await this.openWithCredentials(
      method,
      path,
      text,
      text === undefined ? undefined : contentType,
      REQUEST_TIMEOUT_MS,
    );
    const raw = await readAll(res).catch((err: NodeJS.ErrnoException) => {
      throw new KubeConnectionError(this.connection.server, err.message, err.code ?? "ECONNRESET");
    });
    const status = res.statusCode ?? 0;
    if (status >= 200 && status < 300) {
      try {
        return JSON.parse(raw) as T;
      } catch {
        throw new KubeApiError(method, path, status, "BadResponse", "the answer is not JSON");
      }
    }
    throw apiError(method, path, res, raw);
  }

  /**
   * Opens a watch; each event line goes to onEvent in order. Rejects with KubeApiError if the API refuses
   * the watch itself; later trouble ends the stream (done resolves with the error). A stream silent for
   * idleMs (no event, no bookmark, no answer at all) is cut and ends with KubeWatchIdleError: a half-open
   * connection never ends by itself.
   */
  async watch(
    path: string,
    onEvent: (event: WatchEvent) => void,
    idleMs = WATCH_IDLE_MS,
  ): Promise<WatchHandle> {
    const res = await this.openWithCredentials("GET", path, undefined, undefined, idleMs, true);
    const status = res.statusCode ?? 0;
    if (status !== 200) throw apiError("GET", path, res, await readAll(res).catch(() => ""));
    let closed = false;
    let idle = false;
    let buffered = "";
    let timer: NodeJS.Timeout | undefined;
    const arm = () => {
      clearTimeout(timer);
      timer = setTimeout(() => {
        idle = true;
        res.destroy();
      }, idleMs);
    };
    arm();
    const done = new Promise<"end" | Error>((resolve) => {
      const finish = (outcome: "end" | Error) => {
        clearTimeout(timer);
        resolve(outcome);
      };
      res.setEncoding("utf8");
      res.on("data", (chunk: string) => {
        arm();
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
              finish(new Error("the watch stream carried a line that is not JSON"));
              return;
            }
            onEvent(event);
          }
          newline = buffered.indexOf("\n");
        }
      });
      res.on("end", () => finish("end"));
      res.on("error", (err) => finish(idle ? new KubeWatchIdleError(idleMs) : err));
      res.on("close", () =>
        finish(
          closed ? "end" : idle ? new KubeWatchIdleError(idleMs) : new Error("the watch connection closed"),
        ),
      );
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

function apiError(method: string, path: string, res: IncomingMessage, raw: string): KubeApiError {
  const status = res.statusCode ?? 0;
  let reason = "";
  let message = raw.trim();
  let retryAfter = retryAfterHeader(res.headers["retry-after"]);
  try {
    const parsed = JSON.parse(raw) as {
      reason?: unknown;
      message?: unknown;
      details?: { retryAfterSeconds?: unknown };
    };
    if (typeof parsed.reason === "string") reason = parsed.reason;
    if (typeof parsed.message === "string") message = parsed.message;
    const seconds = parsed.details?.retryAfterSeconds;
    if (retryAfter === undefined && typeof seconds === "number" && seconds > 0) retryAfter = seconds;
  } catch {
    // not a Status body (a proxy's error page)
  }
  return new KubeApiError(
    method,
    path,
    status,
    boundText(reason || `HTTP ${status}`),
    boundText(message, 300),
    retryAfter,
  );
}

/** Retry-After in seconds (the API sends seconds; an HTTP date from a proxy is read too). */
function retryAfterHeader(value: string | undefined): number | undefined {
  if (!value) return undefined;
  if (/^\d+$/.test(value.trim())) return Number(value.trim());
  const date = Date.parse(value);
  return Number.isNaN(date) ? undefined : Math.max(0, Math.ceil((date - Date.now()) / 1000));
}

function readAll(res: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    res.on("data", (c: Buffer) => chunks.push(c));
    res.on("end", () => resolve(Buffer.concat(chunks).toString("utf8")));
    res.on("error", reject);
  });
}
