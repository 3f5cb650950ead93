/**
 * gRPC status in headers and trailers: header names, `grpc-message`
 * percent-encoding, mapping between {@link GossipError} and gRPC statuses.
 */
import { ErrorCode, GossipError, GrpcStatus, type GrpcStatusCode } from "../core/errors.js";

/** Content type our gRPC responses carry. */
export const grpcContentType = "application/grpc+proto";

/** True for `application/grpc` and `application/grpc+proto` (not gRPC-web, not JSON). */
export function isGrpcProtoContentType(contentType: string | undefined): boolean {
  if (contentType === undefined) return false;
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

const codeOfStatus: Partial<Record<number, ErrorCode>> = {
  [GrpcStatus.Canceled]: ErrorCode.Canceled,
  [GrpcStatus.DeadlineExceeded]: ErrorCode.HandshakeTimeout,
  [GrpcStatus.ResourceExhausted]: ErrorCode.RateLimited,
  [GrpcStatus.Unavailable]: ErrorCode.Closed,
  [GrpcStatus.Unauthenticated]: ErrorCode.Remote,
};

/** The error for a non-OK gRPC status received from a remote. */
export function errorFromGrpcStatus(status: number, message: string): GossipError {
  const code = codeOfStatus[status] ?? ErrorCode.Remote;
  return new GossipError(code, `remote ended the stream with gRPC status ${status}: ${message}`, {
    remoteStatus: status as GrpcStatusCode,
  });
}

/** Trailers (or trailers-only headers) for `error`, or OK when undefined. */
export function statusTrailers(error: GossipError | undefined): Record<string, string> {
  if (!error) return { "grpc-status": "0" };
  const status: GrpcStatusCode = error.grpcStatus;
  return { "grpc-status": String(status), "grpc-message": encodeGrpcMessage(error.message) };
}

/** Parses a `grpc-timeout` header value (e.g. `10S`, `500m`) into milliseconds. */
export function parseGrpcTimeout(value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const m = /^(\d{1,8})([HMSmun])$/.exec(value);
  if (!m) return undefined;
  const n = Number(m[1]);
  const unit = m[2];
  const ms: Record<string, number> = { H: 3_600_000, M: 60_000, S: 1000, m: 1, u: 0.001, n: 0.000001 };
  return n * (ms[unit as string] ?? 1);
}

/** Formats milliseconds as a `grpc-timeout` header value. */
export function formatGrpcTimeout(ms: number): string {
  return `${Math.max(1, Math.ceil(ms))}m`;
}
