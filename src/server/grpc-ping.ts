/**
 * The gRPC `Gossip.Ping` fast path.
 *
 * Why not connect-fastify: a Connect unary call costs about 400 us of CPU on
 * the server (per-call AbortControllers, WHATWG Headers, async generators for
 * a one-message body, and the garbage they leave), which held Ping at a fifth
 * of grpc-js's rate with 32 calls in flight (issue 4, W4). Ping's answer is a
 * constant (an empty message and status OK), so the plugin serves gRPC Pings
 * here, on the raw HTTP/2 stream it takes off Node's compatibility layer
 * exactly like the gRPC GossipStream (stream-dispatch.ts); Connect and
 * gRPC-web Pings still go through connect-fastify.
 *
 * The request is still checked as a gRPC server would: one message, within
 * `maxMessageBytes`, gzip only when announced, parsing as `gossip.Empty`.
 */
import type * as http2 from "node:http2";
import { fromBinary } from "@bufbuild/protobuf";
import { ErrorCode, GossipError } from "../core/errors.js";
import { EmptySchema } from "../gen/gossip/message_pb.js";
import { FrameDecoder } from "../grpc/framing.js";
import { grpcContentType } from "../grpc/status.js";
import { statusTrailers } from "./errors.js";

/** The serialized, framed `gossip.Empty` answer. */
const emptyFrame = Buffer.from([0, 0, 0, 0, 0]);

/**
 * The response headers: no `grpc-accept-encoding` (optional in gRPC; the
 * GossipStream's answer advertises gzip) and no `date` (which Node adds
 * unless told not to, and gRPC servers do not send): each header costs the
 * client a few microseconds per Ping to decode (issue 12).
 */
const responseHeaders = { ":status": 200, "content-type": grpcContentType };
// `sendDate` is what Node's compatibility layer passes to respond() to omit `date`.
const respondOptions: http2.ServerStreamResponseOptions & { sendDate: boolean } = { waitForTrailers: true, sendDate: false };

/** The trailers of a successful Ping. */
const okTrailers = statusTrailers(undefined);

/** True for a whole uncompressed frame of an empty message, the request of every Ping client. */
function isEmptyFrame(chunk: Buffer): boolean {
  return chunk.length === 5 && chunk[0] === 0 && chunk.readUInt32BE(1) === 0;
}

/** Answers one gRPC Ping on a raw stream (the caller checked method, path, content type and encoding). */
export function serveGrpcPing(stream: http2.ServerHttp2Stream, maxMessageBytes: number, gzip: boolean): void {
  // A request that arrives as one empty frame (every client's Ping) needs
  // neither the frame decoder nor the protobuf parser; anything else goes
  // through both, as before.
  let emptyFrames = 0;
  let decoder: FrameDecoder | undefined;
  const messages: Uint8Array[] = [];
  let error: GossipError | undefined;
  stream.on("data", (chunk: Buffer) => {
    if (error) return;
    if (decoder === undefined) {
      if (isEmptyFrame(chunk)) {
        emptyFrames++;
        return;
      }
      decoder = new FrameDecoder(maxMessageBytes, gzip);
    }
    try {
      decoder.push(chunk, messages);
    } catch (e) {
      error = GossipError.from(e, ErrorCode.MalformedFrame);
      answer(stream, error);
    }
  });
  stream.once("end", () => {
    if (error) return;
    const count = emptyFrames + messages.length;
    if (decoder?.pending) {
      error = new GossipError(ErrorCode.MalformedFrame, "request ended inside a gRPC frame");
    } else if (count !== 1) {
      error = new GossipError(
        ErrorCode.MalformedMessage,
        count === 0 ? "missing request message for unary Ping" : "more than one request message for unary Ping",
      );
    } else if (emptyFrames === 0 && (messages[0] as Uint8Array).length > 0) {
      try {
        fromBinary(EmptySchema, messages[0] as Uint8Array);
      } catch (e) {
        error = new GossipError(ErrorCode.MalformedMessage, `invalid Ping request: ${(e as Error).message}`);
      }
    }
    answer(stream, error);
  });
  stream.on("error", ignore); // the stream's reset ends the call; nothing to answer
}

function answer(stream: http2.ServerHttp2Stream, error: GossipError | undefined): void {
  if (stream.headersSent || stream.destroyed || stream.closed) return;
  if (error === undefined) {
    // `on`, not `once` (the event comes once), and a shared listener: no allocation per Ping.
    stream.on("wantTrailers", sendOkTrailers);
  } else {
    const trailers = statusTrailers(error);
    stream.once("wantTrailers", () => {
      try {
        stream.sendTrailers(trailers);
      } catch {
        return; // reset meanwhile
      }
      // Stop a client that is still sending, once the status is out.
      setImmediate(closeStream, stream);
    });
  }
  try {
    stream.respond(responseHeaders, respondOptions);
  } catch {
    return; // reset meanwhile
  }
  if (error) stream.end();
  else stream.end(emptyFrame);
}

function sendOkTrailers(this: http2.ServerHttp2Stream): void {
  try {
    this.sendTrailers(okTrailers);
  } catch {
    // reset meanwhile
  }
}

function ignore(): void {}

function closeStream(stream: http2.ServerHttp2Stream): void {
  if (!stream.closed && !stream.destroyed) stream.close();
}
