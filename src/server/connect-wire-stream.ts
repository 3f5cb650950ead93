import { Code, ConnectError, type HandlerContext } from "@connectrpc/connect";
import { decodeEnvelope } from "../core/envelope.js";
import { ErrorCode, GossipError } from "../core/errors.js";
import type { WireStream } from "../core/transport.js";
import type { Envelope } from "../gen/gossip/message_pb.js";
import type { StreamFacts } from "../grpc/wire-stream.js";

/**
 * Adapts a Connect bidi-stream handler call (used for the Connect and
 * gRPC-web protocols; gRPC takes the raw fast path) to a {@link WireStream}.
 * `responses` is what the handler returns to Connect.
 *
 * Every wait inside races the call's signal, so a cancelled call never leaves
 * the handler parked (the leak described in stack-notes §5).
 */
export function connectWireStream(
  requests: AsyncIterable<Envelope>,
  ctx: HandlerContext,
  facts: StreamFacts,
): { stream: WireStream; responses: AsyncIterable<Envelope> } {
  let outbox: { items: Envelope[]; done: () => void; fail: (e: GossipError) => void } | undefined;
  let wakeResponder: (() => void) | undefined;
  let finished: { error?: GossipError } | undefined;
  let resolveClosed: () => void = () => {};
  const closed = new Promise<void>((r) => (resolveClosed = r));

  const finish = (error?: GossipError) => {
    if (finished) return;
    finished = error ? { error } : {};
    const o = outbox;
    outbox = undefined;
    o?.fail(error ?? new GossipError(ErrorCode.Closed, "stream is closed"));
    wakeResponder?.();
  };
  const onAbort = () => {
    finish(new GossipError(ErrorCode.Canceled, `stream from ${facts.remoteAddress} was cancelled`));
    resolveClosed();
  };
  if (ctx.signal.aborted) onAbort();
  else ctx.signal.addEventListener("abort", onAbort, { once: true });

  async function* incomingBatches(): AsyncGenerator<readonly Envelope[]> {
    try {
      for await (const env of requests) {
        if (finished) return;
        yield [env];
      }
    } catch (e) {
      const ce = ConnectError.from(e);
      throw new GossipError(
        ce.code === Code.ResourceExhausted ? ErrorCode.MessageTooLarge : ce.code === Code.Canceled ? ErrorCode.Canceled : ErrorCode.MalformedFrame,
        ce.rawMessage,
        { cause: e },
      );
    }
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
        if (error) throw new ConnectError(error.message, error.grpcStatus as number as Code);
        return;
      }
    } finally {
      finish();
      resolveClosed();
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
      finish(error);
    },
    closed,
  };
  return { stream, responses: responses() };
}
