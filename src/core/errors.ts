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
  /** A request's header list exceeds `maxHeaderListBytes`. */
  HeadersTooLarge = "headers_too_large",
  /** A client reset streams faster than `maxStreamResetsPerSecond` (HTTP/2 rapid reset); its connection was closed. */
  TooManyResets = "too_many_resets",
  /** The remote cancelled the stream or the connection broke. */
  Canceled = "canceled",
  /** The remote ended the stream with an error status. */
  Remote = "remote",
  /** A bug or an unexpected platform error. */
  Internal = "internal",
  /** A GossipMessage's tag is not the one Fabric's gossip layer requires for its content (IsTagLegal). */
  IllegalTag = "illegal_tag",
}

/**
 * gRPC status codes (a subset), used when a {@link GossipError} crosses the
 * wire as the status of a refused stream.
 */
export const GrpcStatus = {
  Ok: 0,
  Canceled: 1,
  Unknown: 2,
  InvalidArgument: 3,
  DeadlineExceeded: 4,
  NotFound: 5,
  PermissionDenied: 7,
  ResourceExhausted: 8,
  FailedPrecondition: 9,
  Aborted: 10,
  Unimplemented: 12,
  Internal: 13,
  Unavailable: 14,
  Unauthenticated: 16,
} as const;

/** A gRPC status code number. */
export type GrpcStatusCode = (typeof GrpcStatus)[keyof typeof GrpcStatus];

const grpcStatusOf: Record<ErrorCode, GrpcStatusCode> = {
  [ErrorCode.Stopping]: GrpcStatus.Unavailable,
  [ErrorCode.Closed]: GrpcStatus.Unavailable,
  [ErrorCode.DialFailed]: GrpcStatus.Unavailable,
  [ErrorCode.DialTimeout]: GrpcStatus.DeadlineExceeded,
  [ErrorCode.TlsFailed]: GrpcStatus.Unavailable,
  [ErrorCode.PingFailed]: GrpcStatus.Unavailable,
  [ErrorCode.NoTlsCertificate]: GrpcStatus.Unauthenticated,
  [ErrorCode.HandshakeTimeout]: GrpcStatus.DeadlineExceeded,
  [ErrorCode.UnexpectedMessage]: GrpcStatus.InvalidArgument,
  [ErrorCode.MissingPkiId]: GrpcStatus.Unauthenticated,
  [ErrorCode.PkiIdMismatch]: GrpcStatus.Unauthenticated,
  [ErrorCode.InvalidIdentity]: GrpcStatus.Unauthenticated,
  [ErrorCode.BadSignature]: GrpcStatus.Unauthenticated,
  [ErrorCode.CertHashMismatch]: GrpcStatus.Unauthenticated,
  [ErrorCode.UnexpectedPeer]: GrpcStatus.Unauthenticated,
  [ErrorCode.MalformedMessage]: GrpcStatus.InvalidArgument,
  [ErrorCode.MalformedFrame]: GrpcStatus.Internal,
  [ErrorCode.MessageTooLarge]: GrpcStatus.ResourceExhausted,
  [ErrorCode.Overflow]: GrpcStatus.ResourceExhausted,
  [ErrorCode.AckTimeout]: GrpcStatus.DeadlineExceeded,
  [ErrorCode.Nack]: GrpcStatus.Aborted,
  [ErrorCode.RateLimited]: GrpcStatus.ResourceExhausted,
  [ErrorCode.HeadersTooLarge]: GrpcStatus.ResourceExhausted,
  [ErrorCode.TooManyResets]: GrpcStatus.ResourceExhausted,
  [ErrorCode.Canceled]: GrpcStatus.Canceled,
  [ErrorCode.Remote]: GrpcStatus.Unknown,
  [ErrorCode.Internal]: GrpcStatus.Internal,
  [ErrorCode.IllegalTag]: GrpcStatus.InvalidArgument,
};

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
   * The gRPC status the remote ended the stream or call with, when the error
   * came from the remote (`code` then says what it means for us).
   */
  readonly remoteStatus: GrpcStatusCode | undefined;

  constructor(code: ErrorCode, message: string, options?: { cause?: unknown; remoteStatus?: GrpcStatusCode }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.remoteStatus = options?.remoteStatus;
  }

  /** The gRPC status this error maps to when it ends a stream. */
  get grpcStatus(): GrpcStatusCode {
    return grpcStatusOf[this.code];
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

/** True for a {@link GossipError}, also one from another copy of this module. */
export function isGossipError(v: unknown): v is GossipError {
  return (
    v instanceof Error &&
    v.name === errorName &&
    typeof (v as { code?: unknown }).code === "string" &&
    (Object.values(ErrorCode) as string[]).includes((v as unknown as { code: string }).code)
  );
}
