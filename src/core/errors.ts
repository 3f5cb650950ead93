/**
 * The one error type of gossip-connect. Every failure the library reports,
 * whatever layer it comes from, is a {@link GossipError} carrying an
 * {@link ErrorCode}; callers match on `code`, never on the message text.
 *
 * Messages of the codes Fabric reports to its callers keep Fabric's text
 * ("timed out", "comm is stopping", ...), because those texts end up in
 * {@link AggregatedSendResult} summaries that operators grep for.
 */

/**
 * Why an operation failed. String values, so that they read well in logs and
 * serve as metric label values.
 */
export enum ErrorCode {
  /** The comm (or its connection store) is stopping or stopped. */
  Stopping = "stopping",
  /** The connection closed before the operation completed. */
  Closed = "closed",
  /** TCP connect failed: refused, unreachable, unknown host. */
  DialFailed = "dial_failed",
  /** The dial did not complete within `dialTimeoutMs`. */
  DialTimeout = "dial_timeout",
  /** The TLS handshake failed (untrusted server certificate, name mismatch, alert). */
  TlsFailed = "tls_failed",
  /** The Ping that follows a dial failed or timed out (`connTimeoutMs`). */
  PingFailed = "ping_failed",
  /** TLS is on but the remote presented no certificate; nothing was sent to it. */
  NoTlsCertificate = "no_tls_certificate",
  /** The remote's ConnEstablish did not arrive within `connTimeoutMs`. */
  HandshakeTimeout = "handshake_timeout",
  /** The first message on a stream was not a ConnEstablish. */
  UnexpectedMessage = "unexpected_message",
  /** The ConnEstablish carried no PKI-ID. */
  MissingPkiId = "missing_pki_id",
  /** The claimed PKI-ID is not the PKI-ID of the claimed identity. */
  PkiIdMismatch = "pki_id_mismatch",
  /** The identity is malformed, expired, or not issued by a trusted CA of its MSP. */
  InvalidIdentity = "invalid_identity",
  /** The signature is missing, malformed, high-S, or does not verify. */
  BadSignature = "bad_signature",
  /** The TLS certificate hash in the handshake is not the certificate seen on the connection. */
  CertHashMismatch = "cert_hash_mismatch",
  /** We dialed an expected PKI-ID and another organization's peer answered. */
  UnexpectedPeer = "unexpected_peer",
  /** An Envelope's payload is not a GossipMessage. */
  MalformedMessage = "malformed_message",
  /** The transport framing is invalid (bad length prefix, truncated frame, bad compression flag). */
  MalformedFrame = "malformed_frame",
  /** A message exceeds the configured maximum size. */
  MessageTooLarge = "message_too_large",
  /** A send buffer was full. */
  Overflow = "overflow",
  /** No acknowledgement arrived in time (`sendWithAck`). */
  AckTimeout = "ack_timeout",
  /** The remote acknowledged with an error text. */
  Nack = "nack",
  /** A limit on unauthenticated streams, handshake rate or connections per peer refused the stream. */
  RateLimited = "rate_limited",
  /** The remote cancelled the stream or the connection broke. */
  Canceled = "canceled",
  /** The remote ended the stream with an error status. */
  Remote = "remote",
  /** A bug or an unexpected platform error. */
  Internal = "internal",
  /** A message's tag is not the one its content requires (Fabric's tag legality rules). */
  IllegalTag = "illegal_tag",
  /** A message is not newer than one already seen from its origin (replayed or older timestamp). */
  StaleMessage = "stale_message",
  /** No identity could be obtained for the PKI-ID a message claims (Fabric's "Don't have certificate"). */
  UnknownIdentity = "unknown_identity",
  /** A message claims to come from a PKI-ID other than the one authenticated on its connection. */
  SenderMismatch = "sender_mismatch",
  /** A peer's message claims our own PKI-ID. */
  OwnPkiId = "own_pki_id",
  /** The request is not allowed for this requester (e.g. the disclosure policy forbids answering it). */
  Forbidden = "forbidden",
}

/** Codes that mean "the remote failed to authenticate" (counted as handshake refusals). */
export const authenticationCodes: ReadonlySet<ErrorCode> = new Set([
  ErrorCode.NoTlsCertificate,
  ErrorCode.HandshakeTimeout,
  ErrorCode.UnexpectedMessage,
  ErrorCode.MissingPkiId,
  ErrorCode.PkiIdMismatch,
  ErrorCode.InvalidIdentity,
  ErrorCode.BadSignature,
  ErrorCode.CertHashMismatch,
  ErrorCode.UnexpectedPeer,
]);

const errorName = "GossipError";

/**
 * An error with a {@link ErrorCode}. `message` is the bare text (no code
 * prefix) so that Fabric-compatible texts survive unchanged; `cause` keeps the
 * underlying platform error for logs and never goes on the wire.
 */
export class GossipError extends Error {
  override readonly name = errorName;
  /** Why the operation failed. */
  readonly code: ErrorCode;
  /**
   * The code the remote gave for ending the stream, when the error came from
   * the remote and its transport carries one (`code` then says what that
   * means for us; see {@link remoteEndError}). The in-memory transport always
   * carries it; the gRPC transports carry it between gossip-connect peers (a
   * `gossip-error-code` trailer) but not from peers that send only a gRPC
   * status, such as Fabric's: then it is undefined and the transport's own
   * status is in `cause`. Undefined for local failures.
   */
  readonly remoteCode: ErrorCode | undefined;

  constructor(code: ErrorCode, message: string, options?: { cause?: unknown; remoteCode?: ErrorCode | undefined }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.remoteCode = options?.remoteCode;
  }

  /**
   * Normalizes any thrown value: a GossipError is returned as is, anything
   * else is wrapped with `code` and keeps the original as `cause`.
   */
  static from(reason: unknown, code: ErrorCode = ErrorCode.Internal): GossipError {
    if (isGossipError(reason)) {
      return reason;
    }
    if (reason instanceof Error) {
      return new GossipError(code, reason.message, { cause: reason });
    }
    return new GossipError(code, String(reason), { cause: reason });
  }

  /** `instanceof` that also works across duplicate copies of this module. */
  static override [Symbol.hasInstance](v: unknown): boolean {
    return isGossipError(v);
  }
}

/**
 * What a stream's end means for us when the remote ended it with `remoteCode`:
 * the remote going away (`Stopping`, a dial of its failing) is `Closed` for
 * us, its timeouts are `HandshakeTimeout`, its limits are `RateLimited`, a
 * cancel is `Canceled`; any refusal of what we sent (authentication, bad
 * messages, a nack) is `Remote`.
 */
const meaningOfRemoteCode: Partial<Record<ErrorCode, ErrorCode>> = {
  [ErrorCode.Canceled]: ErrorCode.Canceled,
  [ErrorCode.Stopping]: ErrorCode.Closed,
  [ErrorCode.Closed]: ErrorCode.Closed,
  [ErrorCode.DialFailed]: ErrorCode.Closed,
  [ErrorCode.TlsFailed]: ErrorCode.Closed,
  [ErrorCode.PingFailed]: ErrorCode.Closed,
  [ErrorCode.DialTimeout]: ErrorCode.HandshakeTimeout,
  [ErrorCode.HandshakeTimeout]: ErrorCode.HandshakeTimeout,
  [ErrorCode.AckTimeout]: ErrorCode.HandshakeTimeout,
  [ErrorCode.MessageTooLarge]: ErrorCode.RateLimited,
  [ErrorCode.Overflow]: ErrorCode.RateLimited,
  [ErrorCode.RateLimited]: ErrorCode.RateLimited,
};

/** The code a reader sees when the remote ended the stream with `remoteCode` (see {@link remoteEndError}). */
export function meaningOfRemote(remoteCode: ErrorCode): ErrorCode {
  return meaningOfRemoteCode[remoteCode] ?? ErrorCode.Remote;
}

/**
 * The error a stream's reader ends with when the remote ended the stream with
 * an error of `remoteCode`: `code` is {@link meaningOfRemote}, `remoteCode`
 * the remote's. Every transport reports a remote's refusal through this, so
 * that the same refusal reads the same on each.
 */
export function remoteEndError(remoteCode: ErrorCode, message: string, cause?: unknown): GossipError {
  return new GossipError(meaningOfRemote(remoteCode), message, { remoteCode, cause });
}

/** True for an {@link ErrorCode} value (a code that came over the wire, say). */
export function isErrorCode(v: unknown): v is ErrorCode {
  return typeof v === "string" && errorCodes.has(v);
}

const errorCodes: ReadonlySet<string> = new Set(Object.values(ErrorCode));

/** True for a {@link GossipError}, also one from another copy of this module. */
export function isGossipError(v: unknown): v is GossipError {
  return v instanceof Error && v.name === errorName && isErrorCode((v as { code?: unknown }).code);
}
