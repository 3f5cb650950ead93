/**
 * Every default of gossip-connect, in one place. Values mirror Hyperledger
 * Fabric's gossip comm (code defaults of `gossip/comm` and `core.yaml`);
 * where we deviate, the option says why.
 */

/** What happens when a non-blocking `send` finds a connection's send buffer full. */
export type OverflowPolicy =
  /** Drop the message and count it in `gossip_comm_overflow_count` (Fabric since v1.0). */
  | "drop"
  /** Treat the peer as unresponsive: emit presumed-dead and close the connection (the seed walkthrough; Fabric before FAB-5153). */
  | "disconnect"
  /**
   * Wait for room; `send()` returns a promise that settles when every peer
   * took the message. Await it: at most `maxBlockedSends` sends wait per
   * peer, and a send beyond that is dropped at once and counted in
   * `gossip_comm_overflow_count`, as "drop" does (a caller that fires sends
   * without awaiting them would otherwise queue without bound).
   */
  | "block";

/**
 * Options of a Comm. Every field is optional. (The HTTP/2 transport's own
 * options, keepalive and settings, are `Http2Options` in src/grpc/config.ts;
 * the plugin and the dialer take both.)
 */
export interface CommOptions {
  /**
   * Time allowed for a connection to a peer (on the socket transports: TCP,
   * TLS and the HTTP/2 preface).
   * @default 3000 (Fabric `peer.gossip.dialTimeout`)
   */
  dialTimeoutMs?: number;
  /**
   * Time allowed for the Ping that follows a dial and for reading the remote's
   * handshake message.
   * @default 2000 (Fabric `peer.gossip.connTimeout`)
   */
  connTimeoutMs?: number;
  /**
   * Deadline of the whole stream opened by `handshake()` (the deep probe).
   * @default 10000 (Fabric's hard-coded `handshakeTimeout`)
   */
  handshakeTimeoutMs?: number;
  /**
   * Messages a connection queues for writing.
   * @default 20 (Fabric `peer.gossip.sendBuffSize` code default; core.yaml ships 200)
   */
  sendBuffSize?: number;
  /**
   * Received envelopes a connection decodes ahead of delivery before it stops
   * reading from the transport (its flow control then holds the sender).
   * @default 20 (Fabric `peer.gossip.recvBuffSize`)
   */
  recvBuffSize?: number;
  /**
   * Messages a subscription returned by `accept()` buffers before delivery to
   * it blocks.
   * @default 20 (Fabric: demux channel 10 plus Accept channel 10)
   */
  acceptBuffSize?: number;
  /**
   * Largest message accepted or sent, in bytes.
   * @default 104857600 (100 MiB, Fabric `peer.maxRecvMsgSize` / `peer.maxSendMsgSize`)
   */
  maxMessageBytes?: number;
  /**
   * Policy of a non-blocking `send` on a full send buffer.
   * @default "drop" (Fabric's behaviour)
   */
  overflowPolicy?: OverflowPolicy;
  /**
   * With `overflowPolicy: "block"`: sends that may wait for room at once per
   * peer (its connection's send buffer, or the queue in front of its dial).
   * A send beyond that is dropped at once and counted as an overflow
   * (`gossip_comm_overflow_count`), so a peer's queue holds at most
   * `sendBuffSize + maxBlockedSends` messages whatever the caller does.
   * Messages already queued or waiting are never dropped for it, and keep
   * their order.
   * @default 200 (no Fabric key: Fabric never blocks, it drops on a full buffer)
   */
  maxBlockedSends?: number;
  /**
   * Events (presumed-dead, identity switch) an event subscriber buffers; the
   * oldest is dropped and counted when a slow subscriber falls further behind.
   * @default 100 (Fabric's PresumedDead channel)
   */
  eventBuffSize?: number;
  /**
   * Time `stop()` (and the Fastify `onClose` hook) gives connections to flush
   * their send buffers before they are cut.
   * @default 2000
   */
  drainTimeoutMs?: number;
  /**
   * Inbound streams allowed to be in the handshake at once, over all remotes;
   * more are refused with RESOURCE_EXHAUSTED.
   * @default 256
   */
  maxUnauthenticatedStreams?: number;
  /**
   * Inbound streams one remote IP address may have in the handshake at once,
   * so that a few addresses cannot take every `maxUnauthenticatedStreams`
   * slot; more are refused with RESOURCE_EXHAUSTED.
   * @default 32
   */
  maxUnauthenticatedStreamsPerAddress?: number;
  /**
   * Handshakes accepted per remote IP address per second; more are refused
   * with RESOURCE_EXHAUSTED.
   * @default 50
   */
  maxHandshakesPerSecondPerAddress?: number;
  /**
   * Connections (open plus closing) kept for one remote PKI-ID; a newer one
   * above the limit is refused until older ones finish closing.
   * @default 4
   */
  maxConnectionsPerPeer?: number;
}

/** {@link CommOptions} with every default applied. */
export type CommConfig = Readonly<Required<CommOptions>>;

/** The defaults of {@link CommOptions}. */
export const defaultCommConfig: CommConfig = Object.freeze({
  dialTimeoutMs: 3000,
  connTimeoutMs: 2000,
  handshakeTimeoutMs: 10_000,
  sendBuffSize: 20,
  recvBuffSize: 20,
  acceptBuffSize: 20,
  maxMessageBytes: 100 * 1024 * 1024,
  overflowPolicy: "drop",
  maxBlockedSends: 200,
  eventBuffSize: 100,
  drainTimeoutMs: 2000,
  maxUnauthenticatedStreams: 256,
  maxUnauthenticatedStreamsPerAddress: 32,
  maxHandshakesPerSecondPerAddress: 50,
  maxConnectionsPerPeer: 4,
});

const positiveIntegerKeys = [
  "dialTimeoutMs",
  "connTimeoutMs",
  "handshakeTimeoutMs",
  "sendBuffSize",
  "recvBuffSize",
  "acceptBuffSize",
  "maxMessageBytes",
  "maxBlockedSends",
  "eventBuffSize",
  "drainTimeoutMs",
  "maxUnauthenticatedStreams",
  "maxUnauthenticatedStreamsPerAddress",
  "maxHandshakesPerSecondPerAddress",
  "maxConnectionsPerPeer",
] as const satisfies readonly (keyof CommOptions)[];

/**
 * Applies defaults and validates. Throws a `TypeError` naming the option for
 * a value that is not a positive integer (Fabric treats 0 as "unset"; so do
 * we: 0 and `undefined` take the default).
 */
export function resolveCommConfig(options: CommOptions = {}): CommConfig {
  const out: Record<string, unknown> = positiveIntegerOptions(defaultCommConfig, options, positiveIntegerKeys);
  if (options.maxMessageBytes !== undefined && options.maxMessageBytes > 0xffffffff) {
    throw new TypeError("gossip-connect: option maxMessageBytes must be at most 4294967295");
  }
  if (options.overflowPolicy !== undefined) {
    if (!["drop", "disconnect", "block"].includes(options.overflowPolicy)) {
      throw new TypeError(
        `gossip-connect: option overflowPolicy must be "drop", "disconnect" or "block", got ${String(options.overflowPolicy)}`,
      );
    }
    out.overflowPolicy = options.overflowPolicy;
  }
  return Object.freeze(out) as CommConfig;
}

/**
 * `defaults` with the positive integers of `options` under `keys` applied
 * (0 and `undefined` keep the default); throws a `TypeError` naming the
 * option for anything else. Shared with the transports' option modules.
 */
export function positiveIntegerOptions<T extends object>(defaults: T, options: object, keys: readonly (keyof T & string)[]): T {
  const out = { ...defaults } as Record<string, unknown>;
  for (const key of keys) {
    const v = (options as Record<string, unknown>)[key];
    if (v === undefined || v === 0) continue;
    if (typeof v !== "number" || !Number.isSafeInteger(v) || v < 0) {
      throw new TypeError(`gossip-connect: option ${key} must be a positive integer, got ${String(v)}`);
    }
    out[key] = v;
  }
  return out as T;
}
