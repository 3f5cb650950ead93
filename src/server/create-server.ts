import type * as http2 from "node:http2";
import fastify, {
  type FastifyBaseLogger,
  type FastifyHttp2Options,
  type FastifyHttp2SecureOptions,
  type FastifyInstance,
  type FastifyServerOptions,
  LogController,
} from "fastify";
import { resolveHttp2Config } from "../grpc/config.js";
import { headerListBackstop } from "./http2-sessions.js";
import { type GossipPluginOptions, gossipConnect } from "./plugin.js";

/** TLS of the server. Without it the server speaks cleartext HTTP/2 (h2c, prior knowledge). */
export interface ServerTlsOptions {
  /** Our TLS server certificate (PEM); its hash is what we put in handshakes we answer. */
  cert: string;
  /** Its key (PEM). */
  key: string;
  /** CA certificates (PEM) for client certificates. */
  ca?: string | readonly string[];
  /**
   * Require a client certificate chaining to `ca` at the TLS layer. By
   * default, as Fabric's `peer.tls.clientAuthRequired: false`, one is
   * requested but not required; the gossip handshake then refuses a TLS
   * client without one before sending it anything.
   * @default false
   */
  requireClientCert?: boolean;
}

/** Options of {@link createGossipServer}: the plugin's, plus how to build the Fastify instance. */
export interface GossipServerOptions extends GossipPluginOptions {
  /** TLS; cleartext h2c when absent. */
  tls?: ServerTlsOptions;
  /** Fastify's `logger` option (pino). @default false */
  fastifyLogger?: FastifyServerOptions["logger"];
  /** A pino logger instance for Fastify (`loggerInstance`). */
  loggerInstance?: FastifyBaseLogger;
}

/** A Fastify instance serving HTTP/2, cleartext or TLS. */
export type GossipFastifyInstance = FastifyInstance<http2.Http2Server | http2.Http2SecureServer>;

/**
 * A Fastify HTTP/2 instance with the gossip-connect plugin registered, set up
 * as a gossip peer wants it: HTTP/2 settings (`maxConcurrentStreams`, 1 MiB
 * windows) announced in the first SETTINGS frame, no idle-session timeout
 * (the PING watchdog finds dead peers instead), TLS requesting client
 * certificates, no log line per request (a Ping flood must not flood the
 * log). Call `listen()` on it.
 */
export async function createGossipServer(options: GossipServerOptions): Promise<GossipFastifyInstance> {
  const { tls, fastifyLogger, loggerInstance, ...pluginOptions } = options;
  const config = resolveHttp2Config(options.options);
  const settings: http2.Settings = {
    maxConcurrentStreams: config.maxConcurrentStreams,
    initialWindowSize: config.initialWindowBytes,
    maxHeaderListSize: headerListBackstop(config),
    enablePush: false,
  };
  const common = {
    http2: true as const,
    // Fastify's 72 s idle-session timeout would send GOAWAY to quiet gossip peers.
    http2SessionTimeout: 0,
    // Two info lines per request would let a Ping flood flood the log; the
    // comm logs per-peer incidents itself, rate-limited. Apps that want
    // request logs register the plugin on their own Fastify instance.
    logController: new LogController({ disableRequestLogging: true }),
    ...(loggerInstance ? { loggerInstance } : { logger: fastifyLogger ?? false }),
  };
  const app: GossipFastifyInstance = tls
    ? (fastify<http2.Http2SecureServer>({
        ...common,
        https: {
          key: tls.key,
          cert: tls.cert,
          ca: tls.ca === undefined ? undefined : typeof tls.ca === "string" ? [tls.ca] : [...tls.ca],
          requestCert: true,
          rejectUnauthorized: tls.requireClientCert ?? false,
          minVersion: "TLSv1.2",
          settings,
        },
      } as FastifyHttp2SecureOptions<http2.Http2SecureServer>) as unknown as GossipFastifyInstance)
    : (fastify<http2.Http2Server>({
        ...common,
        // Fastify hands `http` to http2.createServer for h2c.
        http: { settings },
      } as unknown as FastifyHttp2Options<http2.Http2Server>) as unknown as GossipFastifyInstance);
  await app.register(gossipConnect, pluginOptions);
  return app;
}
