import { createHash } from "node:crypto";
import * as http2 from "node:http2";
import type { TLSSocket } from "node:tls";
import { ErrorCode, GossipError } from "../core/errors.js";
import { grpcContentType, statusTrailers } from "../grpc/status.js";
import { Http2WireStream, type StreamFacts, type WireStreamLimits } from "../grpc/wire-stream.js";

interface SessionFacts {
  readonly tls: boolean;
  readonly remoteCertHash: Uint8Array | undefined;
  readonly localCertHash: Uint8Array | undefined;
}

/** How long a stream cut by `abort()` waits for its status to go out before it is destroyed. */
const abortGraceMs = 1000;

const factsBySession = new WeakMap<http2.Http2Session, SessionFacts>();

function hashOf(der: Buffer | undefined): Uint8Array | undefined {
  return der && der.length > 0 ? new Uint8Array(createHash("sha256").update(der).digest()) : undefined;
}

/** Formats `address:port` with brackets for IPv6. */
export function formatAddress(address: string | undefined, port: number | undefined): string {
  if (address === undefined) return "unknown";
  return address.includes(":") ? `[${address}]:${port}` : `${address}:${port}`;
}

/**
 * TLS facts of an inbound request's connection (computed once per HTTP/2
 * session): whether it is TLS, and the hashes of the client's and of our leaf
 * certificate as seen on the socket.
 */
export function serverStreamFacts(req: http2.Http2ServerRequest): StreamFacts {
  const session = req.stream.session;
  const socket = req.socket as TLSSocket & { encrypted?: boolean };
  const remoteAddress = formatAddress(socket.remoteAddress, socket.remotePort);
  let facts = session ? factsBySession.get(session) : undefined;
  if (!facts) {
    const tls = socket.encrypted === true;
    const local = tls ? socket.getCertificate() : null;
    facts = {
      tls,
      remoteCertHash: tls ? hashOf(socket.getPeerCertificate(false)?.raw as Buffer | undefined) : undefined,
      localCertHash: local && "raw" in local ? hashOf(local.raw as Buffer) : undefined,
    };
    if (session) factsBySession.set(session, facts);
  }
  return { remoteAddress, ...facts };
}

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
    super(serverStreamFacts(req), limits, req, res, req.stream);
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
    this.finished = true;
    if (this.res.writableEnded || this.req.stream.destroyed) return;
    this.res.addTrailers(statusTrailers(error));
    this.res.end();
  }
}
