import type * as http2 from "node:http2";
import type { GossipError } from "../core/errors.js";
import { socketFacts } from "../grpc/socket-facts.js";
import { Http2WireStream, type WireStreamLimits, wireStreamOf } from "../grpc/wire-stream.js";
import { isFabricEndOfStream, missingStatusError, responseHeadersError, statusError, streamClosedError } from "./node-error.js";

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
    /** The signal the stream was opened with: aborting it resets the stream with CANCEL. */
    private readonly cancel: AbortController,
    private readonly onAbort: () => void,
    private readonly onRead: () => void,
  ) {
    super(socketFacts(stream.session?.socket, stream.session), limits, stream);
    // Shared listeners (the base class's owner link finds us), not closures per stream.
    stream.on("response", onResponse);
    stream.on("trailers", onTrailers);
    stream.on("data", this.onRead);
  }

  end(): void {
    if (!this.ended) this.flushHeld();
    this.ended = true;
    if (!this.stream.writableEnded && !this.stream.destroyed) this.stream.end();
  }

  abort(error?: GossipError): void {
    if (this.aborted) return;
    this.aborted = true;
    if (error) this.failRead(error);
    // Through the request's signal, not `stream.close(CANCEL)`: close() ends
    // the writable side first, so the server would read a clean END_STREAM
    // just before the RST_STREAM.
    if (!this.stream.closed && !this.stream.destroyed) this.cancel.abort();
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
    return this.statusSeen ? undefined : missingStatusError(this.remoteAddress);
  }

  protected override closeError(): GossipError {
    return streamClosedError(this.stream.rstCode, this.remoteAddress);
  }

  /** @private The response headers arrived. */
  onResponse(headers: http2.IncomingHttpHeaders): void {
    const refused = responseHeadersError(headers, this.remoteAddress);
    if (refused) {
      this.statusSeen = true;
      this.failRead(refused);
      return;
    }
    if (headers["grpc-encoding"] === "gzip") this.allowGzip();
    if (headers["grpc-status"] !== undefined) this.onStatus(headers); // trailers-only response
  }

  /** @private The status arrived (trailers, or the headers of a trailers-only response). */
  onStatus(trailers: http2.IncomingHttpHeaders): void {
    this.statusSeen = true;
    if (this.ended && isFabricEndOfStream(trailers)) return;
    const error = statusError(trailers);
    if (error) this.failRead(error);
  }
}

function onResponse(this: http2.ClientHttp2Stream, headers: http2.IncomingHttpHeaders): void {
  (wireStreamOf(this) as ClientWireStream | undefined)?.onResponse(headers);
}

function onTrailers(this: http2.ClientHttp2Stream, trailers: http2.IncomingHttpHeaders): void {
  (wireStreamOf(this) as ClientWireStream | undefined)?.onStatus(trailers);
}
