/**
 * One HTTP/2 session per endpoint, shared by every call to it: made on first use (h2c for http://, TLS with
 * ALPN "h2" for https://) and made anew once it closed or etcd sent GOAWAY. A session holds the process
 * open only while a call is in flight on it, and PING tells a dead peer from a quiet one.
 */
import http2, { type ClientHttp2Session } from "node:http2";

export interface TlsMaterial {
  /** PEM contents of --etcd-cafile, --etcd-certfile and --etcd-keyfile (https endpoints only). */
  readonly ca: Buffer | undefined;
  readonly cert: Buffer | undefined;
  readonly key: Buffer | undefined;
}

interface SessionState {
  readonly endpoint: string;
  /** The connection (and TLS handshake) was made: calls on it may have reached etcd. */
  connected: boolean;
  /** Calls in flight: the session is ref'ed while there are any. */
  calls: number;
  /** A PING awaiting its answer, if any. */
  probing: boolean;
  /** Users of keepAlive(): the PING timer runs while there are any. */
  keepAlives: number;
  pingTimer: NodeJS.Timeout | undefined;
}

/**
 * While a long call (the watch) is open its session is PINGed this often. etcd's cleartext gRPC server
 * answers a client that PINGs more often than every 5 s (--grpc-keepalive-min-time) with GOAWAY.
 */
export const PING_INTERVAL_MS = 8000;
/** A PING unanswered this long means the peer is gone (power off, partition, a stopped process). */
export const PING_TIMEOUT_MS = 7000;

export class Http2Sessions {
  private readonly sessions = new Map<string, ClientHttp2Session>();
  private readonly states = new WeakMap<ClientHttp2Session, SessionState>();
  private closed = false;

  constructor(
    private readonly tls: TlsMaterial,
    private readonly pingIntervalMs = PING_INTERVAL_MS,
    private readonly pingTimeoutMs = PING_TIMEOUT_MS,
  ) {}

  /** The endpoint's session, connecting anew if there is none usable; `reused` if it was there already. */
  get(endpoint: string): { session: ClientHttp2Session; reused: boolean } {
    if (this.closed) throw new Error("the etcd client is closed");
    const existing = this.sessions.get(endpoint);
    if (existing && !existing.closed && !existing.destroyed) return { session: existing, reused: true };
    const session = this.connect(endpoint);
    this.sessions.set(endpoint, session);
    return { session, reused: false };
  }

  /** Whether `session` ever got connected (a call failing before that never reached etcd). */
  wasConnected(session: ClientHttp2Session): boolean {
    return this.states.get(session)?.connected ?? false;
  }

  /** Marks a call in flight on `session`; the returned function ends it. */
  hold(session: ClientHttp2Session): () => void {
    const state = this.states.get(session);
    if (!state) return () => {};
    state.calls += 1;
    if (state.calls === 1) session.ref();
    let released = false;
    return () => {
      if (released) return;
      released = true;
      state.calls -= 1;
      if (state.calls === 0 && !session.destroyed) session.unref();
    };
  }

  /**
   * PINGs `session` every interval until the returned function is called; a PING left unanswered destroys
   * the session, which fails every call on it.
   */
  keepAlive(session: ClientHttp2Session): () => void {
    const state = this.states.get(session);
    if (!state) return () => {};
    state.keepAlives += 1;
    if (!state.pingTimer) {
      state.pingTimer = setInterval(() => this.probe(session), this.pingIntervalMs);
      state.pingTimer.unref();
    }
    let stopped = false;
    return () => {
      if (stopped) return;
      stopped = true;
      state.keepAlives -= 1;
      if (state.keepAlives === 0) {
        clearInterval(state.pingTimer);
        state.pingTimer = undefined;
      }
    };
  }

  /** One PING on a connected session; no answer within the timeout destroys it. */
  probe(session: ClientHttp2Session): void {
    const state = this.states.get(session);
    if (!state || state.probing || session.connecting || session.closed || session.destroyed) return;
    state.probing = true;
    const timeoutMs = this.pingTimeoutMs;
    const timer = setTimeout(() => {
      const seconds = timeoutMs % 1000 === 0 ? `${timeoutMs / 1000} s` : `${timeoutMs} ms`;
      session.destroy(new PeerGoneError(`no answer to an HTTP/2 PING within ${seconds}`));
    }, timeoutMs);
    timer.unref();
    try {
      session.ping(() => {
        // An error here means the session closed meanwhile: its calls fail by themselves.
        clearTimeout(timer);
        state.probing = false;
      });
    } catch {
      clearTimeout(timer);
      state.probing = false;
    }
  }

  /** Closes every session at once; calls still in flight fail. */
  closeAll(): void {
    this.closed = true;
    for (const session of this.sessions.values()) session.destroy();
    this.sessions.clear();
  }

  private connect(endpoint: string): ClientHttp2Session {
    const secure = endpoint.startsWith("https:");
    const session = http2.connect(endpoint, {
      ...(secure
        ? {
            ...(this.tls.ca ? { ca: this.tls.ca } : {}),
            ...(this.tls.cert ? { cert: this.tls.cert } : {}),
            ...(this.tls.key ? { key: this.tls.key } : {}),
          }
        : {}),
      settings: { enablePush: false },
    });
    const state: SessionState = {
      endpoint,
      connected: false,
      calls: 0,
      probing: false,
      keepAlives: 0,
      pingTimer: undefined,
    };
    this.states.set(session, state);
    // Idle sessions must not keep the process alive; hold() refs it while a call is in flight.
    session.unref();
    session.once("connect", () => {
      state.connected = true;
    });
    // Failures reach the calls on the session (their streams fail with the same error).
    session.on("error", () => {});
    const forget = () => {
      clearInterval(state.pingTimer);
      state.pingTimer = undefined;
      if (this.sessions.get(endpoint) === session) this.sessions.delete(endpoint);
    };
    // After GOAWAY the session takes no new calls (Node closes it): the next call connects anew.
    session.on("goaway", forget);
    session.on("close", forget);
    return session;
  }
}

/** The peer stopped answering on a connected session. */
export class PeerGoneError extends Error {
  override readonly name = "PeerGoneError";
}
