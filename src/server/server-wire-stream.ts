import * as http2 from "node:http2";
import { ErrorCode, GossipError } from "../core/errors.js";
import { socketFacts } from "../grpc/socket-facts.js";
import { grpcContentType } from "../grpc/status.js";
import { Http2WireStream, type WireStreamLimits, wireStreamOf } from "../grpc/wire-stream.js";
import { inboundStreamClosed, statusTrailers } from "./errors.js";

/** How long a stream cut by `abort()` waits for its status to go out before it is destroyed. */
const abortGraceMs = 1000;

/**
 * The server side of a gRPC GossipStream on a raw HTTP/2 stream (the plugin
 * takes gRPC GossipStreams off Node's compatibility layer, see
 * stream-dispatch.ts). Response headers go out at once (a Go client's
 * `stream.Header()` does not wait for our first message); `end()` finishes
 * with status OK, `abort(error)` with the error's status, then resets the
 * stream if the client is still sending.
 */
export class ServerWireStream extends Http2WireStream {
  private finished = false;
  private trailersSent = false;
  /** The status trailers, once our side finished. */
  private trailers: Record<string, string> | undefined;
  /** Reset the stream (NO_ERROR) once the trailers are out (after an abort). */
  private resetAfterTrailers = false;
  private shutdownListener: (() => void) | undefined;

  constructor(
    private readonly stream: http2.ServerHttp2Stream,
    limits: WireStreamLimits,
    /** Where the stream stays listed until it closed (the plugin's, for shutdown). */
    private readonly served?: Set<ServerWireStream>,
  ) {
    super(socketFacts(stream.session?.socket, stream.session), limits, stream);
    served?.add(this);
    stream.on("wantTrailers", onWantTrailers);
    if (stream.destroyed || stream.closed) return;
    try {
      // The headers go out at once, before any message; the status follows as trailers.
      stream.respond(responseHeaders(), { waitForTrailers: true });
    } catch {
      // The client reset the stream meanwhile; 'close' ends us.
    }
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
   * The server is closing: the stream's owner (an authenticated connection,
   * through its `onShutdown` listener or reader) closes it gracefully; a stream without one (still in the handshake) is
   * refused with "shutting down".
   */
  shutdown(): void {
    const listener = this.shutdownListener;
    this.shutdownListener = undefined;
    if (listener) listener();
    else if (this.reader?.onShutdown) this.reader.onShutdown();
    else this.abort(new GossipError(ErrorCode.Stopping, "shutting down"));
  }

  abort(error?: GossipError): void {
    if (error) this.failRead(error);
    this.finish(error);
    const stream = this.stream;
    if (stream.closed || stream.destroyed) return;
    // RST_STREAM(NO_ERROR) once the status trailers are out, so that a client
    // still sending stops and the stream is freed. Not when the stream
    // closes: that needs the client to end its side, and a client keeping it
    // open would hold the stream forever. Not at once either: the RST would
    // overtake the trailers and drop the status.
    if (this.trailersSent) resetStream(stream);
    else this.resetAfterTrailers = true;
    // A client that does not read never lets the status (nor the reset, which
    // waits for it) go out: the stream, its connection and whoever waits for
    // them (comm.stop()) would wait as long. Destroy it after a grace.
    // Not unref'd: whoever waits for the stream (a stop, a close) must get it.
    const cut = setTimeout(() => {
      if (!stream.destroyed) stream.destroy();
    }, abortGraceMs);
    stream.once("close", () => clearTimeout(cut));
  }

  /** @private The stream wants its trailers (our side ended): sends the status. */
  sendStatus(): void {
    if (this.trailersSent) return;
    this.trailersSent = true;
    const stream = this.stream;
    if (stream.destroyed) return;
    try {
      stream.sendTrailers(this.trailers ?? statusTrailers(undefined));
    } catch {
      return; // reset meanwhile
    }
    if (this.resetAfterTrailers) setImmediate(resetStream, stream);
  }

  protected override onClosed(): void {
    super.onClosed();
    this.served?.delete(this);
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
    const code = this.stream.rstCode;
    if (this.stream.aborted || (code !== undefined && code !== http2.constants.NGHTTP2_NO_ERROR))
      return inboundStreamClosed(this.remoteAddress);
    return undefined;
  }

  protected writable(): boolean {
    return !this.finished && !this.stream.writableEnded && !this.stream.destroyed;
  }

  protected writeChunk(buf: Buffer): boolean {
    return this.stream.write(buf);
  }

  protected bufferedBytes(): number {
    return this.stream.writableLength;
  }

  private finish(error: GossipError | undefined): void {
    if (this.finished) return;
    this.flushHeld();
    this.finished = true;
    const stream = this.stream;
    if (stream.writableEnded || stream.destroyed || !stream.headersSent) return;
    this.trailers = statusTrailers(error);
    stream.end();
  }
}

/**
 * A GossipStream's response headers. `grpc-accept-encoding` goes out as a
 * literal HPACK does not index (Node's `sensitiveHeaders`): the same header,
 * but a GossipStream is the one stream of its connection, so an indexed
 * entry would stay in our HPACK encoder's table (and the client's decoder's)
 * for the connection's whole life for a reuse that never comes; measured
 * ~220 bytes of nghttp2 memory per inbound connection.
 */
function responseHeaders(): http2.OutgoingHttpHeaders {
  return {
    ":status": 200,
    "content-type": grpcContentType,
    "grpc-accept-encoding": "identity,gzip",
    [http2.sensitiveHeaders]: notIndexed,
  };
}

const notIndexed = ["grpc-accept-encoding"];

function onWantTrailers(this: http2.ServerHttp2Stream): void {
  (wireStreamOf(this) as ServerWireStream | undefined)?.sendStatus();
}

function resetStream(stream: http2.ServerHttp2Stream): void {
  if (!stream.closed && !stream.destroyed) stream.close(http2.constants.NGHTTP2_NO_ERROR);
}
