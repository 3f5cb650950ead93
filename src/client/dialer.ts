import { type Clock, systemClock } from "../core/clock.js";
import { type CommConfig, resolveCommConfig } from "../core/config.js";
import type { Dialer, WireStream } from "../core/transport.js";
import { type Http2Config, type PeerOptions, resolveHttp2Config } from "../grpc/config.js";
import { type ClientTlsOptions, GossipClient } from "./gossip-client.js";

/** Options of {@link PeerDialer}. */
export interface PeerDialerOptions {
  /** TLS for every outbound connection; cleartext (h2c) when absent. */
  tls?: ClientTlsOptions;
  /** Timeouts, limits, keepalive and HTTP/2 settings (Fabric's defaults). */
  options?: PeerOptions;
  /** Time source for dial timeouts. */
  clock?: Clock;
}

/**
 * The comm's outbound side: every stream gets its own connection, as every
 * Fabric comm connection has its own gRPC ClientConn: dial
 * (`dialTimeoutMs`), Ping (`connTimeoutMs`), then the GossipStream. Closing
 * the stream closes the connection.
 */
export class PeerDialer implements Dialer {
  private readonly config: CommConfig;
  private readonly http2: Http2Config;
  private readonly clock: Clock;

  constructor(private readonly init: PeerDialerOptions = {}) {
    this.config = resolveCommConfig(init.options);
    this.http2 = resolveHttp2Config(init.options);
    this.clock = init.clock ?? systemClock;
  }

  /** Dials `endpoint` with this dialer's TLS and limits. */
  connect(endpoint: string, signal?: AbortSignal): Promise<GossipClient> {
    return GossipClient.connect(endpoint, {
      tls: this.init.tls,
      options: { ...this.config, ...this.http2 },
      signal,
      clock: this.clock,
    });
  }

  async openStream(endpoint: string, options: { signal: AbortSignal; streamTimeoutMs?: number }): Promise<WireStream> {
    const client = await this.connect(endpoint, options.signal);
    try {
      await client.ping(this.config.connTimeoutMs, options.signal);
      return await client.openGossipStream({ ownsConnection: true, timeoutMs: options.streamTimeoutMs });
    } catch (e) {
      client.close();
      throw e;
    }
  }

  async ping(endpoint: string, options: { signal: AbortSignal }): Promise<void> {
    const client = await this.connect(endpoint, options.signal);
    try {
      await client.ping(this.config.connTimeoutMs, options.signal);
    } finally {
      client.close();
    }
  }
}
