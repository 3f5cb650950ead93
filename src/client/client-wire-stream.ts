import { createHash } from "node:crypto";
import * as http2 from "node:http2";
import type { TLSSocket } from "node:tls";
import { ErrorCode, GossipError, GrpcStatus } from "../core/errors.js";
import { decodeGrpcMessage, errorFromGrpcStatus, isGrpcProtoContentType } from "../grpc/status.js";
import { Http2WireStream, type StreamFacts, type WireStreamLimits } from "../grpc/wire-stream.js";

/** Facts about the connection a client stream runs on, read from its session's socket. */
export function clientStreamFacts(stream: http2.ClientHttp2Stream): StreamFacts {
  const socket = stream.session?.socket as (TLSSocket & { encrypted?: boolean }) | undefined;
  const tls = socket?.encrypted === true;
  const remote = socket?.remoteAddress;
  const remoteAddress =
    remote === undefined ? "unknown" : remote.includes(":") ? `[${remote}]:${socket?.remotePort}` : `${remote}:${socket?.remotePort}`;
  if (!tls || !socket) return { remoteAddress, tls: false, remoteCertHash: undefined, localCertHash: undefined };
  const peer = socket.getPeerCertificate(false);
  const local = socket.getCertificate();
  return {
    remoteAddress,
    tls: true,
    remoteCertHash: peer?.raw ? new Uint8Array(createHash("sha256").update(peer.raw).digest()) : undefined,
    localCertHash: local && "raw" in local && local.raw ? new Uint8Array(createHash("sha256").update(local.raw).digest()) : undefined,
  };
}

/**
 * A Fabric peer's answer to our half-close: its GossipStream handler returns
 * the error of its next Recv, io.EOF, so the stream ends with UNKNOWN "EOF"
 * rather than OK. After we ended our side that is a normal close; any other
 * text (a refusal of our identity, say) stays an error.
 */
function isFabricEndOfStream(status: number, message: string): boolean {
  return status === GrpcStatus.Unknown && message === "EOF";
}

/**
 * The client side of a gRPC GossipStream on a raw `ClientHttp2Stream`
 * (opened through connect-node's session manager). Checks the response
 * headers and the final gRPC status; `abort()` cancels the stream and calls
 * `onAbort` (which closes the connection when the stream owns it).
 */
export class ClientWireStream extends Http2WireStream {
  private statusSeen = false;
  private aborted = false;
  /** We half-closed our side (`end()`). */
  private ended = false;

  constructor(
    private readonly stream: http2.ClientHttp2Stream,
    limits: WireStreamLimits,
    private readonly onAbort: () => void,
    private readonly onRead: () => void,
  ) {
    super(clientStreamFacts(stream), limits, stream, stream, stream);
    stream.once("response", (headers) => this.onResponse(headers));
    stream.once("trailers", (trailers) => this.onStatus(trailers));
    stream.on("data", this.onRead);
  }

  end(): void {
    this.ended = true;
    if (!this.stream.writableEnded && !this.stream.destroyed) this.stream.end();
  }

  abort(error?: GossipError): void {
    if (this.aborted) return;
    this.aborted = true;
    if (error) this.failRead(error);
    if (!this.stream.closed && !this.stream.destroyed) this.stream.close(http2.constants.NGHTTP2_CANCEL);
    this.onAbort();
  }

  protected writable(): boolean {
    return !this.stream.writableEnded && !this.stream.destroyed;
  }

  protected writeChunk(buf: Buffer): boolean {
    return this.stream.write(buf);
  }

  protected bufferedBytes(): number {
    return this.stream.writableLength;
  }

  protected override endError(): GossipError | undefined {
    if (this.statusSeen) return undefined;
    return new GossipError(ErrorCode.Remote, `stream from ${this.remoteAddress} ended without a gRPC status`);
  }

  protected override closeError(): GossipError {
    const code = this.stream.rstCode;
    if (code !== undefined && code !== http2.constants.NGHTTP2_NO_ERROR && code !== http2.constants.NGHTTP2_CANCEL) {
      return new GossipError(ErrorCode.Canceled, `stream from ${this.remoteAddress} was reset with HTTP/2 error code ${code}`);
    }
    return super.closeError();
  }

  private onResponse(headers: http2.IncomingHttpHeaders): void {
    const status = Number(headers[":status"]);
    if (status !== 200) {
      this.statusSeen = true;
      this.failRead(new GossipError(ErrorCode.Remote, `remote ${this.remoteAddress} answered HTTP ${status} to GossipStream`));
      return;
    }
    const ct = headers["content-type"];
    if (!isGrpcProtoContentType(typeof ct === "string" ? ct : undefined)) {
      this.statusSeen = true;
      this.failRead(new GossipError(ErrorCode.Remote, `remote ${this.remoteAddress} answered content-type ${String(ct)} to GossipStream`));
      return;
    }
    if (headers["grpc-encoding"] === "gzip") this.allowGzip();
    if (headers["grpc-status"] !== undefined) this.onStatus(headers); // trailers-only response
  }

  private onStatus(trailers: http2.IncomingHttpHeaders): void {
    this.statusSeen = true;
    const status = Number(trailers["grpc-status"] ?? Number.NaN);
    if (status === 0) return;
    const raw = trailers["grpc-message"];
    const message = typeof raw === "string" ? decodeGrpcMessage(raw) : "";
    if (this.ended && isFabricEndOfStream(status, message)) return;
    this.failRead(Number.isNaN(status) ? new GossipError(ErrorCode.Remote, "invalid grpc-status") : errorFromGrpcStatus(status, message));
  }
}
