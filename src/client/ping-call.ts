import * as http2 from "node:http2";
import { ErrorCode, GossipError } from "../core/errors.js";
import { FrameDecoder } from "../grpc/framing.js";
import { responseHeadersError, statusError } from "./node-error.js";
import type { UnaryFlight } from "./session-manager.js";

/** A framed, serialized `gossip.Empty`: the request body, and the usual answer. */
const emptyFrame = Buffer.from([0, 0, 0, 0, 0]);

const kCall = Symbol("pingCall");
type PingStream = http2.ClientHttp2Stream & { [kCall]?: PingCall };

/**
 * One unary Gossip.Ping on a raw HTTP/2 stream: its deadline, its abort
 * signal, and the reading of the answer.
 *
 * Settles `promise` once: it resolves when the stream closed after HTTP 200
 * with a gRPC content type, at most one message and grpc-status 0 (in the
 * trailers, or in the headers of a trailers-only response); it rejects with
 * `PingFailed` ("timed out" after `timeoutMs`, "failed: the operation was
 * aborted" when `signal` aborts, "failed: <detail>" for a refusal, a gRPC
 * error status, a malformed answer or a reset) and then resets the stream
 * with CANCEL.
 *
 * Ping rates are bound by the client's CPU per call (W4), so a call
 * allocates little: the stream's listeners and the timer's callback are
 * module functions that find the call on the stream (or get it as the
 * timer's argument), the call is the signal's listener (`handleEvent`), and
 * the usual answer (one empty message in one DATA frame) is recognized
 * without a frame decoder; anything else goes through `FrameDecoder`.
 *
 * The stream is registered with the session manager, one by one (its
 * `request()`, whose listener on the response headers marks the connection
 * alive and restarts the keepalive timer) or as one of a connection's
 * {@link UnaryFlight} (`start(stream, flight)`: the call tells the flight
 * when its answer's headers arrive and when its stream closed). The answer's
 * DATA is not reported to connect-node's `notifyResponseByteRead` again: a
 * Ping's few bytes of DATA follow its headers within microseconds, and
 * reporting them cost a timer reset per call.
 */
export class PingCall {
  readonly promise: Promise<void>;
  private resolve!: () => void;
  private reject!: (error: GossipError) => void;
  private stream: PingStream | undefined;
  /** The flight the stream was opened on, until the stream closed. */
  private flight: UnaryFlight | undefined;
  private readonly timer: ReturnType<typeof setTimeout>;
  private settled = false;
  private statusSeen = false;
  /** The first failure seen while reading; reported when the stream closes. */
  private failure: GossipError | undefined;
  /** Whether the answer so far is exactly one empty frame, in one chunk. */
  private emptySeen = false;
  /** The decoder of any other answer, and its messages. */
  private decoder: FrameDecoder | undefined;
  private messages: Uint8Array[] | undefined;

  constructor(
    private readonly endpoint: string,
    private readonly maxMessageBytes: number,
    timeoutMs: number,
    private readonly signal: AbortSignal | undefined,
  ) {
    this.promise = new Promise<void>((resolve, reject) => {
      this.resolve = resolve;
      this.reject = reject;
    });
    this.timer = setTimeout(onTimeout, timeoutMs, this);
    signal?.addEventListener("abort", this, { once: true });
  }

  /**
   * Reads the answer on `stream` and sends the request; when the call already
   * failed, resets `stream` instead. `flight` is the flight `stream` was opened
   * on, if it was ({@link UnaryFlight.open}); it is told when the stream closed.
   */
  start(stream: http2.ClientHttp2Stream, flight?: UnaryFlight): void {
    const s = stream as PingStream;
    if (this.settled) {
      if (flight) s.once("close", () => flight.done());
      s.on("error", ignore);
      s.close(http2.constants.NGHTTP2_CANCEL);
      return;
    }
    this.stream = s;
    this.flight = flight;
    s[kCall] = this;
    // `on`, not `once`: each of these events comes once per stream, and
    // `once` allocates a wrapper per listener.
    s.on("response", onResponse);
    s.on("trailers", onTrailers);
    s.on("data", onData);
    s.on("error", onError);
    s.on("close", onClose);
    s.end(emptyFrame);
  }

  /** Fails the call (no stream could be opened, the deadline passed, the signal aborted). */
  fail(error: GossipError): void {
    if (this.settled) return;
    this.settled = true;
    this.cleanup();
    const s = this.stream;
    if (s && !s.closed && !s.destroyed) s.close(http2.constants.NGHTTP2_CANCEL);
    this.reject(error);
  }

  /** The signal's listener. */
  handleEvent(): void {
    this.fail(this.error("failed: the operation was aborted", this.signal?.reason));
  }

  error(detail: string, cause?: unknown): GossipError {
    return new GossipError(ErrorCode.PingFailed, `ping ${this.endpoint} ${detail}`, cause === undefined ? undefined : { cause });
  }

  private cleanup(): void {
    clearTimeout(this.timer);
    this.signal?.removeEventListener("abort", this);
  }

  private noteFailure(detail: string, cause?: unknown): void {
    this.failure ??= this.error(`failed: ${detail}`, cause);
  }

  /** @internal */
  onResponse(headers: http2.IncomingHttpHeaders): void {
    this.flight?.alive();
    const refused = responseHeadersError(headers, this.endpoint, "Ping");
    if (refused) this.noteFailure(refused.message, refused);
    else this.onStatus(headers);
  }

  /** @internal */
  onStatus(headers: http2.IncomingHttpHeaders): void {
    if (headers["grpc-status"] === undefined) return;
    this.statusSeen = true;
    const error = statusError(headers);
    if (error) this.noteFailure(error.message, error);
  }

  /** @internal */
  onData(chunk: Buffer): void {
    if (this.failure) return;
    if (this.decoder === undefined) {
      if (!this.emptySeen && chunk.length === 5 && chunk.equals(emptyFrame)) {
        this.emptySeen = true;
        return;
      }
      this.decoder = new FrameDecoder(this.maxMessageBytes, false);
      this.messages = this.emptySeen ? [emptyFrame.subarray(5)] : [];
    }
    try {
      this.decoder.push(chunk, this.messages as Uint8Array[]);
    } catch (e) {
      this.noteFailure((e as Error).message);
    }
  }

  /** @internal */
  onError(e: Error): void {
    this.noteFailure(e.message);
  }

  /** @internal */
  onClose(): void {
    const flight = this.flight;
    if (flight) {
      this.flight = undefined;
      flight.done();
    }
    if (this.settled) return;
    let error = this.failure;
    if (error === undefined && !this.statusSeen) {
      error = this.error(`failed: stream closed without a gRPC status (HTTP/2 code ${this.stream?.rstCode ?? "none"})`);
    }
    if (error === undefined && this.decoder && (this.decoder.pending || (this.messages?.length ?? 0) > 1)) {
      error = this.error("failed: malformed response");
    }
    if (error) {
      this.fail(error);
      return;
    }
    this.settled = true;
    this.cleanup();
    this.resolve();
  }
}

function ignore(): void {}

function onTimeout(call: PingCall): void {
  call.fail(call.error("timed out"));
}

function onResponse(this: PingStream, headers: http2.IncomingHttpHeaders): void {
  this[kCall]?.onResponse(headers);
}

function onTrailers(this: PingStream, headers: http2.IncomingHttpHeaders): void {
  this[kCall]?.onStatus(headers);
}

function onData(this: PingStream, chunk: Buffer): void {
  this[kCall]?.onData(chunk);
}

function onError(this: PingStream, e: Error): void {
  this[kCall]?.onError(e);
}

function onClose(this: PingStream): void {
  this[kCall]?.onClose();
}
