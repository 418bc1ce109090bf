/**
 * Requests to etcd's JSON gateway over node:http / node:https: deadlines, TLS, the auth token, and moving on
 * to the next endpoint when one cannot be reached. Every request is a POST of a JSON body.
 */
import http, { type Agent, type ClientRequest, type IncomingMessage } from "node:http";
import { describeSocketError, EtcdError, isAuthTokenError } from "./etcd-errors.js";
import { parseErrorBody } from "./etcd-json.js";

export interface EtcdHttpOptions {
  readonly endpoints: readonly string[];
  /** PEM contents of --etcd-cafile, --etcd-certfile and --etcd-keyfile (https endpoints only). */
  readonly ca: Buffer | undefined;
  readonly cert: Buffer | undefined;
  readonly key: Buffer | undefined;
  readonly username: string | undefined;
  readonly password: string | undefined;
  readonly callTimeoutMs: number;
}

/** An answered request whose body is not read yet; the deadline keeps running until body() or release(). */
export interface Exchange {
  readonly endpoint: string;
  readonly request: ClientRequest;
  readonly response: IncomingMessage;
  /** The whole body as text; rejects at the deadline or when the connection drops first. */
  body(): Promise<string>;
  /** Stops the deadline: for a stream, which lives on. */
  release(): void;
}

/**
 * TCP keepalive on every socket, so a peer that vanished (power off, partition) breaks a long-lived watch:
 * libuv probes after this idle time, then every second, and gives up after 10 unanswered probes.
 */
const TCP_KEEPALIVE_MS = 5000;

export class EtcdHttp {
  readonly callTimeoutMs: number;
  private readonly endpoints: readonly string[];
  private readonly httpAgent: Agent;
  private readonly httpsAgent: Agent | undefined;
  private readonly httpsRequest: typeof http.request | undefined;
  private readonly username: string | undefined;
  private readonly password: string;
  /** Which endpoint the next request goes to first: the last one that worked. */
  private preferred = 0;
  /** undefined: not authenticated yet; "": no token needed (auth is off in etcd). */
  private token: string | undefined;
  private refreshing: Promise<string> | undefined;

  private constructor(options: EtcdHttpOptions, https: typeof import("node:https") | undefined) {
    this.callTimeoutMs = options.callTimeoutMs;
    this.endpoints = options.endpoints.map((e) => new URL(e).origin);
    this.username = options.username;
    this.password = options.password ?? "";
    this.httpAgent = new http.Agent({ keepAlive: true, keepAliveMsecs: TCP_KEEPALIVE_MS });
    if (https) {
      this.httpsAgent = new https.Agent({
        keepAlive: true,
        keepAliveMsecs: TCP_KEEPALIVE_MS,
        ...(options.ca ? { ca: options.ca } : {}),
        ...(options.cert ? { cert: options.cert } : {}),
        ...(options.key ? { key: options.key } : {}),
      });
      this.httpsRequest = https.request;
    }
  }

  static async create(options: EtcdHttpOptions): Promise<EtcdHttp> {
    if (options.endpoints.length === 0) throw new Error("no etcd endpoints given");
    // node:https (and TLS) only when needed: weftd's memory is counted.
    const secure = options.endpoints.some((e) => e.startsWith("https:"));
    return new EtcdHttp(options, secure ? await import("node:https") : undefined);
  }

  /** A unary call: the parsed JSON answer to POST `path`, within callTimeoutMs, authenticated if configured. */
  async call<T>(path: string, body: unknown): Promise<T> {
    const deadline = Date.now() + this.callTimeoutMs;
    return this.withToken(deadline, async (token) => {
      const exchange = await this.send(path, body, token, deadline);
      return decodeAnswer<T>(exchange, path, await exchange.body());
    });
  }

  /**
   * A request whose answer streams (the watch): resolves once a 200 answer's headers arrive, with the
   * deadline stopped; any other status is read and thrown as an error.
   */
  async openStream(
    path: string,
    body: unknown,
    token: string | undefined,
    deadline: number,
  ): Promise<Exchange> {
    const exchange = await this.send(path, body, token, deadline);
    if (exchange.response.statusCode !== 200) decodeAnswer(exchange, path, await exchange.body());
    exchange.release();
    return exchange;
  }

  /**
   * Runs `attempt` with the auth token (none without a username), authenticating first when there is no
   * token yet, and once more, then retrying, when etcd refuses the token (expired, from another member).
   */
  async withToken<T>(deadline: number, attempt: (token: string | undefined) => Promise<T>): Promise<T> {
    if (this.username === undefined) return attempt(undefined);
    const token = this.token ?? (await this.refreshToken(undefined, deadline));
    try {
      return await attempt(token);
    } catch (err) {
      if (!(err instanceof EtcdError) || !err.tokenRejected) throw err;
      return attempt(await this.refreshToken(token, deadline));
    }
  }

  close(): void {
    this.httpAgent.destroy();
    this.httpsAgent?.destroy();
  }

  /** One authentication at a time; a caller holding an already replaced token just gets the new one. */
  private refreshToken(stale: string | undefined, deadline: number): Promise<string> {
    if (this.token !== undefined && this.token !== stale) return Promise.resolve(this.token);
    this.refreshing ??= this.authenticate(deadline).finally(() => {
      this.refreshing = undefined;
    });
    return this.refreshing;
  }

  private async authenticate(deadline: number): Promise<string> {
    const path = "/v3/auth/authenticate";
    const exchange = await this.send(
      path,
      { name: this.username, password: this.password },
      undefined,
      deadline,
    );
    let answer: { token?: string };
    try {
      answer = decodeAnswer(exchange, path, await exchange.body());
    } catch (err) {
      if (!(err instanceof EtcdError) || err.grpcCode === undefined) throw err;
      // As clientv3: a username for an etcd without auth is no error; requests simply go without a token.
      if (/authentication is not enabled/.test(err.message)) {
        this.token = "";
        return "";
      }
      throw new EtcdError(
        exchange.endpoint,
        `authenticating as ${JSON.stringify(this.username)}: ${err.detail} (check --etcd-username and --etcd-password)`,
        { grpcCode: err.grpcCode, httpStatus: err.httpStatus },
      );
    }
    if (typeof answer.token !== "string" || answer.token === "") {
      throw new EtcdError(exchange.endpoint, `${path} answered without a token`);
    }
    this.token = answer.token;
    return answer.token;
  }

  /**
   * Sends to the preferred endpoint; when a request could not even be sent there (refused, unreachable,
   * TLS handshake failed, a kept-alive socket closed under us), tries the next one while time is left.
   */
  private async send(
    path: string,
    body: unknown,
    token: string | undefined,
    deadline: number,
  ): Promise<Exchange> {
    const failures: EtcdError[] = [];
    for (let attempt = 0; attempt <= this.endpoints.length; attempt++) {
      const endpoint = this.endpoints[this.preferred]!;
      try {
        return await this.post(endpoint, path, body, token, deadline);
      } catch (err) {
        if (!(err instanceof EtcdError)) throw err;
        // This endpoint misbehaved: the next request starts at the next one, whatever happens now.
        this.preferred = (this.preferred + 1) % this.endpoints.length;
        if (!failures.some((f) => f.message === err.message)) failures.push(err);
        if (!err.notSent || Date.now() >= deadline) break;
      }
    }
    if (failures.length === 1) throw failures[0]!;
    const last = failures[failures.length - 1]!;
    throw new EtcdError(this.endpoints.join(","), failures.map((f) => f.message).join("; "), {
      combined: true,
      notSent: last.notSent,
    });
  }

  /** One POST to one endpoint, resolving when the answer's headers arrive. */
  private post(
    endpoint: string,
    path: string,
    body: unknown,
    token: string | undefined,
    deadline: number,
  ): Promise<Exchange> {
    const secure = endpoint.startsWith("https:");
    const request = secure ? this.httpsRequest : http.request;
    if (!request) throw new Error(`${endpoint} is https but the https agent was not set up`);
    const payload = Buffer.from(JSON.stringify(body));
    const headers: Record<string, string | number> = {
      "content-type": "application/json",
      "content-length": payload.length,
    };
    if (token) headers["authorization"] = token;
    return new Promise((resolve, reject) => {
      let connected = false;
      let failure: EtcdError | undefined;
      const timeoutMs = Math.max(1, deadline - Date.now());
      const req = request(`${endpoint}${path}`, {
        method: "POST",
        agent: secure ? this.httpsAgent : this.httpAgent,
        headers,
      });
      const timer = setTimeout(() => {
        failure ??= new EtcdError(endpoint, `no answer to ${path} within ${this.callTimeoutMs} ms`, {
          notSent: !connected,
        });
        req.destroy(failure);
      }, timeoutMs);
      req.on("socket", (socket) => {
        socket.setKeepAlive(true, TCP_KEEPALIVE_MS);
        if (!socket.connecting) connected = true;
        else socket.once(secure ? "secureConnect" : "connect", () => (connected = true));
      });
      req.on("error", (err) => {
        clearTimeout(timer);
        if (failure) return reject(failure);
        const code = (err as NodeJS.ErrnoException).code;
        // A kept-alive socket the server had just closed: the request never reached etcd.
        const stale = req.reusedSocket && (code === "ECONNRESET" || code === "EPIPE");
        reject(new EtcdError(endpoint, describeSocketError(err), { notSent: !connected || stale }));
      });
      req.on("response", (response) => {
        // Errors after this point surface through body() or the stream's own listeners.
        response.on("error", () => {});
        resolve({
          endpoint,
          request: req,
          response,
          release: () => clearTimeout(timer),
          body: () =>
            new Promise<string>((resolveBody, rejectBody) => {
              const chunks: Buffer[] = [];
              response.on("data", (chunk: Buffer) => chunks.push(chunk));
              response.on("end", () => {
                clearTimeout(timer);
                resolveBody(Buffer.concat(chunks).toString("utf8"));
              });
              response.on("close", () => {
                clearTimeout(timer);
                if (!response.complete)
                  rejectBody(failure ?? new EtcdError(endpoint, `connection closed while answering ${path}`));
              });
            }),
        });
      });
      req.end(payload);
    });
  }
}

/** The JSON of a 200 answer; anything else as an EtcdError carrying etcd's message and gRPC code. */
function decodeAnswer<T>(exchange: Exchange, path: string, text: string): T {
  const status = exchange.response.statusCode ?? 0;
  if (status === 200) {
    try {
      return JSON.parse(text) as T;
    } catch {
      throw new EtcdError(
        exchange.endpoint,
        `${path} answered with something that is not JSON: ${text.slice(0, 200)}`,
      );
    }
  }
  const error = parseErrorBody(text);
  if (error) {
    throw new EtcdError(exchange.endpoint, `${path}: ${error.message}`, {
      grpcCode: error.grpcCode,
      httpStatus: status,
      detail: error.message,
      tokenRejected: isAuthTokenError(error.grpcCode, error.message),
    });
  }
  if (/CommonName of client sending a request against gateway/.test(text)) {
    throw new EtcdError(
      exchange.endpoint,
      "etcd refuses a client certificate with a Common Name on its JSON gateway while etcd auth is on " +
        "(use an --etcd-certfile without a Common Name, authenticating with --etcd-username/--etcd-password)",
      { httpStatus: status },
    );
  }
  const what =
    status === 404
      ? `no JSON gateway at ${path} (HTTP 404; weft needs etcd 3.4 or newer)`
      : `${path} answered HTTP ${status}: ${text.trim().slice(0, 200)}`;
  throw new EtcdError(exchange.endpoint, what, { httpStatus: status });
}
