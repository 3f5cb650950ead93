/**
 * gRPC status in headers and trailers: header names, `grpc-message`
 * percent-encoding, and the one mapping between {@link ErrorCode}s and gRPC
 * statuses (both ways), used by the client and by both server paths.
 *
 * Between gossip-connect peers the {@link ErrorCode} of a refusal also
 * travels, in the `gossip-error-code` trailer, so that the reader sees the
 * remote's code exactly ({@link GossipError.remoteCode}), as over the
 * in-memory transport. From a remote that sends only a gRPC status (Fabric,
 * grpc-js) the reader's code comes from the status, and the two agree: for
 * every code, `codeOfGrpcStatus(grpcStatusOf(code))` is
 * `meaningOfRemote(code)` (tested).
 */
import { ErrorCode, GossipError, isErrorCode, remoteEndError } from "../core/errors.js";

/** gRPC status codes (a subset). Connect's `Code` has the same numbers. */
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

/** Content type our gRPC responses carry. */
export const grpcContentType = "application/grpc+proto";

/** The trailer (Connect: response metadata) that carries the {@link ErrorCode} of a refusal. */
export const errorCodeTrailer = "gossip-error-code";

const statusOfCode: Record<ErrorCode, GrpcStatusCode> = {
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
  [ErrorCode.Canceled]: GrpcStatus.Canceled,
  [ErrorCode.Remote]: GrpcStatus.Unknown,
  [ErrorCode.Internal]: GrpcStatus.Internal,
  [ErrorCode.IllegalTag]: GrpcStatus.InvalidArgument,
  [ErrorCode.StaleMessage]: GrpcStatus.InvalidArgument,
  [ErrorCode.UnknownIdentity]: GrpcStatus.Unauthenticated,
  [ErrorCode.SenderMismatch]: GrpcStatus.PermissionDenied,
  [ErrorCode.OwnPkiId]: GrpcStatus.InvalidArgument,
  [ErrorCode.Forbidden]: GrpcStatus.PermissionDenied,
};

/** The gRPC status a stream (or call) refused with `code` ends with. */
export function grpcStatusOf(code: ErrorCode): GrpcStatusCode {
  return statusOfCode[code];
}

const codeOfStatus: Partial<Record<number, ErrorCode>> = {
  [GrpcStatus.Canceled]: ErrorCode.Canceled,
  [GrpcStatus.DeadlineExceeded]: ErrorCode.HandshakeTimeout,
  [GrpcStatus.ResourceExhausted]: ErrorCode.RateLimited,
  [GrpcStatus.Unavailable]: ErrorCode.Closed,
};

/** What a non-OK status from a remote that sent no `gossip-error-code` means for us. */
export function codeOfGrpcStatus(status: number): ErrorCode {
  return codeOfStatus[status] ?? ErrorCode.Remote;
}

/** The gRPC status a remote ended a stream or call with; the `cause` of the {@link GossipError} that reports it. */
export class GrpcStatusError extends Error {
  override readonly name = "GrpcStatusError";
  constructor(
    /** The status number (`grpc-status`). */
    readonly status: number,
    /** The decoded `grpc-message`. */
    readonly grpcMessage: string,
  ) {
    super(`gRPC status ${status}${grpcMessage === "" ? "" : `: ${grpcMessage}`}`);
  }
}

/**
 * The error for a non-OK gRPC status received from a remote, with the
 * remote's `gossip-error-code` when it sent one (see the module doc).
 */
export function errorFromGrpcStatus(status: number, message: string, errorCode?: unknown): GossipError {
  const cause = new GrpcStatusError(status, message);
  const text = `remote ended the stream with gRPC status ${status}: ${message}`;
  if (isErrorCode(errorCode)) return remoteEndError(errorCode, text, cause);
  return new GossipError(codeOfGrpcStatus(status), text, { cause });
}

/** True for `application/grpc` and `application/grpc+proto` (not gRPC-web, not JSON). */
export function isGrpcProtoContentType(contentType: string | undefined): boolean {
  if (contentType === undefined) return false;
  // The usual values, as gRPC clients and servers send them, without the
  // split/trim/lowercase copies: both ends of every Ping ask (W4).
  if (contentType === "application/grpc" || contentType === "application/grpc+proto") return true;
  const ct = contentType.split(";")[0]?.trim().toLowerCase();
  return ct === "application/grpc" || ct === "application/grpc+proto";
}

/** Percent-encodes a status message as the gRPC spec asks (printable ASCII except `%` stays). */
export function encodeGrpcMessage(message: string): string {
  const bytes = Buffer.from(message, "utf8");
  let out = "";
  for (const b of bytes) {
    out += b >= 0x20 && b <= 0x7e && b !== 0x25 ? String.fromCharCode(b) : `%${b.toString(16).toUpperCase().padStart(2, "0")}`;
  }
  return out;
}

/** Decodes a percent-encoded `grpc-message`, tolerating malformed escapes. */
export function decodeGrpcMessage(value: string): string {
  try {
    return decodeURIComponent(value);
  } catch {
    return value;
  }
}

/** Trailers (or trailers-only headers) for `error` (its status, message and code), or OK when undefined. */
export function statusTrailers(error: GossipError | undefined): Record<string, string> {
  if (!error) return { "grpc-status": "0" };
  return {
    "grpc-status": String(grpcStatusOf(error.code)),
    "grpc-message": encodeGrpcMessage(error.message),
    [errorCodeTrailer]: error.code,
  };
}

/** Formats milliseconds as a `grpc-timeout` header value. */
export function formatGrpcTimeout(ms: number): string {
  return `${Math.max(1, Math.ceil(ms))}m`;
}
