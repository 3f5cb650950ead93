/**
 * The one place where platform errors of outbound connections (Node's
 * net/tls/http2 codes, Connect's errors, HTTP/2 resets, gRPC statuses and
 * malformed responses) become {@link GossipError}s, with the stage that
 * failed and the endpoint in the message.
 */
import * as http2 from "node:http2";
import { Code, ConnectError } from "@connectrpc/connect";
import { ErrorCode, GossipError, isGossipError } from "../core/errors.js";
import { decodeGrpcMessage, errorFromGrpcStatus, GrpcStatus, isGrpcProtoContentType } from "../grpc/status.js";

const tlsVerifyCodes = new Set([
  "UNABLE_TO_VERIFY_LEAF_SIGNATURE",
  "UNABLE_TO_GET_ISSUER_CERT",
  "UNABLE_TO_GET_ISSUER_CERT_LOCALLY",
  "DEPTH_ZERO_SELF_SIGNED_CERT",
  "SELF_SIGNED_CERT_IN_CHAIN",
  "CERT_HAS_EXPIRED",
  "CERT_NOT_YET_VALID",
  "CERT_SIGNATURE_FAILURE",
  "CERT_UNTRUSTED",
  "CERT_REJECTED",
  "HOSTNAME_MISMATCH",
  "EPROTO",
]);

const dialCodes = new Set([
  "ECONNREFUSED",
  "ENOTFOUND",
  "EAI_AGAIN",
  "EHOSTUNREACH",
  "ENETUNREACH",
  "ECONNRESET",
  "EPIPE",
  "ETIMEDOUT",
  "EADDRNOTAVAIL",
]);

/** The first `code` property along an error's `cause` chain. */
function platformCode(reason: unknown): string | undefined {
  let r: unknown = reason;
  for (let i = 0; i < 5 && r !== null && typeof r === "object"; i++) {
    const code = (r as { code?: unknown }).code;
    if (typeof code === "string") return code;
    r = (r as { cause?: unknown }).cause;
  }
  return undefined;
}

/** The innermost message along an error's `cause` chain. */
function rootMessage(reason: unknown): string {
  let r: unknown = reason;
  let msg = String(reason);
  for (let i = 0; i < 5 && r instanceof Error; i++) {
    msg = r instanceof ConnectError ? r.rawMessage : r.message;
    r = r.cause;
  }
  return msg;
}

/**
 * Maps a failure of `stage` towards `endpoint` to a {@link GossipError}:
 * refused/unreachable → `DialFailed`, certificate and TLS protocol errors →
 * `TlsFailed`, a Ping failure → `PingFailed`, an abort by the comm stopping
 * → `Stopping`. A GossipError passes through unchanged.
 */
export function toGossipError(reason: unknown, stage: "dial" | "ping" | "stream", endpoint: string): GossipError {
  if (isGossipError(reason)) return reason;
  const code = platformCode(reason);
  const detail = rootMessage(reason);
  if (code !== undefined && (tlsVerifyCodes.has(code) || code.startsWith("ERR_SSL_") || code.startsWith("ERR_TLS_"))) {
    return new GossipError(ErrorCode.TlsFailed, `TLS handshake with ${endpoint} failed: ${detail} (${code})`, { cause: reason });
  }
  if (code !== undefined && dialCodes.has(code) && stage === "dial") {
    return new GossipError(ErrorCode.DialFailed, `dial ${endpoint} failed: ${detail} (${code})`, { cause: reason });
  }
  if (stage === "ping") {
    const timeout = reason instanceof ConnectError && reason.code === Code.DeadlineExceeded;
    return new GossipError(ErrorCode.PingFailed, `ping ${endpoint} ${timeout ? "timed out" : `failed: ${detail}`}`, { cause: reason });
  }
  if (stage === "dial") {
    return new GossipError(ErrorCode.DialFailed, `dial ${endpoint} failed: ${detail}${code ? ` (${code})` : ""}`, { cause: reason });
  }
  return new GossipError(ErrorCode.Canceled, `stream to ${endpoint} failed: ${detail}${code ? ` (${code})` : ""}`, { cause: reason });
}

/**
 * The error a GossipStream's reader (or a Ping) ends with when the response headers are
 * not a gRPC response (HTTP status other than 200, another content type);
 * undefined when they are.
 */
export function responseHeadersError(
  headers: http2.IncomingHttpHeaders,
  remoteAddress: string,
  call: "GossipStream" | "Ping" = "GossipStream",
): GossipError | undefined {
  const status = Number(headers[":status"]);
  if (status !== 200) return new GossipError(ErrorCode.Remote, `remote ${remoteAddress} answered HTTP ${status} to ${call}`);
  const ct = headers["content-type"];
  if (!isGrpcProtoContentType(typeof ct === "string" ? ct : undefined)) {
    return new GossipError(ErrorCode.Remote, `remote ${remoteAddress} answered content-type ${String(ct)} to ${call}`);
  }
  return undefined;
}

/**
 * The error of a final gRPC status (trailers, or the headers of a
 * trailers-only response): undefined for OK; the remote's refusal, with its
 * `gossip-error-code` when it sent one (grpc/status.ts), otherwise.
 */
export function statusError(trailers: http2.IncomingHttpHeaders): GossipError | undefined {
  const status = Number(trailers["grpc-status"] ?? Number.NaN);
  if (status === 0) return undefined;
  if (Number.isNaN(status)) return new GossipError(ErrorCode.Remote, "invalid grpc-status");
  const raw = trailers["grpc-message"];
  return errorFromGrpcStatus(status, typeof raw === "string" ? decodeGrpcMessage(raw) : "", trailers["gossip-error-code"]);
}

/**
 * A Fabric peer's answer to our half-close: its GossipStream handler returns
 * the error of its next Recv, io.EOF, so the stream ends with UNKNOWN "EOF"
 * rather than OK. After we ended our side that is a normal close; any other
 * text (a refusal of our identity, say) stays an error.
 */
export function isFabricEndOfStream(trailers: http2.IncomingHttpHeaders): boolean {
  const raw = trailers["grpc-message"];
  return Number(trailers["grpc-status"]) === GrpcStatus.Unknown && typeof raw === "string" && decodeGrpcMessage(raw) === "EOF";
}

/** The error of a stream that ended (END_STREAM) without a gRPC status. */
export function missingStatusError(remoteAddress: string): GossipError {
  return new GossipError(ErrorCode.Remote, `stream from ${remoteAddress} ended without a gRPC status`);
}

/** The error of a stream closed before its end: `rstCode` is the HTTP/2 reset code, if any. */
export function streamClosedError(rstCode: number | undefined, remoteAddress: string): GossipError {
  if (rstCode !== undefined && rstCode !== http2.constants.NGHTTP2_NO_ERROR && rstCode !== http2.constants.NGHTTP2_CANCEL) {
    return new GossipError(ErrorCode.Canceled, `stream from ${remoteAddress} was reset with HTTP/2 error code ${rstCode}`);
  }
  return new GossipError(ErrorCode.Canceled, `stream from ${remoteAddress} was closed`);
}
