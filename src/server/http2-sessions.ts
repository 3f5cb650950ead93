import * as http2 from "node:http2";
import type { Socket } from "node:net";
import { ErrorCode } from "../core/errors.js";
import { type Logger, LogLimiter } from "../core/logger.js";
import type { CommMetrics } from "../core/metrics.js";
import type { Http2Config } from "../grpc/config.js";
import { Http2Refusal, isPeerGone } from "./errors.js";

type Http2Server = http2.Http2Server | http2.Http2SecureServer;

/**
 * Watches every HTTP/2 session of a server (what neither Fastify nor Node
 * does for us):
 *
 * - applies our limits to each session: `maxConcurrentStreams`, the header
 *   list backstop (8 x `maxHeaderListBytes`) and a larger flow-control window
 *   (`initialWindowBytes`, stream and connection);
 * - closes, with GOAWAY ENHANCE_YOUR_CALM, a session whose client resets
 *   streams faster than `maxStreamResetsPerSecond` (HTTP/2 rapid reset);
 * - runs a PING watchdog: one PING every `serverKeepaliveIntervalMs`, and a
 *   session whose PING is not answered within `serverKeepaliveTimeoutMs` is
 *   destroyed, so a frozen peer's streams end;
 * - counts and logs (rate-limited) protocol garbage: session errors, frame
 *   errors, TLS handshake failures, non-h2 ALPN;
 * - closes every session on shutdown, so Fastify's `close()` completes on
 *   Node 20 (which keeps idle sessions open), and cuts the connections of
 *   peers that do not let them close.
 */
export class SessionWatch {
  /** Open sessions and their state (one small object each: listeners and timers are shared). */
  private readonly sessions = new Map<http2.ServerHttp2Session, SessionState>();
  /** Every TCP connection of the server (before TLS), until it closes. */
  private readonly sockets = new Set<Socket>();
  /** Remote address of each session, kept because a destroyed session (as 'sessionError' reports it) has lost its socket. */
  private readonly addresses = new WeakMap<http2.ServerHttp2Session, string>();
  private readonly limiter: LogLimiter;
  private closing = false;
  /** The one watchdog interval of every session (PINGs go out on its ticks), while there are sessions. */
  private watchdog: NodeJS.Timeout | undefined;
  /** Checks PINGs still unanswered when their timeout passes. */
  private pingCheck: NodeJS.Timeout | undefined;
  // Listeners shared by every session, socket and stream (`this` is the emitter).
  private readonly onSocketClose: (this: Socket) => void;
  private readonly onSessionClose: (this: http2.ServerHttp2Session) => void;
  private readonly onFrameError: (this: http2.ServerHttp2Session, type: number, code: number) => void;
  private readonly onSessionStream: (this: http2.ServerHttp2Session, stream: http2.ServerHttp2Stream) => void;
  private readonly onStreamClose: (this: http2.ServerHttp2Stream) => void;

  constructor(
    private readonly server: Http2Server,
    private readonly config: Http2Config,
    private readonly metrics: CommMetrics,
    private readonly log: Logger,
  ) {
    this.limiter = new LogLimiter(() => performance.now());
    const watch = this;
    this.onSocketClose = function () {
      watch.sockets.delete(this);
    };
    this.onSessionClose = function () {
      watch.sessions.delete(this);
      if (watch.sessions.size === 0) watch.stopWatchdog();
    };
    this.onFrameError = function (type, code) {
      watch.metrics.refused(ErrorCode.MalformedFrame);
      watch.warn(this, `frame ${type}`, { frameType: type, code }, "HTTP/2 frame error");
    };
    this.onSessionStream = function (stream) {
      // A closed stream has lost its session: remember it on the stream.
      (stream as SessionStream)[kSession] = this;
      stream.on("close", watch.onStreamClose);
    };
    this.onStreamClose = function () {
      const code = this.rstCode;
      if (code === undefined || code === http2.constants.NGHTTP2_NO_ERROR) return;
      const session = (this as SessionStream)[kSession];
      const state = session && watch.sessions.get(session);
      if (session && state) watch.onReset(session, state);
    };
    server.on("connection", this.onConnection);
    server.on("session", this.onSession);
    server.on("sessionError", this.onSessionError);
    server.on("tlsClientError", this.onTlsError);
    server.on("unknownProtocol", this.onUnknownProtocol);
  }

  /** Sessions currently open. */
  get size(): number {
    return this.sessions.size;
  }

  /** Stops watching new sessions (existing ones keep their watchdog until closed). */
  detach(): void {
    this.stopWatchdog();
    this.server.off("connection", this.onConnection);
    this.server.off("session", this.onSession);
    this.server.off("sessionError", this.onSessionError);
    this.server.off("tlsClientError", this.onTlsError);
    this.server.off("unknownProtocol", this.onUnknownProtocol);
  }

  /**
   * Closes every session: GOAWAY at once (streams in flight may finish), and
   * after `graceMs` cuts every connection still open, at the socket.
   * Resolves when every connection of the server is closed; connections
   * arriving meanwhile are cut at once.
   *
   * Cut at the socket, because a destroyed session is not closed yet: Node
   * first flushes its GOAWAY, and a peer that does not read (frozen, or
   * starved of CPU) never lets it, so the session kept its socket open, and
   * with it the server's close, for as long as the peer did not read.
   */
  async closeAll(graceMs: number): Promise<void> {
    this.closing = true;
    for (const s of this.sessions.keys()) {
      if (s.closed || s.destroyed) continue;
      try {
        s.close();
      } catch {
        s.destroy();
      }
    }
    const open = [...this.sockets];
    if (open.length === 0) return;
    await new Promise<void>((resolve) => {
      let left = open.length;
      // Not unref'd: a close waiting for it must complete (it is cleared when all closed).
      const timer = setTimeout(() => {
        for (const s of this.sessions.keys()) s.destroy();
        for (const socket of open) socket.destroy();
      }, graceMs);
      for (const socket of open) {
        socket.once("close", () => {
          if (--left > 0) return;
          clearTimeout(timer);
          resolve();
        });
      }
    });
  }

  private readonly onConnection = (socket: Socket): void => {
    if (this.closing) {
      socket.destroy();
      return;
    }
    this.sockets.add(socket);
    socket.on("close", this.onSocketClose);
  };

  private readonly onSession = (session: http2.ServerHttp2Session): void => {
    if (this.closing) {
      session.destroy();
      return;
    }
    this.sessions.set(session, { tokens: this.config.maxStreamResetsPerSecond, at: performance.now(), cut: false, pingSentAt: 0 });
    const address = (session.socket as Socket | undefined)?.remoteAddress;
    if (address !== undefined) this.addresses.set(session, address);
    try {
      session.settings({
        maxConcurrentStreams: this.config.maxConcurrentStreams,
        initialWindowSize: this.config.initialWindowBytes,
        maxHeaderListSize: headerListBackstop(this.config),
      });
      session.setLocalWindowSize(this.config.initialWindowBytes);
    } catch {
      // The session may have died already; 'close' cleans up.
    }
    this.startWatchdog();
    session.on("stream", this.onSessionStream);
    session.on("frameError", this.onFrameError);
    session.on("close", this.onSessionClose);
    session.on("error", ignore); // reported through 'sessionError'
  };

  /**
   * A stream of `session` closed by a reset (RST_STREAM with an error code:
   * in practice the client's CANCEL; ours after a status is NO_ERROR): takes
   * a token from the session's bucket, `maxStreamResetsPerSecond` per second
   * with a burst of as many. An empty bucket destroys the session with
   * ENHANCE_YOUR_CALM: the client can no longer make us set up streams (and
   * handshakes) it cancels at once (HTTP/2 rapid reset).
   */
  private onReset(session: http2.ServerHttp2Session, state: SessionState): void {
    if (state.cut || session.destroyed) return;
    const rate = this.config.maxStreamResetsPerSecond;
    const now = performance.now();
    state.tokens = Math.min(rate, state.tokens + ((now - state.at) / 1000) * rate);
    state.at = now;
    if (state.tokens >= 1) {
      state.tokens -= 1;
      return;
    }
    state.cut = true;
    this.metrics.refused(Http2Refusal.TooManyResets);
    this.warn(
      session,
      "resets",
      { code: Http2Refusal.TooManyResets, maxStreamResetsPerSecond: rate },
      "client resets streams too fast (HTTP/2 rapid reset); closing the connection",
    );
    // GOAWAY first, then cut the socket shortly after, so that the GOAWAY
    // is flushed rather than lost in a reset connection.
    try {
      session.goaway(http2.constants.NGHTTP2_ENHANCE_YOUR_CALM);
    } catch {
      // already closing
    }
    setTimeout(() => session.destroy(), 50).unref();
  }

  /**
   * The PING watchdog, one timer for every session rather than one each: on
   * every tick (`serverKeepaliveIntervalMs`) each session without a PING in
   * flight gets one; a session whose PING is still unanswered
   * `serverKeepaliveTimeoutMs` after it went out is destroyed. A session's
   * first PING thus goes out within one interval of its start.
   */
  private startWatchdog(): void {
    if (this.watchdog !== undefined) return;
    this.watchdog = setInterval(() => this.pingAll(), this.config.serverKeepaliveIntervalMs);
    this.watchdog.unref();
  }

  private stopWatchdog(): void {
    clearInterval(this.watchdog);
    this.watchdog = undefined;
    clearTimeout(this.pingCheck);
    this.pingCheck = undefined;
  }

  private pingAll(): void {
    const now = performance.now();
    for (const [session, state] of this.sessions) {
      if (state.pingSentAt !== 0 || session.destroyed || session.closed) continue; // one PING at a time
      try {
        session.ping((err) => {
          if (!err) state.pingSentAt = 0;
        });
        state.pingSentAt = now;
      } catch {
        // closing; 'close' cleans up
      }
    }
    this.schedulePingCheck();
  }

  /** Arms the check of the oldest PING in flight, if any and not armed. */
  private schedulePingCheck(): void {
    if (this.pingCheck !== undefined) return;
    let oldest = Number.POSITIVE_INFINITY;
    for (const state of this.sessions.values()) if (state.pingSentAt !== 0 && state.pingSentAt < oldest) oldest = state.pingSentAt;
    if (oldest === Number.POSITIVE_INFINITY) return;
    const delay = Math.max(0, oldest + this.config.serverKeepaliveTimeoutMs - performance.now());
    this.pingCheck = setTimeout(() => {
      this.pingCheck = undefined;
      this.checkPings();
    }, delay);
    this.pingCheck.unref();
  }

  private checkPings(): void {
    const timeoutMs = this.config.serverKeepaliveTimeoutMs;
    const now = performance.now();
    for (const [session, state] of this.sessions) {
      if (state.pingSentAt === 0 || now - state.pingSentAt < timeoutMs || session.destroyed) continue;
      state.pingSentAt = 0;
      this.metrics.refused(ErrorCode.Closed);
      this.warn(session, "keepalive", { timeoutMs }, "peer did not answer PING; closing the connection");
      session.destroy(new Error(`keepalive PING not answered within ${timeoutMs}ms`));
    }
    this.schedulePingCheck();
  }

  private readonly onSessionError = (err: Error & { code?: string }, session?: http2.ServerHttp2Session): void => {
    if (isPeerGone(err)) {
      this.log.debug({ address: session && this.addresses.get(session), code: err.code }, "peer closed or dropped its connection");
      return;
    }
    this.metrics.refused(ErrorCode.MalformedFrame);
    this.warn(session, `session ${err.code}`, { code: err.code, err: err.message }, "HTTP/2 session error");
  };

  private readonly onTlsError = (err: Error & { code?: string }, socket: Socket): void => {
    this.metrics.refused(ErrorCode.TlsFailed);
    const address = socket.remoteAddress ?? "unknown";
    this.limiter.maybe(`tls ${address} ${err.code}`, (suppressed) =>
      this.log.warn({ address, code: err.code, err: err.message, suppressed }, "TLS handshake failed"),
    );
  };

  private readonly onUnknownProtocol = (socket: Socket): void => {
    this.metrics.refused(ErrorCode.MalformedFrame);
    const address = socket.remoteAddress ?? "unknown";
    this.limiter.maybe(`alpn ${address}`, (suppressed) =>
      this.log.warn({ address, suppressed }, "client did not negotiate HTTP/2 (ALPN); closing"),
    );
    socket.destroy();
  };

  private warn(session: http2.ServerHttp2Session | undefined, key: string, obj: object, msg: string): void {
    const socket = session?.socket as Socket | undefined;
    const address = socket?.remoteAddress ?? (session && this.addresses.get(session)) ?? "unknown";
    this.limiter.maybe(`${key} ${address}`, (suppressed) => this.log.warn({ address, ...obj, suppressed }, msg));
  }
}

/** What the watch keeps per session. */
interface SessionState {
  /** Tokens of the reset bucket, and when they were counted. */
  tokens: number;
  at: number;
  /** The session was cut for resetting too fast. */
  cut: boolean;
  /** When the PING in flight went out (performance.now()), 0 when none. */
  pingSentAt: number;
}

function ignore(): void {}

const kSession = Symbol("gossip-connect session");
type SessionStream = http2.ServerHttp2Stream & { [kSession]?: http2.ServerHttp2Session };

/**
 * SETTINGS_MAX_HEADER_LIST_SIZE we announce: a backstop well above
 * `maxHeaderListBytes`, so that lists between the two reach the plugin and get
 * a clear, counted RESOURCE_EXHAUSTED, while Node's HTTP/2 layer still resets
 * larger ones (from clients that acknowledged our SETTINGS) on its own.
 */
export function headerListBackstop(config: Http2Config): number {
  return Math.min(0xffffffff, 8 * config.maxHeaderListBytes);
}
