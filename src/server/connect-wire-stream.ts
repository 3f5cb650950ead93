import * as http2 from "node:http2";
import type { HandlerContext } from "@connectrpc/connect";
import { decodeEnvelope } from "../core/envelope.js";
import { ErrorCode, GossipError } from "../core/errors.js";
import type { WireStream } from "../core/transport.js";
import type { Envelope } from "../gen/gossip/message_pb.js";
import type { StreamFacts } from "../grpc/wire-stream.js";
import { inboundReadError, inboundStreamClosed, toConnectError } from "./errors.js";

/**
 * Adapts a Connect bidi-stream handler call (used for the Connect and
 * gRPC-web protocols; gRPC takes the raw fast path) to a {@link WireStream}
 * that behaves as the raw path's where Connect lets it: `end()` finishes the
 * response (status OK), which completes the call: reading then ends too
 * (cleanly), as a gRPC call is over once its status is sent (the raw path
 * goes on reading until the client ends); `abort(error)` ends it with
 * the error's status and code (errors.ts) and stops reading; the stream is
 * closed when its HTTP/2 stream is (both sides ended, or a reset).
 * `responses` is what the handler returns to Connect.
 *
 * Every wait inside races the call's signal, so a cancelled call never leaves
 * the handler parked (the leak described in stack-notes §5).
 */
export function connectWireStream(
  requests: AsyncIterable<Envelope>,
  ctx: HandlerContext,
  facts: StreamFacts,
  /** The HTTP/2 stream of the call; `closed` settles on its 'close' (else when the call ends). */
  h2?: http2.Http2Stream,
): { stream: WireStream; responses: AsyncIterable<Envelope> } {
  let outbox: { items: Envelope[]; done: () => void; fail: (e: GossipError) => void } | undefined;
  let wakeResponder: (() => void) | undefined;
  /** Our side is finished: by end() (no error) or abort(). */
  let finished: { error?: GossipError } | undefined;
  /** Why reading stopped early: our abort or the client's cancel. */
  let readStop: GossipError | undefined;
  /** The response went out complete with status OK: the call is over, reading ends cleanly. */
  let completed = false;
  let resolveClosed: () => void = () => {};
  const closed = new Promise<void>((r) => (resolveClosed = r));
  if (h2) {
    if (h2.closed || h2.destroyed) resolveClosed();
    else h2.once("close", () => resolveClosed());
  }

  const finish = (error?: GossipError) => {
    if (finished) return;
    finished = error ? { error } : {};
    const o = outbox;
    outbox = undefined;
    o?.fail(new GossipError(ErrorCode.Closed, "stream is closed"));
    wakeResponder?.();
  };
  const onCancel = () => {
    if (!completed) readStop ??= inboundStreamClosed(facts.remoteAddress, ctx.signal.reason);
    finish(readStop);
    if (!h2) resolveClosed();
  };
  if (ctx.signal.aborted) onCancel();
  else ctx.signal.addEventListener("abort", onCancel, { once: true });

  async function* incomingBatches(): AsyncGenerator<readonly Envelope[]> {
    try {
      for await (const env of requests) {
        if (readStop) throw readStop;
        yield [env];
      }
    } catch (e) {
      if (completed && !readStop) return;
      throw readStop ?? inboundReadError(e, facts.remoteAddress);
    }
    if (readStop) throw readStop;
  }

  async function* responses(): AsyncGenerator<Envelope> {
    try {
      for (;;) {
        while (!outbox && !finished) await new Promise<void>((r) => (wakeResponder = r));
        wakeResponder = undefined;
        const o = outbox;
        if (o) {
          for (const env of o.items) yield env;
          outbox = undefined;
          o.done();
          continue;
        }
        const error = finished?.error;
        if (error) throw toConnectError(error);
        completed = true;
        return;
      }
    } finally {
      finish();
      if (!h2) resolveClosed();
    }
  }

  const stream: WireStream = {
    ...facts,
    incoming: incomingBatches(),
    write(frames) {
      if (finished) return Promise.reject(new GossipError(ErrorCode.Closed, "stream is closed"));
      let items: Envelope[];
      try {
        items = frames.map((f) => decodeEnvelope(f));
      } catch (e) {
        return Promise.reject(GossipError.from(e));
      }
      return new Promise((done, fail) => {
        outbox = { items, done, fail };
        wakeResponder?.();
      });
    },
    end() {
      finish();
    },
    abort(error) {
      readStop ??= error ?? inboundStreamClosed(facts.remoteAddress);
      finish(error);
      // As the raw path: once the response (with its status) is out, reset
      // the stream with NO_ERROR so that a client still sending stops and
      // the stream is freed (the call's end alone leaves the client's side
      // open). Not after a clean end: a Connect client may still be reading
      // the end-of-stream message, and it ends its side on reading it.
      if (error && h2 && !h2.closed && !h2.destroyed) {
        const reset = () => {
          if (!h2.closed && !h2.destroyed) h2.close(http2.constants.NGHTTP2_NO_ERROR);
        };
        if (h2.writableFinished) reset();
        else h2.once("finish", () => setImmediate(reset));
      }
    },
    closed,
  };
  return { stream, responses: responses() };
}
