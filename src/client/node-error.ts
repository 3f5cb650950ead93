/**
 * The one place where platform errors of outbound connections (Node's
 * net/tls/http2 codes, Connect's errors) become {@link GossipError}s, with
 * the stage that failed and the endpoint in the message.
 */
import { Code, ConnectError } from "@connectrpc/connect";
import { ErrorCode, GossipError, isGossipError } from "../core/errors.js";

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

const dialCodes = new Set(["ECONNREFUSED", "ENOTFOUND", "EAI_AGAIN", "EHOSTUNREACH", "ENETUNREACH", "ECONNRESET", "EPIPE", "ETIMEDOUT", "EADDRNOTAVAIL"]);

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
