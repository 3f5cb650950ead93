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
