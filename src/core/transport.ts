/**
 * The contract between core and the transports that carry it. The server
 * plugin adapts each inbound GossipStream to a {@link WireStream}; the client
 * dialer produces one per outbound connection. Core never sees HTTP/2,
 * Fastify or Connect.
 */
import type { Envelope } from "../gen/gossip/message_pb.js";
import type { GossipError } from "./errors.js";

/**
 * One GossipStream, either side.
 *
 * Life cycle: envelopes flow both ways until one side ends. `end()` half-closes
 * our side after queued writes (the remote sees the end of its incoming
 * iterable); `abort()` cuts the stream at once. After the remote ends its side
 * and we end ours, or after an abort, the stream is closed and `closed` settles.
 *
 * Every transport keeps this contract the same way; test/transport/compliance.ts
 * checks it on each (ordering, batches, half-close both ways, aborts and what
 * the remote sees of them, writes after close, flow control, deadlines,
 * addresses and certificate hashes, dial failures).
 */
export interface WireStream {
  /** The remote's transport address, `host:port` (for inbound streams an ephemeral port). */
  readonly remoteAddress: string;
  /** True when the connection is TLS. */
  readonly tls: boolean;
  /**
   * SHA-256 of the DER leaf certificate the remote presented on this
   * connection; undefined without TLS or when it presented none.
   */
  readonly remoteCertHash: Uint8Array | undefined;
  /**
   * SHA-256 of our own DER leaf on this connection: our client certificate
   * when we dialed, our server certificate when we accepted; undefined
   * without TLS or without a local certificate.
   */
  readonly localCertHash: Uint8Array | undefined;
  /**
   * Envelopes from the remote, in order, in batches (all that arrived
   * together). Iteration ends when the remote half-closes and throws a
   * {@link GossipError} when the stream fails. Not pulling holds the remote
   * back through flow control; at most about `recvBuffSize` envelopes are
   * decoded ahead. May be iterated once.
   */
  readonly incoming: AsyncIterable<readonly Envelope[]>;
  /**
   * Writes serialized Envelopes, in order, in as few transport writes as the
   * transport allows. Resolves when the transport took them (its flow control
   * may delay that); rejects with a {@link GossipError} when the stream is
   * gone. Calls must not overlap. Returns {@link writeTaken} itself when the
   * transport took them at once, so that a writer may go on in the same task.
   */
  write(envelopes: readonly Uint8Array[]): Promise<void>;
  /** Half-closes our side after the writes already made. Idempotent. */
  end(): void;
  /**
   * Cuts the stream now. On an inbound (server) stream, `error` reaches the
   * client's reader as a refusal carrying its code (`remoteCode`, see
   * `remoteEndError`), and no error as a clean end. On an outbound (client)
   * stream, the server's reader sees `Canceled` whatever the error, and the
   * connection is closed too. Our own reader then fails with `error`, or
   * `Canceled`. Idempotent.
   */
  abort(error?: GossipError): void;
  /** Settles (never rejects) when the stream is fully closed. */
  readonly closed: Promise<void>;
  /**
   * Optional. Registers `listener` to run once when the transport carrying
   * this stream shuts down (its server closing while the comm goes on): the
   * owner then closes the stream gracefully, as the remote would otherwise
   * see it cut. Returns the unsubscribe. (A stream read through
   * {@link WireStream.readBy} tells its reader's `onShutdown` instead.)
   */
  onShutdown?(listener: () => void): () => void;
  /**
   * Optional. Pushes the rest of the incoming envelopes to `reader` instead
   * of `incoming`: the same batches in the same order, then the same end or
   * failure, with the same flow control (a batch whose delivery the reader
   * holds holds the remote back as an unpulled iterator would). An idle
   * stream read this way keeps no pending promise. If `incoming` was
   * iterated, it must have no `next()` pending and is not used again.
   * The reader is first called in a later microtask, never within `readBy`.
   * Once only. Consumers fall back to `incoming` where a transport lacks it.
   */
  readBy?(reader: WireReader): void;
}

/**
 * What a {@link WireStream} pushes its incoming envelopes to (see
 * {@link WireStream.readBy}). After `onEnd` or `onError` nothing more is
 * called but `onShutdown`.
 */
export interface WireReader {
  /**
   * A batch of envelopes (never empty), in order. A returned promise holds
   * back the next batch, the end and the failure until it settles (it must
   * not reject); undefined takes the next as it comes.
   */
  onBatch(envelopes: readonly Envelope[]): Promise<void> | undefined;
  /** The remote half-closed its side: no more envelopes. */
  onEnd(): void;
  /** Reading failed, as `incoming`'s iteration would have thrown `error`. */
  onError(error: GossipError): void;
  /**
   * Optional. The transport carrying the stream shuts down (as
   * {@link WireStream.onShutdown}'s listener); without it the transport
   * cuts the stream.
   */
  onShutdown?(): void;
}

/**
 * The (resolved) promise a {@link WireStream.write} returns when the transport
 * took the envelopes at once. Any other promise means "wait for it".
 */
export const writeTaken: Promise<void> = Promise.resolve();

/** Opens outbound streams; implemented by the client dialer. */
export interface Dialer {
  /**
   * Connects to `endpoint` within `dialTimeoutMs`, checks it with a Ping
   * within `connTimeoutMs`, and opens a GossipStream (with a deadline when
   * `streamTimeoutMs` is given). Rejects with a {@link GossipError}
   * (`DialFailed`, `DialTimeout`, `TlsFailed`, `PingFailed`, `Stopping`).
   */
  openStream(endpoint: string, options: { signal: AbortSignal; streamTimeoutMs?: number }): Promise<WireStream>;
  /**
   * Fabric's shallow probe: a fresh connection to `endpoint` and one Ping
   * within `connTimeoutMs`, then the connection is closed.
   */
  ping(endpoint: string, options: { signal: AbortSignal }): Promise<void>;
}
