import { EventEmitter } from "node:events";
import type * as http2 from "node:http2";
import { isIP, connect as netConnect, type Socket } from "node:net";
import { connect as tlsConnect } from "node:tls";
import { Http2SessionManager } from "@connectrpc/connect-node";

const guarded = new WeakSet<http2.Http2Session>();

/** @internal The part of connect-node's private state (`Http2SessionManager.s`) that `requestNow` uses. */
export interface ManagerState {
  t: string;
  conn: http2.ClientHttp2Session;
  isShuttingDown(): boolean;
  requiresVerify(): boolean;
  registerRequest(stream: http2.ClientHttp2Stream): void;
}

/**
 * Makes `session.ping()` safe to call on a destroyed session: instead of
 * throwing ERR_HTTP2_INVALID_SESSION synchronously (which, from connect-node's
 * keepalive timer, is an uncaught exception that exits the process:
 * connect-es #1795), it reports the error to the callback and returns false.
 * Idempotent.
 */
export function guardSessionPing(session: http2.Http2Session): void {
  if (guarded.has(session)) return;
  guarded.add(session);
  const ping = session.ping.bind(session) as (...args: unknown[]) => boolean;
  (session as { ping: (...args: unknown[]) => boolean }).ping = (...args: unknown[]) => {
    if (session.destroyed) {
      const cb = args.find((a): a is (err: Error, duration: number, payload: Buffer) => void => typeof a === "function");
      const err = Object.assign(new Error("The session has been destroyed"), { code: "ERR_HTTP2_INVALID_SESSION" });
      if (cb) process.nextTick(cb, err, 0, Buffer.alloc(8));
      return false;
    }
    return ping(...args);
  };
}

/**
 * connect-node's `Http2SessionManager` with two additions applied to every
 * session it opens, before any keepalive timer can fire on it: the ping guard
 * of {@link guardSessionPing}, and a larger connection-level receive window
 * (`setLocalWindowSize`).
 */
export class GuardedSessionManager extends Http2SessionManager {
  private readonly windowBytes: number;
  /** Sockets this manager opened; `abort()` destroys the ones still alive. */
  private readonly sockets = new Set<Socket>();
  /** @internal How often at most a {@link UnaryFlight} reports its connection alive. */
  readonly aliveNoticeMs: number;
  /** The unary flight of the latest ready connection (see {@link unaryFlight}). */
  private flight: UnaryFlight | undefined;

  constructor(
    url: string,
    pingOptions: ConstructorParameters<typeof Http2SessionManager>[1],
    sessionOptions: http2.SecureClientSessionOptions,
    windowBytes: number,
  ) {
    const sockets = new Set<Socket>();
    super(url, pingOptions, {
      ...sessionOptions,
      // Our own socket factory, so that abort() can destroy a socket still in
      // its TLS handshake: destroying a session that has not connected yet
      // leaves Node's socket open (a dial to a listener that never answers
      // TLS would leak one socket per timed-out dial).
      createConnection: (authority: URL) => {
        const port = Number(authority.port || (authority.protocol === "https:" ? 443 : 80));
        const host = authority.hostname.replace(/^\[(.*)\]$/, "$1");
        const socket =
          authority.protocol === "https:"
            ? tlsConnect(port, host, {
                ...sessionOptions,
                ALPNProtocols: ["h2"],
                // SNI carries host names only (RFC 6066); an IP address is not sent.
                servername: sessionOptions.servername ?? (isIP(host) ? undefined : host),
              })
            : netConnect(port, host);
        sockets.add(socket);
        socket.once("close", () => sockets.delete(socket));
        return socket;
      },
    });
    this.sockets = sockets;
    this.windowBytes = windowBytes;
    this.aliveNoticeMs = Math.min(aliveNoticeMs, (pingOptions?.pingIntervalMs ?? Number.POSITIVE_INFINITY) / 10);
  }

  override abort(reason?: Error): void {
    super.abort(reason as Parameters<Http2SessionManager["abort"]>[0]);
    for (const socket of this.sockets) socket.destroy();
    this.sockets.clear();
    // The flight holds connect-node's state of the aborted connection and its session.
    this.flight = undefined;
  }

  /**
   * Opens the connection (connect-node's `connect()`), then waits until the
   * server answers an HTTP/2 PING, which it does only after sending its
   * SETTINGS: over h2c Node reports a session as connected as soon as TCP is,
   * so without this a listener that accepts and never speaks HTTP/2 would
   * pass the dial. Also guards the new session (keepalive PINGs of an idle
   * connection may fire before any request). Resolves with the state, or
   * "error" when the connection failed or closed before the answer.
   */
  async connectVerified(): Promise<"open" | "idle" | "error"> {
    const state = await this.connect();
    if (state === "error") return state;
    const session = this.currentSession();
    if (!session) return "error";
    this.prepare(session);
    const answered = await new Promise<boolean>((resolve) => {
      const onClose = () => resolve(false);
      session.once("close", onClose);
      try {
        session.ping((err) => {
          session.off("close", onClose);
          resolve(err === null);
        });
      } catch {
        session.off("close", onClose);
        resolve(false);
      }
    });
    return answered ? state : "error";
  }

  override async request(
    method: string,
    path: string,
    headers: http2.OutgoingHttpHeaders,
    /** Node's request options; unlike connect-node's, `signal` is allowed (it resets the stream with CANCEL and no END_STREAM). */
    options: http2.ClientSessionRequestOptions,
  ): Promise<http2.ClientHttp2Stream> {
    // connect-node passes the options on to `session.request()` as they are.
    const stream = await super.request(method, path, headers, options as Omit<http2.ClientSessionRequestOptions, "signal">);
    if (stream.session) this.prepare(stream.session);
    return stream;
  }

  /**
   * Opens a stream right away when the manager holds a ready connection that
   * needs no verification (the state in which connect-node's `request()`
   * would open one without waiting), with connect-node's own bookkeeping of
   * the stream (`registerRequest`: the open-stream count behind `state()`,
   * the idle timeout and `ref()`, and the keepalive reset on the response
   * headers). Returns undefined in any other state, or when opening fails:
   * `request()` then connects, verifies, retries or reports the error.
   *
   * `headers` must include `:method` and `:path`; Node copies them, so one
   * object may serve many calls. Saves `request()`'s awaits and header copy,
   * which matter to short unary calls (a Ping costs tens of microseconds).
   */
  requestNow(headers: http2.OutgoingHttpHeaders, options?: http2.ClientSessionRequestOptions): http2.ClientHttp2Stream | undefined {
    const s = this.readyState();
    if (s === undefined) return undefined;
    let stream: http2.ClientHttp2Stream;
    try {
      stream = s.conn.request(headers, options);
    } catch {
      return undefined;
    }
    s.registerRequest(stream);
    return stream;
  }

  /**
   * The {@link UnaryFlight} of the ready connection, in the state in which
   * {@link requestNow} would open a stream; undefined otherwise (the caller
   * then goes through `request()`). Open the call's stream on it at once.
   */
  unaryFlight(): UnaryFlight | undefined {
    const s = this.readyState();
    if (s === undefined) return undefined;
    let flight = this.flight;
    if (flight === undefined || flight.state !== s) {
      flight = new UnaryFlight(this, s);
      this.flight = flight;
    }
    return flight;
  }

  /** @internal connect-node's ready state, when a stream may be opened on it without waiting. */
  readyState(): ManagerState | undefined {
    const self = this as unknown as { s?: ManagerState; verifying?: unknown };
    const s = self.s;
    if (s?.t !== "ready" || self.verifying !== undefined || typeof s.registerRequest !== "function") return undefined;
    const conn = s.conn;
    if (conn.closed || conn.destroyed || s.isShuttingDown() || s.requiresVerify() || !guarded.has(conn)) return undefined;
    return s;
  }

  /** Applies the ping guard, a catch-all error listener and the larger receive window to a session, once. */
  private prepare(session: http2.Http2Session): void {
    if (guarded.has(session)) return;
    guardSessionPing(session);
    // connect-node destroys a session with an error (e.g. "received GOAWAY
    // without any open streams") and may leave the state that listened for it
    // before the 'error' event fires; unheard, it would be an uncaught
    // exception. Failures still reach callers through connect-node's own
    // listeners and the streams' errors.
    session.on("error", () => {});
    try {
      session.setLocalWindowSize(this.windowBytes);
    } catch {
      // The session may already be closing; the window only matters for throughput.
    }
  }

  /** The session of the "ready" state (connect-node keeps it private). */
  private currentSession(): http2.ClientHttp2Session | undefined {
    const s = (this as unknown as { s?: { t?: string; conn?: http2.ClientHttp2Session } }).s;
    return s?.t === "ready" ? s.conn : undefined;
  }
}

/** How often at most a flight tells connect-node that its connection is alive (and at most a tenth of the keepalive interval). */
const aliveNoticeMs = 1000;

/**
 * The short unary calls (Pings) in flight on one connection, which
 * connect-node counts as one open stream: a stand-in registered with its
 * `registerRequest` when the first call starts and closed when the last one
 * ends. While calls are in flight the connection is `ref()`ed, `state()` says
 * "open", and a graceful GOAWAY lets them finish, as for streams registered
 * one by one. Their answers mark the connection alive for connect-node's
 * keepalive at most once per second or per tenth of the keepalive interval
 * (`notifyResponseByteRead`), so the keepalive PING still goes out a
 * keepalive interval after the last answer, give or take that much.
 *
 * Why: registering each call's stream costs two `once` listeners per stream
 * and, per answer, a new keepalive timer (clear, set, unref); at 32 Pings in
 * flight that is a measurable part of a Ping's client CPU (W4).
 */
export class UnaryFlight {
  /** Calls started on this flight and not yet closed. */
  private count = 0;
  private aliveAt = 0;
  /** What connect-node holds as the open stream: it listens for `close` and checks `session`. */
  private readonly token: EventEmitter & { session: http2.ClientHttp2Session };

  constructor(
    private readonly manager: GuardedSessionManager,
    /** @internal connect-node's state of the connection the calls run on. */
    readonly state: ManagerState,
  ) {
    this.token = Object.assign(new EventEmitter(), { session: state.conn });
  }

  /**
   * Opens a stream for one call on the connection; undefined when opening
   * fails. Call it right after {@link GuardedSessionManager.unaryFlight}
   * returned this flight (which checked that the connection takes streams).
   * Every stream opened must be reported with {@link done} once it closed.
   */
  open(headers: http2.OutgoingHttpHeaders): http2.ClientHttp2Stream | undefined {
    let stream: http2.ClientHttp2Stream;
    try {
      stream = this.state.conn.request(headers);
    } catch {
      return undefined;
    }
    if (this.count++ === 0) {
      this.state.registerRequest(this.token as unknown as http2.ClientHttp2Stream);
      // connect-node waits for the stand-in's 'response', which never comes
      // (`alive` reports answers instead): dropped, or every time the flight
      // empties and refills (sequential Pings) would leave one more listener
      // on the stand-in for the connection's life.
      this.token.removeAllListeners("response");
    }
    return stream;
  }

  /** A call got its answer's headers: the connection is alive. */
  alive(): void {
    const now = Date.now();
    if (now - this.aliveAt < this.manager.aliveNoticeMs) return;
    this.aliveAt = now;
    this.manager.notifyResponseByteRead(this.token as unknown as http2.ClientHttp2Stream);
  }

  /** A stream opened by {@link open} closed. */
  done(): void {
    if (--this.count === 0) this.token.emit("close");
  }
}
