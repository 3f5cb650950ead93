/** Raw node:http2 clients for tests that must write exact bytes (no gRPC library in between). */
import * as http2 from "node:http2";
import type { TestPeer } from "./peers.js";

/** Opens a raw HTTP/2 session to a test peer (h2c, or TLS with the peer's client certificate unless `clientCert` is false). */
export function connectRaw(peer: TestPeer, options: { tls: boolean; clientCert?: boolean }): http2.ClientHttp2Session {
  const m = peer.material;
  const session = options.tls
    ? http2.connect(`https://${peer.endpoint}`, {
        ca: m.ca.certPem,
        ...(options.clientCert === false ? {} : { cert: m.tlsClient.certPem, key: m.tlsClient.keyPem }),
      })
    : http2.connect(`http://${peer.endpoint}`);
  session.on("error", () => {}); // tests observe 'close' and stream outcomes instead
  return session;
}

/** What came back on one raw stream. */
export interface RawResponse {
  readonly headers: http2.IncomingHttpHeaders;
  /** Trailers, or undefined when the response was trailers-only (status in `headers`). */
  readonly trailers: http2.IncomingHttpHeaders | undefined;
  readonly body: Buffer;
  /** The RST_STREAM code the stream closed with (0 = NO_ERROR). */
  readonly rstCode: number | undefined;
  /** `grpc-status` from the trailers, or from the headers of a trailers-only response. */
  readonly grpcStatus: number | undefined;
}

/** Splits a gRPC response body into its length-prefixed messages. */
export function grpcMessages(body: Buffer): { flags: number; message: Buffer }[] {
  const out: { flags: number; message: Buffer }[] = [];
  let at = 0;
  while (body.length - at >= 5) {
    const len = body.readUInt32BE(at + 1);
    if (at + 5 + len > body.length) break;
    out.push({ flags: body[at] as number, message: body.subarray(at + 5, at + 5 + len) });
    at += 5 + len;
  }
  return out;
}

/**
 * Sends a POST with `headers` on `session`, writes `chunks` (then ends the
 * request unless `endRequest` is false), and resolves when the stream closed,
 * or rejects after `timeoutMs`.
 */
export function rawRequest(
  session: http2.ClientHttp2Session,
  path: string,
  headers: http2.OutgoingHttpHeaders,
  chunks: readonly Buffer[],
  options: { endRequest?: boolean; timeoutMs?: number } = {},
): Promise<RawResponse> {
  const timeoutMs = options.timeoutMs ?? 5000;
  return new Promise((resolve, reject) => {
    const stream = session.request({ ":method": "POST", ":path": path, ...headers });
    let resHeaders: http2.IncomingHttpHeaders = {};
    let trailers: http2.IncomingHttpHeaders | undefined;
    const body: Buffer[] = [];
    const timer = setTimeout(() => {
      stream.close(http2.constants.NGHTTP2_CANCEL);
      reject(new Error(`raw ${path}: stream did not close within ${timeoutMs}ms`));
    }, timeoutMs);
    stream.on("response", (h) => (resHeaders = h));
    stream.on("trailers", (t) => (trailers = t));
    stream.on("data", (d: Buffer) => body.push(d));
    stream.on("error", () => {}); // the outcome is read from headers, trailers and rstCode
    stream.on("close", () => {
      clearTimeout(timer);
      const raw = trailers?.["grpc-status"] ?? resHeaders["grpc-status"];
      resolve({
        headers: resHeaders,
        trailers,
        body: Buffer.concat(body),
        rstCode: stream.rstCode,
        grpcStatus: raw === undefined ? undefined : Number(raw),
      });
    });
    for (const c of chunks) stream.write(c);
    if (options.endRequest ?? true) stream.end();
  });
}

/** Headers of a gRPC request as grpc-go and grpc-js send them. */
export const grpcHeaders: http2.OutgoingHttpHeaders = {
  "content-type": "application/grpc",
  te: "trailers",
};

/** A gRPC frame: flags, the given (possibly false) length prefix, then `payload`. */
export function grpcFrame(payload: Buffer, options: { flags?: number; length?: number } = {}): Buffer {
  const head = Buffer.alloc(5);
  head[0] = options.flags ?? 0;
  head.writeUInt32BE(options.length ?? payload.length, 1);
  return Buffer.concat([head, payload]);
}
