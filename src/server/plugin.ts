import type * as http2 from "node:http2";
import { Code, ConnectError, createContextValues } from "@connectrpc/connect";
import { fastifyConnectPlugin } from "@connectrpc/connect-fastify";
import type { FastifyInstance, FastifyPluginAsync } from "fastify";
import fp from "fastify-plugin";
import type { Registry } from "prom-client";
import { PeerDialer } from "../client/dialer.js";
import type { ClientTlsOptions } from "../client/gossip-client.js";
import { Comm } from "../core/comm.js";
import type { CryptoService } from "../core/crypto.js";
import { ErrorCode, GossipError } from "../core/errors.js";
import { type Logger, LogLimiter } from "../core/logger.js";
import { type CommMetrics, noopMetrics } from "../core/metrics.js";
import { type X509CryptoOptions, X509CryptoService } from "../core/x509-crypto.js";
import { Gossip } from "../gen/gossip/message_pb.js";
import { http2OptionKeys, type PeerOptions, resolveHttp2Config } from "../grpc/config.js";
import { gossipStreamPath, pingPath } from "../grpc/service.js";
import { encodeGrpcMessage, GrpcStatus, grpcContentType, isGrpcProtoContentType } from "../grpc/status.js";
import { Membership, type MembershipOptions, resolveMembershipConfig } from "../membership/index.js";
import { PrometheusMembershipMetrics } from "../metrics/membership-prometheus.js";
import { PrometheusMetrics } from "../metrics/prometheus.js";
import { Http2Refusal, statusTrailers } from "./errors.js";
import { kRawRequest, registerGossip } from "./gossip-service.js";
import { serveGrpcPing } from "./grpc-ping.js";
import { SessionWatch } from "./http2-sessions.js";
import { registerReflection } from "./reflection.js";
import { ServerWireStream } from "./server-wire-stream.js";
import { refuseStream, StreamDispatch } from "./stream-dispatch.js";
import { refuseUnknownOptions } from "./unknown-options.js";

/** Options of the gossip-connect Fastify plugin. */
export interface GossipPluginOptions {
  /**
   * A comm to serve. The plugin then neither creates nor stops one (you own
   * it); its options, metrics and logger are the comm's.
   */
  comm?: Comm;
  /** Our identity as a crypto service, when the plugin creates the comm. */
  crypto?: CryptoService;
  /** Our identity as X.509 material, when the plugin creates the comm and `crypto` is not given. */
  identity?: X509CryptoOptions;
  /** TLS of the comm's outbound connections (cleartext h2c when absent). */
  clientTls?: ClientTlsOptions;
  /**
   * Options of the comm the plugin creates and of its HTTP/2 transport
   * (Fabric's defaults). With `comm`, only the HTTP/2 options (keepalive,
   * settings, header and reset limits) may be given: they configure the server.
   */
  options?: PeerOptions;
  /**
   * Serve gRPC server reflection (v1 and v1alpha), so that grpcurl and
   * `buf curl` work without a schema.
   * @default true
   */
  reflection?: boolean;
  /**
   * Count Prometheus metrics (`gossip_comm_*`) and serve them at `path`.
   * @default false
   */
  metrics?: boolean | { path?: string; registry?: Registry };
  /** Where the comm and server log. @default the Fastify instance's logger */
  logger?: Logger;
  /**
   * Run Fabric's discovery (membership) layer on the comm, as
   * `app.gossipMembership`, created when the server starts listening (and
   * stopped on close, before the comm). `internalEndpoint` defaults to the
   * address the server listens on. With `comm`, also give `crypto` (the one
   * that comm was built with). With `metrics`, its `gossip_membership_*`
   * metrics are served from the same registry.
   */
  membership?: GossipMembershipOptions;
}

/** Membership options of the plugin: {@link MembershipOptions} with `internalEndpoint` optional. */
export type GossipMembershipOptions = Omit<MembershipOptions, "internalEndpoint"> & {
  /** Our internal endpoint (`host:port`, Fabric's `peer.gossip.endpoint`). @default the listen address */
  internalEndpoint?: string;
};

declare module "fastify" {
  interface FastifyInstance {
    /** The gossip comm served by this instance (gossip-connect). */
    gossip: Comm;
    /** The Prometheus metrics of `gossip`, when the plugin's `metrics` option is on. */
    gossipMetrics: PrometheusMetrics | null;
    /**
     * The membership view run on `gossip`, when the plugin's `membership`
     * option is given: null until the server listens, and without the option.
     */
    gossipMembership: Membership | null;
  }
}

export { gossipStreamPath };

const acceptedEncodings = new Set(["identity", "gzip"]);

/** Size of a header list as HTTP/2 counts it (RFC 9113 §6.5.2): name, value and 32 bytes per field. */
function headerListSize(rawHeaders: readonly string[]): number {
  let size = 0;
  for (const h of rawHeaders) size += Buffer.byteLength(h, "latin1");
  return size + 16 * rawHeaders.length;
}

function validate(fastify: FastifyInstance, opts: GossipPluginOptions): void {
  if (fastify.initialConfig.http2 !== true) {
    throw new TypeError("gossip-connect: the Fastify instance must be created with http2: true");
  }
  refuseUnknownOptions(opts);
  if (opts.comm === undefined && opts.crypto === undefined && opts.identity === undefined) {
    throw new TypeError("gossip-connect: give one of the options comm, crypto or identity");
  }
  if (opts.membership !== undefined && opts.comm !== undefined && opts.crypto === undefined) {
    throw new TypeError("gossip-connect: membership with comm needs crypto too (the crypto service that comm was built with)");
  }
  if (opts.membership !== undefined) {
    // Checked now, not only when the membership is created: Fastify logs an onListen hook's error
    // and listens anyway, so a bad option would leave gossipMembership null without a word. The
    // listen address, unknown yet, stands in for a missing internal endpoint.
    resolveMembershipConfig({ ...opts.membership, internalEndpoint: opts.membership.internalEndpoint ?? "127.0.0.1:7051" });
  }
  if (opts.comm !== undefined) {
    const commKeys = Object.keys(opts.options ?? {}).filter((k) => !(http2OptionKeys as readonly string[]).includes(k));
    if (commKeys.length > 0 || opts.clientTls !== undefined) {
      throw new TypeError(
        `gossip-connect: ${opts.clientTls !== undefined ? "clientTls" : `options ${commKeys.join(", ")}`} configure a comm the plugin creates; with comm, configure that comm instead (options may carry only HTTP/2 options)`,
      );
    }
  }
}

/**
 * Serves Fabric's Gossip service on a Fastify HTTP/2 instance (cleartext or
 * TLS) and decorates the instance with `gossip`, the {@link Comm} it feeds.
 *
 * - gRPC GossipStreams (what Fabric peers and grpc-js use) go to the comm
 *   through a raw framer on the HTTP/2 stream, and gRPC Pings are answered
 *   on the same fast path (grpc-ping.ts). Both are taken off Node's HTTP/2
 *   compatibility layer before Fastify sees them (stream-dispatch.ts), so
 *   **the instance's Fastify hooks (`onRequest`, ...) and request logging do
 *   not run for them**; they are limited, counted and logged by the plugin
 *   itself. Connect/gRPC-web Ping, reflection, GossipStream over the Connect
 *   and gRPC-web protocols and every other route go through Fastify
 *   (connect-fastify) as usual.
 * - Limits: `maxMessageBytes` both ways, `maxConcurrentStreams` and a 1 MiB
 *   flow-control window per session; gzip accepted, responses never
 *   compressed.
 * - A PING watchdog ends sessions of frozen peers.
 * - On `close()`: the comm (if the plugin created it) drains its
 *   connections, Connect calls end with UNAVAILABLE after `drainTimeoutMs`,
 *   and every HTTP/2 session is closed, so close completes on Node 20 too.
 */
const plugin: FastifyPluginAsync<GossipPluginOptions> = async (fastify, opts) => {
  validate(fastify, opts);
  /** For the comm and the membership, which bind their own `component` (pino would print two). */
  const baseLog: Logger = opts.logger ?? fastify.log;
  const log: Logger = opts.logger ?? fastify.log.child({ component: "gossip" });
  const metricsOpt = opts.metrics ?? false;
  const prom = metricsOpt === false ? undefined : new PrometheusMetrics(metricsOpt === true ? undefined : metricsOpt.registry);
  const owned = opts.comm === undefined;
  const http2Config = resolveHttp2Config(opts.options);
  let comm: Comm;
  const crypto = opts.crypto ?? (opts.identity !== undefined ? new X509CryptoService(opts.identity) : undefined);
  if (opts.comm) {
    comm = opts.comm;
  } else {
    comm = new Comm({
      crypto: crypto as CryptoService,
      dialer: new PeerDialer({ tls: opts.clientTls, options: opts.options }),
      options: opts.options,
      metrics: prom ?? noopMetrics,
      logger: baseLog,
    });
  }
  prom?.bind(comm, http2Config);
  const config = comm.config;
  const serverMetrics: CommMetrics = prom ?? noopMetrics;
  const server = fastify.server as unknown as http2.Http2Server | http2.Http2SecureServer;
  const sessions = new SessionWatch(server, http2Config, serverMetrics, log);
  const limiter = new LogLimiter(() => performance.now());

  /** Counts and logs (once per address and interval) a request whose headers exceed `maxHeaderListBytes`. */
  const largeHeaders = (address: string, size: number): GossipError => {
    const error = new GossipError(
      ErrorCode.RateLimited,
      `header list of ${size} bytes is larger than configured maxHeaderListBytes ${http2Config.maxHeaderListBytes}`,
    );
    serverMetrics.refused(Http2Refusal.HeadersTooLarge);
    limiter.maybe(`headers ${address}`, (suppressed) =>
      log.warn({ address, code: Http2Refusal.HeadersTooLarge, err: error.message, suppressed }, "request refused"),
    );
    return error;
  };

  /** Refuses a (non-gRPC or non-Gossip) compat request whose headers are too large: HTTP 431, or a gRPC status. */
  const refuseLargeHeaders = (req: http2.Http2ServerRequest, res: http2.Http2ServerResponse, size: number): void => {
    const error = largeHeaders(req.socket?.remoteAddress ?? "unknown", size);
    if (isGrpcProtoContentType(req.headers["content-type"])) {
      res.writeHead(200, { "content-type": grpcContentType, ...statusTrailers(error) });
    } else {
      res.writeHead(431, { "content-type": "text/plain" });
    }
    res.end();
  };

  fastify.decorate("gossip", comm);
  fastify.decorate("gossipMetrics", prom ?? null);
  fastify.decorate("gossipMembership", null);
  let membership: Membership | undefined;
  /** Set when the server starts closing: no new membership, no new streams. */
  let closing = false;
  const membershipOpts = opts.membership;
  if (membershipOpts !== undefined) {
    const membershipMetrics = prom ? new PrometheusMembershipMetrics(prom.registry) : undefined;
    // The internal endpoint defaults to where we listen, known only now.
    fastify.addHook("onListen", async () => {
      if (membership !== undefined || closing) return;
      let internalEndpoint: string;
      try {
        internalEndpoint = membershipOpts.internalEndpoint ?? listenEndpoint(fastify);
      } catch (e) {
        // Fastify only logs an onListen hook's error, and its logger is off by default: a process
        // warning is printed to stderr whatever the logger, so the missing membership is not silent.
        const message = `${(e as Error).message}; membership is not started (app.gossipMembership stays null)`;
        log.error({ err: e }, message);
        process.emitWarning(message, { code: "GOSSIP_CONNECT_NO_MEMBERSHIP" });
        return;
      }
      membership = new Membership({
        comm,
        crypto: crypto as CryptoService,
        options: { ...membershipOpts, internalEndpoint },
        metrics: membershipMetrics,
        logger: baseLog,
      });
      fastify.gossipMembership = membership;
    });
  }
  const stopMembership = async () => {
    closing = true;
    await membership?.stop();
  };

  /** Refuses an unsupported `grpc-encoding` (true when refused). */
  const refuseEncoding = (stream: http2.ServerHttp2Stream, encoding: string | string[] | undefined): boolean => {
    if (typeof encoding !== "string" || acceptedEncodings.has(encoding)) return false;
    serverMetrics.refused(ErrorCode.MalformedFrame);
    // A trailers-only response, as gRPC servers answer an unsupported grpc-encoding.
    refuseStream(stream, {
      "grpc-accept-encoding": "identity,gzip",
      "grpc-status": String(GrpcStatus.Unimplemented),
      "grpc-message": encodeGrpcMessage(`unknown compression ${encoding}`),
    });
    return true;
  };

  /** GossipStreams of this server, until they close: closing the server closes them gracefully. */
  const served = new Set<ServerWireStream>();

  // One limits object for all streams (each keeps it for its life), per encoding.
  const limits = { maxMessageBytes: config.maxMessageBytes, recvBuffSize: config.recvBuffSize, gzip: false };
  const gzipLimits = { ...limits, gzip: true };
  const serveGrpc = (h2: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders): void => {
    const stream = new ServerWireStream(h2, headers["grpc-encoding"] === "gzip" ? gzipLimits : limits, served);
    if (closing) {
      stream.abort(new GossipError(ErrorCode.Stopping, "shutting down"));
      return;
    }
    void comm.handleStream(stream);
  };

  // gRPC GossipStreams and Pings are served on their raw HTTP/2 streams,
  // before Node's compat layer and Fastify (see stream-dispatch.ts).
  const dispatch = new StreamDispatch(server, (stream, headers, rawHeaders) => {
    if (headers[":method"] !== "POST") return false;
    const path = headers[":path"];
    if ((path !== gossipStreamPath && path !== pingPath) || !isGrpcProtoContentType(headers["content-type"])) return false;
    // Node enforces the announced header list limit only once a client has
    // acknowledged our SETTINGS; this check also covers clients that did not.
    const size = headerListSize(rawHeaders);
    if (size > http2Config.maxHeaderListBytes) {
      refuseStream(stream, statusTrailers(largeHeaders(stream.session?.socket?.remoteAddress ?? "unknown", size)));
      return true;
    }
    const encoding = headers["grpc-encoding"];
    if (refuseEncoding(stream, encoding)) return true;
    if (path === gossipStreamPath) serveGrpc(stream, headers);
    // Closing: refused as Fastify refuses requests then (UNAVAILABLE, not HTTP 503).
    else if (closing) refuseStream(stream, statusTrailers(new GossipError(ErrorCode.Stopping, "shutting down")));
    // gRPC Ping: a constant answer (see grpc-ping.ts for why not Connect's unary path).
    else serveGrpcPing(stream, config.maxMessageBytes, encoding === "gzip");
    return true;
  });

  const connectShutdown = new AbortController();
  let connectShutdownTimer: NodeJS.Timeout | undefined;
  const abortConnectCalls = () => {
    clearTimeout(connectShutdownTimer);
    if (!connectShutdown.signal.aborted) connectShutdown.abort(new ConnectError("server shutting down", Code.Unavailable));
  };

  await fastify.register(async (child) => {
    // Requests that reach Fastify (all but gRPC GossipStreams and Pings).
    child.addHook("onRequest", async (request, reply) => {
      // Node enforces the announced header list limit only once a client has
      // acknowledged our SETTINGS; this check also covers clients that did not.
      const size = headerListSize(request.raw.rawHeaders);
      if (size > http2Config.maxHeaderListBytes) {
        reply.hijack();
        refuseLargeHeaders(request.raw as unknown as http2.Http2ServerRequest, reply.raw as unknown as http2.Http2ServerResponse, size);
      }
    });
    await child.register(fastifyConnectPlugin, {
      routes(router) {
        registerGossip(router, comm);
        if (opts.reflection ?? true) registerReflection(router, [Gossip]);
      },
      readMaxBytes: config.maxMessageBytes,
      writeMaxBytes: config.maxMessageBytes,
      // Accept compressed requests (grpc-js may send gzip) but never compress responses.
      compressMinBytes: 0xffffffff,
      // Not connect-fastify's shutdownTimeoutMs: its timer is not unref'd and
      // kept the process alive for drainTimeoutMs after close().
      shutdownSignal: connectShutdown.signal,
      contextValues: (req) => createContextValues().set(kRawRequest, req.raw as unknown as http2.Http2ServerRequest),
    });
  });

  if (prom) {
    const path = metricsOpt !== true && metricsOpt !== false ? (metricsOpt.path ?? "/metrics") : "/metrics";
    fastify.get(path, async (_request, reply) => {
      reply.header("content-type", prom.registry.contentType);
      return prom.registry.metrics();
    });
  }

  fastify.addHook("preClose", async () => {
    closing = true;
    // Membership first: it sends through the comm.
    await stopMembership();
    // Connect calls end with UNAVAILABLE after drainTimeoutMs, or when close completes.
    connectShutdownTimer = setTimeout(abortConnectCalls, config.drainTimeoutMs);
    connectShutdownTimer.unref();
    if (owned) await comm.stop();
    // A comm the application owns goes on, but the connections this server
    // carries drain now: the remote sees them end rather than wait for the
    // sessions to be cut after drainTimeoutMs.
    else for (const s of served) s.shutdown();
    await sessions.closeAll(config.drainTimeoutMs);
  });
  fastify.addHook("onClose", async () => {
    await stopMembership();
    sessions.detach();
    dispatch.detach();
    clearTimeout(connectShutdownTimer); // closed: no timer may outlive the server
    abortConnectCalls();
    if (owned) await comm.stop();
  });
};

/**
 * `host:port` of the address the server listens on, as a membership internal
 * endpoint. Throws for IPv6 (Fabric's endpoint format has no IPv6 literals).
 */
function listenEndpoint(fastify: FastifyInstance): string {
  const addr = fastify.server.address();
  if (addr === null || typeof addr === "string") {
    throw new TypeError("gossip-connect: cannot derive membership.internalEndpoint from the listen address; give it explicitly");
  }
  if (addr.family === "IPv6") {
    throw new TypeError(
      `gossip-connect: the server listens on IPv6 [${addr.address}]:${addr.port}, which Fabric's 'host:port' endpoints cannot express; give membership.internalEndpoint (a host name or IPv4 address)`,
    );
  }
  return `${addr.address}:${addr.port}`;
}

/**
 * The plugin, wrapped with `fastify-plugin` so that its decorators reach the
 * instance it is registered on.
 */
export const gossipConnect = fp(plugin, { fastify: "5.x", name: "gossip-connect" });
export default gossipConnect;
