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
  private readonly sessions = new Set<http2.ServerHttp2Session>();
  /** Every TCP connection of the server (before TLS), until it closes. */
  private readonly sockets = new Set<Socket>();
  /** Remote address of each session, kept because a destroyed session (as 'sessionError' reports it) has lost its socket. */
  private readonly addresses = new WeakMap<http2.ServerHttp2Session, string>();
  private readonly limiter: LogLimiter;
  private closing = false;

  constructor(
    private readonly server: Http2Server,
    private readonly config: Http2Config,
    private readonly metrics: CommMetrics,
    private readonly log: Logger,
  ) {
    this.limiter = new LogLimiter(() => performance.now());
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
    for (const s of this.sessions) {
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
        for (const s of this.sessions) s.destroy();
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
    socket.once("close", () => this.sockets.delete(socket));
  };

  private readonly onSession = (session: http2.ServerHttp2Session): void => {
    if (this.closing) {
      session.destroy();
      return;
    }
    this.sessions.add(session);
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
    const watchdog = this.startWatchdog(session);
    this.limitResets(session);
    session.on("frameError", (type: number, code: number) => {
      this.metrics.refused(ErrorCode.MalformedFrame);
      this.warn(session, `frame ${type}`, { frameType: type, code }, "HTTP/2 frame error");
    });
    session.once("close", () => {
      clearInterval(watchdog);
      this.sessions.delete(session);
    });
    session.on("error", () => {}); // reported through 'sessionError'
  };

  /**
   * Token bucket of streams closed by a reset (RST_STREAM with an error
   * code: in practice the client's CANCEL; ours after a status is NO_ERROR),
   * `maxStreamResetsPerSecond` per second with a burst of as many.
   * An empty bucket destroys the session with ENHANCE_YOUR_CALM: the client
   * can no longer make us set up streams (and handshakes) it cancels at once.
   */
  private limitResets(session: http2.ServerHttp2Session): void {
    const rate = this.config.maxStreamResetsPerSecond;
    let tokens = rate;
    let at = performance.now();
    let cut = false;
    const onReset = () => {
      if (cut || session.destroyed) return;
      const now = performance.now();
      tokens = Math.min(rate, tokens + ((now - at) / 1000) * rate);
      at = now;
      if (tokens >= 1) {
        tokens -= 1;
        return;
      }
      cut = true;
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
    };
    session.on("stream", (stream: http2.ServerHttp2Stream) =>
      stream.once("close", () => {
        const code = stream.rstCode;
        if (code !== undefined && code !== http2.constants.NGHTTP2_NO_ERROR) onReset();
      }),
    );
  }

  private startWatchdog(session: http2.ServerHttp2Session): NodeJS.Timeout {
    let waiting: NodeJS.Timeout | undefined;
    const timeoutMs = this.config.serverKeepaliveTimeoutMs;
    const iv = setInterval(() => {
      if (waiting || session.destroyed || session.closed) return; // one PING at a time
      waiting = setTimeout(() => {
        this.metrics.refused(ErrorCode.Closed);
        this.warn(session, "keepalive", { timeoutMs }, "peer did not answer PING; closing the connection");
        session.destroy(new Error(`keepalive PING not answered within ${timeoutMs}ms`));
      }, timeoutMs);
      waiting.unref();
      try {
        session.ping((err) => {
          if (!err) {
            clearTimeout(waiting);
            waiting = undefined;
          }
        });
      } catch {
        clearTimeout(waiting);
        waiting = undefined;
      }
    }, this.config.serverKeepaliveIntervalMs);
    iv.unref();
    session.once("close", () => clearTimeout(waiting));
    return iv;
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

/**
 * SETTINGS_MAX_HEADER_LIST_SIZE we announce: a backstop well above
 * `maxHeaderListBytes`, so that lists between the two reach the plugin and get
 * a clear, counted RESOURCE_EXHAUSTED, while Node's HTTP/2 layer still resets
 * larger ones (from clients that acknowledged our SETTINGS) on its own.
 */
export function headerListBackstop(config: Http2Config): number {
  return Math.min(0xffffffff, 8 * config.maxHeaderListBytes);
}
