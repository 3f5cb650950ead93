/**
 * Options of the HTTP/2 transport (our gRPC client and the server plugin),
 * moved out of core, which knows nothing of HTTP/2. The plugin's and the
 * dialer's `options` take {@link PeerOptions}: these beside the comm's
 * {@link CommOptions}, under the same names as before.
 */
import { type CommOptions, positiveIntegerOptions } from "../core/config.js";

/** HTTP/2 settings and keepalive of the client and the server. Every field is optional. */
export interface Http2Options {
  /**
   * Interval of HTTP/2 PINGs on outbound connections.
   * @default 60000 (Fabric `peer.keepalive.client.interval`; real peers answer
   * more frequent pings with GOAWAY `too_many_pings`)
   */
  clientKeepaliveIntervalMs?: number;
  /**
   * Time an outbound connection waits for a PING answer before it is closed.
   * @default 20000 (Fabric `peer.keepalive.client.timeout`)
   */
  clientKeepaliveTimeoutMs?: number;
  /**
   * Interval of the server's HTTP/2 PING watchdog on inbound connections.
   * @default 60000 (Fabric's server pings every 2 h; we match the client
   * interval so that a frozen peer is found in minutes, not hours)
   */
  serverKeepaliveIntervalMs?: number;
  /**
   * Time an inbound connection waits for a PING answer before it is destroyed.
   * @default 20000 (Fabric `peer.keepalive.timeout`)
   */
  serverKeepaliveTimeoutMs?: number;
  /**
   * HTTP/2 streams one connection may have open at once (server setting).
   * @default 100
   */
  maxConcurrentStreams?: number;
  /**
   * Size of a request's header list (names, values and 32 bytes per field,
   * as HTTP/2 counts it) that the server accepts on its gossip routes; a
   * larger one is refused with RESOURCE_EXHAUSTED (HTTP 431 outside gRPC).
   * Eight times this value is announced as SETTINGS_MAX_HEADER_LIST_SIZE,
   * above which Node's HTTP/2 layer resets the stream by itself.
   * @default 16384 (16 KiB; gRPC's default metadata limit is 8 KiB)
   */
  maxHeaderListBytes?: number;
  /**
   * Streams a client may reset (RST_STREAM) per second on one HTTP/2
   * connection, with a burst of as many; beyond it the connection is closed
   * with GOAWAY ENHANCE_YOUR_CALM (HTTP/2 rapid reset, CVE-2023-44487).
   * nghttp2's own limit (burst 1000, then 33/s) answers with GOAWAY but
   * leaves the socket open on Node 20.
   * @default 100
   */
  maxStreamResetsPerSecond?: number;
  /**
   * HTTP/2 stream and connection flow-control window, in bytes. Node's default
   * (64 KiB) halves throughput on long-lived gossip streams.
   * @default 1048576 (1 MiB)
   */
  initialWindowBytes?: number;
}

/** {@link Http2Options} with every default applied. */
export type Http2Config = Readonly<Required<Http2Options>>;

/** The defaults of {@link Http2Options}. */
export const defaultHttp2Config: Http2Config = Object.freeze({
  clientKeepaliveIntervalMs: 60_000,
  clientKeepaliveTimeoutMs: 20_000,
  serverKeepaliveIntervalMs: 60_000,
  serverKeepaliveTimeoutMs: 20_000,
  maxConcurrentStreams: 100,
  maxHeaderListBytes: 16 * 1024,
  maxStreamResetsPerSecond: 100,
  initialWindowBytes: 1024 * 1024,
});

/** The names of {@link Http2Options}. */
export const http2OptionKeys = Object.keys(defaultHttp2Config) as readonly (keyof Http2Options)[];

/**
 * Applies defaults and validates, as `resolveCommConfig` does (0 and
 * `undefined` take the default; anything but a positive integer throws a
 * `TypeError` naming the option). Other keys of `options` are ignored.
 */
export function resolveHttp2Config(options: Http2Options = {}): Http2Config {
  return Object.freeze(positiveIntegerOptions(defaultHttp2Config, options, http2OptionKeys));
}

/** Options of a gossip peer: its comm's and its HTTP/2 transport's. What the plugin and the dialer take as `options`. */
export interface PeerOptions extends CommOptions, Http2Options {}
