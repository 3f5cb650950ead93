import * as http2 from "node:http2";
import { checkServerIdentity, type PeerCertificate, type SecureContext } from "node:tls";
import { type Clock, systemClock } from "../core/clock.js";
import { type CommConfig, resolveCommConfig } from "../core/config.js";
import { ErrorCode, GossipError } from "../core/errors.js";
import { type Http2Config, type PeerOptions, resolveHttp2Config } from "../grpc/config.js";
import { gossipStreamPath, pingPath } from "../grpc/service.js";
import { formatGrpcTimeout } from "../grpc/status.js";
import { version } from "../version.js";
import { ClientWireStream } from "./client-wire-stream.js";
import { toGossipError } from "./node-error.js";
import { PingCall } from "./ping-call.js";
import { clientSecureContext } from "./secure-context.js";
import { GuardedSessionManager } from "./session-manager.js";

/** TLS material for outbound connections. Without it, connections are cleartext (h2c). */
export interface ClientTlsOptions {
  /** CA certificates (PEM) that server certificates must chain to. */
  ca: string | readonly string[];
  /** Our client certificate (PEM); its hash goes into the handshake. Fabric falls back to the server pair. */
  cert?: string;
  /** The key of `cert` (PEM). */
  key?: string;
  /** Name to verify the server certificate against, instead of the dialed host. */
  serverName?: string;
}

/** Options of {@link GossipClient.connect}. */
export interface GossipClientOptions {
  /** TLS; cleartext (h2c) when absent. */
  tls?: ClientTlsOptions;
  /** Timeouts, limits, keepalive and HTTP/2 settings (Fabric's defaults). */
  options?: PeerOptions;
  /** Aborts the dial. */
  signal?: AbortSignal;
  /** Time source for the dial timeout. */
  clock?: Clock;
}

const maxSessionMemoryMb = 1024;

/** The GossipStream request headers sent as literals HPACK does not index (see `openGossipStream`). */
const notIndexed = ["user-agent", "grpc-accept-encoding"];

/**
 * A Ping's request headers: only what gRPC requires (and `grpc-timeout`, added
 * per call). Every further header costs the server a few microseconds of CPU
 * per call in Node's HTTP/2 layer even when HPACK-indexed (measured at 32
 * Pings in flight: `user-agent` and `grpc-accept-encoding: identity` cost
 * the server ~15 % per Ping, issue 12), and neither tells it anything it uses:
 * identity is always accepted, and the GossipStream carries our user agent.
 */
const pingHeaders = {
  ":method": "POST",
  ":path": pingPath,
  "content-type": "application/grpc+proto",
  te: "trailers",
};

/**
 * One HTTP/2 connection to one remote peer, with Fabric's limits and
 * keepalive, speaking gRPC on raw HTTP/2 streams. connect-node does the
 * connection management (its `Http2SessionManager`: connecting, keepalive
 * PINGs, reconnect state); the calls themselves are framed here, because
 * Connect's client costs a few hundred microseconds of CPU per call (see
 * `ping()`).
 *
 * - `connect()` dials within `dialTimeoutMs` (TCP + TLS + HTTP/2 settings) and
 *   captures the server's leaf certificate.
 * - `ping()` calls Gossip.Ping within `connTimeoutMs`.
 * - `openGossipStream()` opens a GossipStream on the same connection.
 * - `close()` closes the connection and every stream on it.
 *
 * Keepalive PINGs go out every `clientKeepaliveIntervalMs` (60 s, also while
 * idle, as Fabric's PermitWithoutStream) and an unanswered one closes the
 * connection after `clientKeepaliveTimeoutMs`. The process is protected from
 * connect-es #1795 (see `GuardedSessionManager`).
 */
export class GossipClient {
  private constructor(
    /** The `host:port` dialed. */
    readonly endpoint: string,
    /** The server's leaf certificate (DER), when TLS. */
    readonly serverCertificate: Uint8Array | undefined,
    private readonly sessions: GuardedSessionManager,
    private readonly config: CommConfig,
  ) {}

  private lastPingTimeoutMs = Number.NaN;
  private lastPingHeaders: http2.OutgoingHttpHeaders | undefined;

  /**
   * Dials `endpoint` (`host:port`). Rejects with `DialFailed`, `DialTimeout`,
   * `TlsFailed`, or `Stopping` when `signal` aborts.
   */
  static async connect(endpoint: string, options: GossipClientOptions = {}): Promise<GossipClient> {
    if (!URL.canParse(`http://${endpoint}`) || endpoint === "" || !/:\d+$/.test(endpoint)) {
      // A member learned without an endpoint (another organization's peer
      // with no external one) is still dialed by Fabric's rules: say so.
      throw new GossipError(ErrorCode.DialFailed, `dial ${JSON.stringify(endpoint)} failed: not a host:port endpoint`);
    }
    const config = resolveCommConfig(options.options);
    const h2: Http2Config = resolveHttp2Config(options.options);
    const clock = options.clock ?? systemClock;
    const tls = options.tls;
    let serverCert: Uint8Array | undefined;
    let secureContext: SecureContext | undefined;
    if (tls) {
      try {
        secureContext = clientSecureContext(typeof tls.ca === "string" ? [tls.ca] : tls.ca, tls.cert, tls.key);
      } catch (e) {
        // Unusable material fails the dial as Node's own TLS setup did.
        throw toGossipError(e, "dial", endpoint);
      }
    }
    const sessions = new GuardedSessionManager(
      `${tls ? "https" : "http"}://${endpoint}`,
      {
        pingIntervalMs: h2.clientKeepaliveIntervalMs,
        pingTimeoutMs: h2.clientKeepaliveTimeoutMs,
        pingIdleConnection: true,
        idleConnectionTimeoutMs: 0x7fffffff,
      },
      {
        maxSessionMemory: maxSessionMemoryMb,
        settings: { initialWindowSize: h2.initialWindowBytes, enablePush: false },
        ...(tls
          ? {
              secureContext,
              servername: tls.serverName,
              checkServerIdentity: (host: string, cert: PeerCertificate) => {
                serverCert = new Uint8Array(cert.raw);
                return checkServerIdentity(tls.serverName ?? host, cert);
              },
            }
          : {}),
      },
      h2.initialWindowBytes,
    );
    const signal = options.signal;
    let timer: unknown;
    const onAbort = () => sessions.abort(new GossipError(ErrorCode.Stopping, `dial ${endpoint} aborted`));
    try {
      if (signal?.aborted) throw new GossipError(ErrorCode.Stopping, `dial ${endpoint} aborted`);
      signal?.addEventListener("abort", onAbort, { once: true });
      const timedOut = new Promise<"timeout">((resolve) => {
        timer = clock.setTimeout(() => resolve("timeout"), config.dialTimeoutMs);
      });
      const state = await Promise.race([sessions.connectVerified(), timedOut]);
      if (state === "timeout") {
        sessions.abort();
        throw new GossipError(ErrorCode.DialTimeout, `dial ${endpoint} timed out after ${config.dialTimeoutMs}ms`);
      }
      if (signal?.aborted) throw new GossipError(ErrorCode.Stopping, `dial ${endpoint} aborted`);
      if (state === "error") {
        // connectVerified also reports "error" when the listener accepted TCP but
        // never answered an HTTP/2 PING; connect-node then has no error to give.
        const cause =
          sessions.error() ??
          new GossipError(ErrorCode.DialFailed, `dial ${endpoint}: connection closed before the HTTP/2 handshake completed`);
        throw toGossipError(cause, "dial", endpoint);
      }
    } catch (e) {
      sessions.abort();
      throw toGossipError(e, "dial", endpoint);
    } finally {
      clock.clearTimeout(timer);
      signal?.removeEventListener("abort", onAbort);
    }
    return new GossipClient(endpoint, serverCert, sessions, config);
  }

  /**
   * Calls Gossip.Ping within `timeoutMs` (default `connTimeoutMs`). Rejects with `PingFailed`.
   *
   * The call is a plain gRPC unary POST on a raw HTTP/2 stream of this
   * connection (like `openGossipStream`), not a call through `client`:
   * connect-node's unary path costs a few hundred microseconds of CPU per call
   * (AbortControllers, WHATWG Headers, async iterables for one message), which
   * held Ping at a fraction of grpc-js's rate (issue 4, W4). On a ready
   * connection the stream opens synchronously, as one of the connection's
   * Pings in flight (`UnaryFlight`); otherwise the
   * call waits for connect-node to connect or verify the connection. See
   * `PingCall` for what the call checks in the answer.
   */
  ping(timeoutMs: number = this.config.connTimeoutMs, signal?: AbortSignal): Promise<void> {
    const call = new PingCall(this.endpoint, this.config.maxMessageBytes, timeoutMs, signal);
    if (signal?.aborted) {
      call.handleEvent();
      return call.promise;
    }
    const headers = this.pingHeaders(timeoutMs);
    const flight = this.sessions.unaryFlight();
    const stream = flight?.open(headers);
    if (stream) {
      call.start(stream, flight);
    } else {
      this.sessions.request("POST", pingPath, headers, {}).then(
        (s) => call.start(s),
        (e: unknown) => call.fail(toGossipError(e, "ping", this.endpoint)),
      );
    }
    return call.promise;
  }

  /** The headers of a Ping with `timeoutMs`, the last ones kept (callers use one timeout or a few). */
  private pingHeaders(timeoutMs: number): http2.OutgoingHttpHeaders {
    if (this.lastPingTimeoutMs !== timeoutMs || this.lastPingHeaders === undefined) {
      this.lastPingHeaders = { ...pingHeaders, "grpc-timeout": formatGrpcTimeout(timeoutMs) };
      this.lastPingTimeoutMs = timeoutMs;
    }
    return this.lastPingHeaders;
  }

  /**
   * Opens a GossipStream on this connection. With `ownsConnection`, aborting
   * the stream also closes the connection (one connection per Fabric comm
   * connection). `timeoutMs` sets a deadline on the stream (`grpc-timeout`).
   */
  async openGossipStream(options: { ownsConnection?: boolean; timeoutMs?: number } = {}): Promise<ClientWireStream> {
    const headers: http2.OutgoingHttpHeaders = {
      "content-type": "application/grpc",
      te: "trailers",
      "user-agent": `gossip-connect/${version}`,
      "grpc-accept-encoding": "identity,gzip",
      // The same headers, as literals HPACK does not index: a GossipStream is
      // its connection's one stream, so indexed entries would stay in the
      // server's HPACK decoder table (and our encoder's) for the connection's
      // whole life for a reuse that never comes (measured on a hub: ~180
      // bytes of nghttp2 memory per inbound connection).
      [http2.sensitiveHeaders]: notIndexed,
    };
    if (options.timeoutMs !== undefined) headers["grpc-timeout"] = formatGrpcTimeout(options.timeoutMs);
    let h2: http2.ClientHttp2Stream;
    const cancel = new AbortController();
    try {
      h2 = await this.sessions.request("POST", gossipStreamPath, headers, { signal: cancel.signal });
    } catch (e) {
      throw toGossipError(e, "stream", this.endpoint);
    }
    const stream = new ClientWireStream(
      h2,
      { maxMessageBytes: this.config.maxMessageBytes, recvBuffSize: this.config.recvBuffSize, gzip: false },
      cancel,
      () => {
        if (options.ownsConnection) this.close();
      },
      () => this.sessions.notifyResponseByteRead(h2),
    );
    if (options.timeoutMs !== undefined) {
      const timer = setTimeout(
        () =>
          stream.abort(
            new GossipError(ErrorCode.HandshakeTimeout, `stream to ${this.endpoint} exceeded its ${options.timeoutMs}ms deadline`),
          ),
        options.timeoutMs,
      );
      void stream.closed.then(() => clearTimeout(timer));
    }
    return stream;
  }

  /** Closes the connection and every stream on it. Idempotent. */
  close(): void {
    this.sessions.abort();
  }

  /** The connection's state, as connect-node's session manager reports it. */
  state(): ReturnType<GuardedSessionManager["state"]> {
    return this.sessions.state();
  }
}
