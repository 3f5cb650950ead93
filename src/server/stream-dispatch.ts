import type * as http2 from "node:http2";
import { grpcContentType } from "../grpc/status.js";

type Http2Server = http2.Http2Server | http2.Http2SecureServer;
type StreamListener = (stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders, flags: number, rawHeaders: string[]) => void;

/**
 * Takes the requests `take` accepts off Node's HTTP/2 compatibility layer
 * (and so off Fastify): they are served on their raw `ServerHttp2Stream`,
 * without the compat request/response (and their timeout closures and header
 * tables), Fastify's request/reply or its hooks, which an idle GossipStream
 * would otherwise keep for its whole life. Every other request reaches the
 * server's previous `'stream'` listeners (Node's compat layer, which Fastify
 * registered by creating the server with a request handler) unchanged.
 *
 * Installed as the server's only `'stream'` listener; `detach()` restores the
 * previous ones.
 */
export class StreamDispatch {
  private readonly previous: StreamListener[];
  private readonly onStream: StreamListener;

  constructor(
    private readonly server: Http2Server,
    /** Serves the stream and returns true when it is ours; false hands it on. */
    take: (stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders, rawHeaders: string[]) => boolean,
  ) {
    const previous = server.listeners("stream") as StreamListener[];
    this.previous = previous;
    this.onStream = function (this: Http2Server, stream, headers, flags, rawHeaders) {
      if (take(stream, headers, rawHeaders)) return;
      for (const listener of previous) listener.call(this, stream, headers, flags, rawHeaders);
    };
    server.removeAllListeners("stream");
    server.on("stream", this.onStream);
  }

  /** Hands every stream to the previous listeners again. */
  detach(): void {
    if (!this.server.listeners("stream").includes(this.onStream)) return;
    this.server.off("stream", this.onStream);
    for (const listener of this.previous) this.server.on("stream", listener);
  }
}

/**
 * Refuses a gRPC request on its raw stream with a trailers-only response
 * (`fields` carry the status), then resets the stream (NO_ERROR) if the
 * client is still sending, once the response is out.
 */
export function refuseStream(stream: http2.ServerHttp2Stream, fields: Record<string, string>): void {
  if (stream.headersSent || stream.destroyed || stream.closed) return;
  try {
    stream.respond({ ":status": 200, "content-type": grpcContentType, ...fields }, { endStream: true });
  } catch {
    return; // reset meanwhile
  }
  setImmediate(closeStream, stream);
}

function closeStream(stream: http2.ServerHttp2Stream): void {
  if (!stream.closed && !stream.destroyed) stream.close();
}
