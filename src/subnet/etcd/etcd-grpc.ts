/**
 * etcd's gRPC API over node:http2: unary calls with a deadline, the auth token, and moving on to the next
 * endpoint when a call could not reach etcd; and the start of streaming calls (the watch). A gRPC library
 * would cost weftd some 27 MB; etcd's JSON gateway refuses client certificates with a Common Name while
 * auth is on, which flanneld (real gRPC) accepts.
 */
import type { ClientHttp2Session } from "node:http2";
import { describeSocketError, EtcdError, isAuthTokenError, isNoLeaderError } from "./etcd-errors.js";
import { decodeAuthenticateResponse, encodeAuthenticateRequest } from "./etcd-messages.js";
import { GrpcCall, type GrpcCallEvents, type GrpcOutcome } from "./grpc-call.js";
import { Http2Sessions, type TlsMaterial } from "./grpc-session.js";
import { describeGrpcStatus, GRPC_OK, GRPC_UNAVAILABLE } from "./grpc-status.js";

export interface EtcdGrpcOptions extends TlsMaterial {
  readonly endpoints: readonly string[];
  readonly username: string | undefined;
  readonly password: string | undefined;
  readonly callTimeoutMs: number;
  /** For tests: how often and how patiently a watched session is PINGed. */
  readonly pingIntervalMs?: number;
  readonly pingTimeoutMs?: number;
}

/** A call started on one endpoint; its session is needed for keepAlive(). */
export interface StartedCall {
  readonly endpoint: string;
  readonly call: GrpcCall;
  readonly session: ClientHttp2Session;
  /** The session existed before this call (so a closed one may just have been stale). */
  readonly reused: boolean;
}

export class EtcdGrpc {
  readonly callTimeoutMs: number;
  readonly sessions: Http2Sessions;
  private readonly endpoints: readonly string[];
  private readonly username: string | undefined;
  private readonly password: string;
  /** Which endpoint the next call goes to first: the last one that worked. */
  private preferred = 0;
  /** undefined: not authenticated yet; "": no token needed (auth is off in etcd). */
  private token: string | undefined;
  private refreshing: Promise<string> | undefined;

  constructor(options: EtcdGrpcOptions) {
    if (options.endpoints.length === 0) throw new Error("no etcd endpoints given");
    this.callTimeoutMs = options.callTimeoutMs;
    this.endpoints = options.endpoints.map((e) => new URL(e).origin);
    this.username = options.username;
    this.password = options.password ?? "";
    this.sessions = new Http2Sessions(options, options.pingIntervalMs, options.pingTimeoutMs);
  }

  /**
   * A unary call, e.g. call("KV/Range", bytes): etcd's answer message, within callTimeoutMs, authenticated
   * if a username is configured.
   */
  async call(method: string, request: Uint8Array): Promise<Buffer> {
    const deadline = Date.now() + this.callTimeoutMs;
    return this.withToken(deadline, (token) =>
      this.tryEndpoints(deadline, (endpoint) =>
        this.unary(endpoint, method, request, token, this.attemptDeadline(deadline)),
      ),
    );
  }

  /**
   * When there are other members to try, one attempt gets at most half the call's time, so a member that
   * takes a call and never answers (cut off from the others, before it knows) leaves time for another.
   */
  attemptDeadline(deadline: number): number {
    return Math.min(deadline, Date.now() + this.attemptMs());
  }

  attemptMs(): number {
    return this.endpoints.length === 1 ? this.callTimeoutMs : Math.ceil(this.callTimeoutMs / 2);
  }

  /**
   * `endpoint` failed us outside a call (a watch it held broke): the next call starts at the next one.
   * Nothing changes if calls have moved on from it already.
   */
  avoid(endpoint: string): void {
    if (this.endpoints[this.preferred] === endpoint && this.endpoints.length > 1) {
      this.preferred = (this.preferred + 1) % this.endpoints.length;
    }
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

  /**
   * Runs `attempt` on the preferred endpoint; when it failed without reaching etcd (refused, unreachable,
   * TLS handshake failed, stream refused), when the member has no leader, or when it did not answer in
   * time, on the next one while time is left.
   */
  async tryEndpoints<T>(deadline: number, attempt: (endpoint: string) => Promise<T>): Promise<T> {
    const failures: EtcdError[] = [];
    for (let round = 0; round <= this.endpoints.length; round++) {
      const endpoint = this.endpoints[this.preferred]!;
      try {
        return await attempt(endpoint);
      } catch (err) {
        if (!(err instanceof EtcdError)) throw err;
        if (err.grpcCode === undefined || err.grpcCode === GRPC_UNAVAILABLE) {
          // This endpoint failed us: the next call starts at the next one, whatever happens now.
          this.preferred = (this.preferred + 1) % this.endpoints.length;
        }
        if (!failures.some((f) => f.message === err.message)) failures.push(err);
        const elsewhere = this.endpoints.length > 1 && (err.noLeader || err.timedOut);
        if (!(err.notSent || elsewhere) || Date.now() >= deadline) break;
      }
    }
    const last = failures[failures.length - 1]!;
    // An endpoint that answered has the say; connection failures before it are only noise.
    if (failures.length === 1 || last.grpcCode !== undefined) throw last;
    throw new EtcdError(this.endpoints.join(","), failures.map((f) => f.message).join("; "), {
      combined: true,
      notSent: last.notSent,
    });
  }

  /** Starts a call on `endpoint` (connecting if needed); the session stays held until the call ends. */
  start(
    endpoint: string,
    method: string,
    token: string | undefined,
    events: GrpcCallEvents,
    deadline?: number,
  ): StartedCall {
    const { session, reused } = this.sessions.get(endpoint);
    const release = this.sessions.hold(session);
    // As clientv3's WithRequireLeader: a member without a leader refuses the call ("etcdserver: no leader")
    // instead of holding it, and ends a watch once it has had no leader for three election timeouts;
    // without it, a watch on a member cut off from the others stays open and silent.
    const metadata: Record<string, string> = { hasleader: "true", ...(token ? { token } : {}) };
    // Tells etcd when we stop waiting, so it can drop the work too (milliseconds, at most 8 digits).
    if (deadline !== undefined)
      metadata["grpc-timeout"] = `${Math.min(99_999_999, Math.max(1, deadline - Date.now()))}m`;
    const call = new GrpcCall(session, `/etcdserverpb.${method}`, metadata, {
      onMessage: (message) => events.onMessage(message),
      onEnd: (outcome) => events.onEnd(outcome),
      onClose: release,
    });
    return { endpoint, call, session, reused };
  }

  /**
   * Whether a call that failed before etcd answered can be sent again elsewhere: its connection was never
   * made, or it went out on a kept session that turned out closed (as a kept-alive HTTP/1 socket can be).
   */
  unansweredMeansNotSent(started: StartedCall | undefined): boolean {
    return !started || started.reused || !this.sessions.wasConnected(started.session);
  }

  close(): void {
    this.sessions.closeAll();
  }

  private unary(
    endpoint: string,
    method: string,
    request: Uint8Array,
    token: string | undefined,
    deadline: number,
  ): Promise<Buffer> {
    return new Promise((resolve, reject) => {
      const messages: Buffer[] = [];
      let timer: NodeJS.Timeout | undefined;
      let started: StartedCall;
      try {
        started = this.start(
          endpoint,
          method,
          token,
          {
            onMessage: (message) => messages.push(message),
            onEnd: (outcome) => {
              clearTimeout(timer);
              if (outcome.kind === "status" && outcome.status.code === GRPC_OK) {
                if (messages.length === 1) resolve(messages[0]!);
                else reject(new EtcdError(endpoint, `${method} answered with ${messages.length} messages`));
                return;
              }
              reject(callError(endpoint, method, outcome, this.unansweredMeansNotSent(started)));
            },
          },
          deadline,
        );
      } catch (err) {
        return reject(new EtcdError(endpoint, (err as Error).message));
      }
      started.call.send(request, true);
      const { session } = started;
      timer = setTimeout(
        () => {
          started.call.cancel();
          const connecting = session.connecting;
          // A connection not made in time is given up (the next call connects anew); a connected one that
          // stays silent is PINGed, and dropped if it does not answer.
          if (connecting) session.destroy();
          else this.sessions.probe(session);
          reject(
            new EtcdError(endpoint, `no answer to ${method} within ${this.attemptMs()} ms`, {
              notSent: connecting,
              timedOut: true,
            }),
          );
        },
        Math.max(1, deadline - Date.now()),
      );
    });
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
    const method = "Auth/Authenticate";
    const request = encodeAuthenticateRequest(this.username ?? "", this.password);
    let answer: Buffer;
    try {
      answer = await this.tryEndpoints(deadline, (endpoint) =>
        this.unary(endpoint, method, request, undefined, deadline),
      );
    } catch (err) {
      if (!(err instanceof EtcdError) || err.grpcCode === undefined) throw err;
      // As clientv3: a username for an etcd without auth is no error; calls simply go without a token.
      if (/authentication is not enabled/.test(err.detail)) {
        this.token = "";
        return "";
      }
      throw new EtcdError(
        err.endpoint,
        `authenticating as ${JSON.stringify(this.username)}: ${err.detail} (check --etcd-username and --etcd-password)`,
        { grpcCode: err.grpcCode },
      );
    }
    const { token } = decodeAuthenticateResponse(answer);
    if (token === "")
      throw new EtcdError(this.endpoints[this.preferred]!, `${method} answered without a token`);
    this.token = token;
    return token;
  }
}

/** How a call that did not end OK reads as an EtcdError. */
export function callError(
  endpoint: string,
  method: string,
  outcome: GrpcOutcome,
  unansweredMeansNotSent: boolean,
): EtcdError {
  switch (outcome.kind) {
    case "status":
      return new EtcdError(endpoint, `${method}: ${describeGrpcStatus(outcome.status)}`, {
        grpcCode: outcome.status.code,
        detail: outcome.status.message,
        tokenRejected: isAuthTokenError(outcome.status.code, outcome.status.message),
        noLeader: isNoLeaderError(outcome.status.code, outcome.status.message),
      });
    case "http":
      return new EtcdError(
        endpoint,
        `${method} answered HTTP ${outcome.httpStatus}${outcome.contentType ? ` (${outcome.contentType})` : ""}, not gRPC (is this an etcd v3 client URL?)`,
      );
    case "failed":
      return new EtcdError(endpoint, describeSocketError(outcome.error), {
        notSent: outcome.refused || (!outcome.answered && unansweredMeansNotSent),
      });
  }
}
