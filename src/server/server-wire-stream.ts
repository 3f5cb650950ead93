import * as http2 from "node:http2";
import { ErrorCode, GossipError } from "../core/errors.js";
import { socketFacts } from "../grpc/socket-facts.js";
import { grpcContentType } from "../grpc/status.js";
import { Http2WireStream, type WireStreamLimits } from "../grpc/wire-stream.js";
import { inboundStreamClosed, statusTrailers } from "./errors.js";

/** How long a stream cut by `abort()` waits for its status to go out before it is destroyed. */
const abortGraceMs = 1000;

/**
 * The server side of a gRPC GossipStream on Node's HTTP/2 compatibility
 * request/response (the request Fastify hijacked). Response headers go out at
 * once (a Go client's `stream.Header()` does not wait for our first message);
 * `end()` finishes with status OK, `abort(error)` with the error's status,
 * then resets the stream if the client is still sending.
 */
export class ServerWireStream extends Http2WireStream {
  private finished = false;
  private trailersSent = false;
  private shutdownListener: (() => void) | undefined;

  constructor(
    private readonly req: http2.Http2ServerRequest,
    private readonly res: http2.Http2ServerResponse,
    limits: WireStreamLimits,
  ) {
    super(socketFacts(req.socket, req.stream.session), limits, req, res, req.stream);
    // writeHead sends the headers at once (Node's compat API), before any message.
    res.writeHead(200, {
      "content-type": grpcContentType,
      "grpc-accept-encoding": "identity,gzip",
    });
    // Registered after the compat response's own listener, which sends the trailers.
    req.stream.once("wantTrailers", () => {
      this.trailersSent = true;
    });
  }

  end(): void {
    this.finish(undefined);
  }

  onShutdown(listener: () => void): () => void {
    this.shutdownListener = listener;
    return () => {
      if (this.shutdownListener === listener) this.shutdownListener = undefined;
    };
  }

  /**
   * The server is closing: the stream's owner (an authenticated connection)
   * closes it gracefully; a stream without one (still in the handshake) is
   * refused with "shutting down".
   */
  shutdown(): void {
    const listener = this.shutdownListener;
    this.shutdownListener = undefined;
    if (listener) listener();
    else this.abort(new GossipError(ErrorCode.Stopping, "shutting down"));
  }

  abort(error?: GossipError): void {
    if (error) this.failRead(error);
    this.finish(error);
    const stream = this.req.stream;
    if (stream.closed || stream.destroyed) return;
    // RST_STREAM(NO_ERROR) once the status trailers are out, so that a client
    // still sending stops and the stream is freed. Not on the compat
    // response's 'finish': Node emits it only when the stream has closed, so a
    // client keeping its side open would hold the stream forever. Not at once
    // either: the RST would overtake the trailers and drop the status.
    const reset = () => {
      if (!stream.closed && !stream.destroyed) stream.close(http2.constants.NGHTTP2_NO_ERROR);
    };
    if (this.trailersSent) reset();
    else stream.once("wantTrailers", () => setImmediate(reset));
    // A client that does not read never lets the status (nor the reset, which
    // waits for it) go out: the stream, its connection and whoever waits for
    // them (comm.stop()) would wait as long. Destroy it after a grace.
    // Not unref'd: whoever waits for the stream (a stop, a close) must get it.
    const cut = setTimeout(() => {
      if (!stream.destroyed) stream.destroy();
    }, abortGraceMs);
    stream.once("close", () => clearTimeout(cut));
  }

  protected override closeError(): GossipError {
    return inboundStreamClosed(this.remoteAddress);
  }

  /**
   * A client's cancel is not a clean end even when END_STREAM came first:
   * Node's `stream.close(CANCEL)` ends the writable side (an empty DATA frame
   * with END_STREAM) just before its RST_STREAM, and both arrive together.
   */
  protected override endError(): GossipError | undefined {
    const stream = this.req.stream;
    const code = stream.rstCode;
    if (this.req.aborted || (code !== undefined && code !== http2.constants.NGHTTP2_NO_ERROR))
      return inboundStreamClosed(this.remoteAddress);
    return undefined;
  }

  protected writable(): boolean {
    return !this.finished && !this.res.writableEnded && !this.req.stream.destroyed;
  }

  protected writeChunk(buf: Buffer): boolean {
    return this.res.write(buf);
  }

  protected bufferedBytes(): number {
    return this.req.stream.writableLength;
  }

  private finish(error: GossipError | undefined): void {
    if (this.finished) return;
    this.flushHeld();
    this.finished = true;
    if (this.res.writableEnded || this.req.stream.destroyed) return;
    this.res.addTrailers(statusTrailers(error));
    this.res.end();
  }
}
