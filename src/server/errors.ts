/**
 * The one place where the server's platform errors (Node HTTP/2 session and
 * stream errors, Connect's errors on the connect-fastify path) become
 * {@link GossipError}s, and where a {@link GossipError} becomes what the
 * client receives, for both server paths: the raw gRPC path writes
 * {@link statusTrailers}, the Connect path throws {@link toConnectError};
 * both carry the same gRPC status, message and `gossip-error-code`.
 */
import * as http2 from "node:http2";
import { Code, ConnectError } from "@connectrpc/connect";
import { ErrorCode, GossipError, isGossipError } from "../core/errors.js";
import { errorCodeTrailer, grpcStatusOf, statusTrailers } from "../grpc/status.js";

export { statusTrailers };

/**
 * Why the HTTP/2 server refused a request or connection before any stream
 * reached the comm: values of the `reason` label of
 * `gossip_comm_refused_total`, beside the {@link ErrorCode}s.
 */
export const Http2Refusal = {
  /** A request's header list exceeds `maxHeaderListBytes` (RESOURCE_EXHAUSTED, HTTP 431 outside gRPC). */
  HeadersTooLarge: "headers_too_large",
  /** A client reset streams faster than `maxStreamResetsPerSecond` (HTTP/2 rapid reset); its connection was closed. */
  TooManyResets: "too_many_resets",
} as const;

/** The error an inbound stream's reader ends with when the client cancelled it or the connection broke. */
export function inboundStreamClosed(remoteAddress: string, cause?: unknown): GossipError {
  return new GossipError(ErrorCode.Canceled, `stream from ${remoteAddress} was cancelled`, cause === undefined ? undefined : { cause });
}

/**
 * The error an inbound stream's reader ends with when reading the client's
 * messages failed on the Connect path (the raw path's frame decoder throws
 * GossipErrors itself): too large → `MessageTooLarge`, a cancel, deadline
 * or broken connection → `Canceled` (as {@link inboundStreamClosed}),
 * anything else → `MalformedFrame`.
 */
export function inboundReadError(reason: unknown, remoteAddress: string): GossipError {
  if (isGossipError(reason)) return reason;
  const ce = ConnectError.from(reason);
  switch (ce.code) {
    case Code.ResourceExhausted:
      return new GossipError(ErrorCode.MessageTooLarge, ce.rawMessage, {
        cause: reason,
      });
    case Code.Canceled:
    case Code.DeadlineExceeded:
    case Code.Aborted:
    case Code.Unavailable:
      return inboundStreamClosed(remoteAddress, reason);
    default:
      return new GossipError(ErrorCode.MalformedFrame, ce.rawMessage, {
        cause: reason,
      });
  }
}

/** What the Connect path throws to end a call with `error`: the same status, message and code trailer as the raw path. */
export function toConnectError(error: GossipError): ConnectError {
  return new ConnectError(error.message, grpcStatusOf(error.code) as number as Code, { [errorCodeTrailer]: error.code });
}

/** Socket errors that mean the remote went away. */
const socketGoneCodes: ReadonlySet<string> = new Set(["ECONNRESET", "EPIPE", "ECONNABORTED", "ETIMEDOUT"]);

/**
 * True when an HTTP/2 session error means the peer left rather than sent
 * garbage: GOAWAY CANCEL (how connect-node, our dialer included, ends every
 * session it closes) or a reset or broken socket (a closed duplicate
 * connection, a killed process). Those are not counted as malformed input.
 */
export function isPeerGone(err: Error & { code?: string }): boolean {
  if (err.code === "ERR_HTTP2_SESSION_ERROR" && err.message === `Session closed with error code ${http2.constants.NGHTTP2_CANCEL}`)
    return true;
  return err.code !== undefined && socketGoneCodes.has(err.code);
}
