/**
 * The gRPC-framed GossipStream over a Node HTTP/2 stream, shared by the
 * client dialer and the server: decodes incoming frames into Envelope batches
 * with flow control, and writes batches of envelopes as one framed buffer.
 */
import type { Duplex } from "node:stream";
import { decodeEnvelopeIn } from "../core/envelope.js";
import { ErrorCode, GossipError } from "../core/errors.js";
import { type WireReader, type WireStream, writeTaken } from "../core/transport.js";
import type { Envelope } from "../gen/gossip/message_pb.js";
import { FrameDecoder, type FrameSink, frameHeaderBytes, framePieces } from "./framing.js";

/** Transport facts about one stream, fixed when it opens. */
export interface StreamFacts {
  readonly remoteAddress: string;
  readonly tls: boolean;
  readonly remoteCertHash: Uint8Array | undefined;
  readonly localCertHash: Uint8Array | undefined;
}

/** Tuning of the adapter. */
export interface WireStreamLimits {
  /** Largest frame accepted. */
  readonly maxMessageBytes: number;
  /** Envelopes decoded ahead of the consumer before reading pauses. */
  readonly recvBuffSize: number;
  /** Whether the remote announced `grpc-encoding: gzip` for its messages. */
  readonly gzip: boolean;
}

/**
 * Bytes a stream may hold in its write buffer (not yet handed to nghttp2)
 * before `write` waits for 'drain'. Above Node's 16 KiB stream high-water
 * mark, so that a busy connection puts several send-buffer batches into one
 * HTTP/2 write (the write size of the raw benchmark limit), and small enough
 * to bound what a connection holds beyond its send buffer.
 */
const maxBufferedBytes = 64 * 1024;

/**
 * Bytes still in the write buffer from which a stream counts as busy, and
 * new frames wait for the loop's check phase to leave together: one
 * HTTP/2 frame's worth (16 KiB, the default maximum frame size).
 */
const busyBufferedBytes = 16 * 1024;

/**
 * @private Base of the client and server adapters: reading, writing and the
 * closed state. Subclasses provide half-close and abort. Its `incoming` is
 * itself, and `closed` is made when first asked for: an idle stream keeps
 * neither an iterator nor a promise of its own.
 */
export abstract class Http2WireStream
  implements WireStream, FrameSink, AsyncIterable<readonly Envelope[]>, AsyncIterator<readonly Envelope[]>
{
  readonly remoteAddress: string;
  readonly tls: boolean;
  readonly remoteCertHash: Uint8Array | undefined;
  readonly localCertHash: Uint8Array | undefined;

  private readonly decoder: FrameDecoder;
  private ready: Envelope[] = [];
  private paused = false;
  private readEnded = false;
  private readError: GossipError | undefined;
  private waiter: { resolve: (r: IteratorResult<readonly Envelope[]>) => void; reject: (e: unknown) => void } | undefined;
  /** Where incoming envelopes go when pushed (see `readBy`), rather than to `incoming`. */
  protected reader: WireReader | undefined;
  /** The reader holds a delivery, or is about to be first called: nothing more goes to it meanwhile. */
  private readerHeld = false;
  /** Pushing to the reader now (a reader's call may end or fail reading: the loop picks that up). */
  private pushing = false;
  /** The reader was told the end or the failure. */
  private readerDone = false;
  private isClosed = false;
  /** Writers waiting for 'drain'; made when one first waits. */
  private drainWaiters: { resolve: () => void; reject: (e: GossipError) => void }[] | undefined;
  /** Frames taken by `write` and not yet framed into a chunk (see `write`). */
  private held: Uint8Array[] = [];
  private heldBytes = 0;
  private flushQueued = false;
  private closedPromise: Promise<void> | undefined;
  private resolveClosed: (() => void) | undefined;
  private iterated = false;

  constructor(
    facts: StreamFacts,
    private readonly limits: WireStreamLimits,
    /** The HTTP/2 stream: DATA arrives on it, it emits 'drain' when writes may continue and 'close' once when it is gone. */
    private readonly source: Duplex,
  ) {
    this.remoteAddress = facts.remoteAddress;
    this.tls = facts.tls;
    this.remoteCertHash = facts.remoteCertHash;
    this.localCertHash = facts.localCertHash;
    this.decoder = new FrameDecoder(limits.maxMessageBytes, limits.gzip);
    // Shared listeners that find us through the stream rather than closures
    // per stream: an idle connection keeps its listeners for its whole life.
    // `on`, not `once`, for events emitted once anyway: `once` wraps each
    // listener in a bound function and a state object.
    (source as Owned)[kOwner] = this;
    source.on("close", onSourceClose);
    source.on("data", onSourceData);
    source.on("end", onSourceEnd);
    source.on("error", ignore); // reported through 'close' and the stream's status
    source.on("drain", onSourceDrain);
  }

  get closed(): Promise<void> {
    this.closedPromise ??= this.isClosed ? settledPromise : new Promise((resolve) => (this.resolveClosed = resolve));
    return this.closedPromise;
  }

  get incoming(): AsyncIterable<readonly Envelope[]> {
    return this;
  }

  /** @private `incoming`, iterable once. */
  [Symbol.asyncIterator](): AsyncIterator<readonly Envelope[]> {
    if (this.iterated || this.reader) throw new Error("a WireStream's incoming can be iterated only once");
    this.iterated = true;
    return this;
  }

  /** @private The next batch of `incoming`. */
  next(): Promise<IteratorResult<readonly Envelope[]>> {
    const r = this.take();
    if (r) return Promise.resolve(r);
    if (this.readError && this.ready.length === 0) return Promise.reject(this.readError);
    return new Promise((resolve, reject) => {
      this.waiter = { resolve, reject };
    });
  }

  /**
   * Takes the batch at once while what this stream holds (frames not yet
   * framed, plus its write buffer) stays under `maxBufferedBytes`: the frames
   * wait for the end of the tick, so that the batches a busy sender hands
   * over meanwhile leave in one framed buffer and one HTTP/2 write (a fast
   * sender's send buffer fills and writes many times in one tick). Beyond the
   * bound, everything held goes out now and the caller waits for 'drain'.
   */
  write(envelopes: readonly Uint8Array[]): Promise<void> {
    if (this.isClosed || !this.writable()) {
      return Promise.reject(new GossipError(ErrorCode.Closed, "stream is closed"));
    }
    for (const e of envelopes) {
      this.held.push(e);
      this.heldBytes += frameHeaderBytes + e.length;
    }
    const buffered = this.bufferedBytes();
    if (this.heldBytes + buffered < maxBufferedBytes) {
      if (!this.flushQueued) {
        this.flushQueued = true;
        // While earlier writes of at least an HTTP/2 frame's worth are still
        // on their way (busy), until the loop's next check phase: the batches
        // the other reads of this turn hand over join this one (a relay
        // writes what each read brought, a few KiB, otherwise). Any other
        // stream writes within the tick: a lone reply whose previous message
        // is still being flushed must not wait (W3's echo lost ~20 us p50
        // when any buffered byte counted as busy).
        if (buffered >= busyBufferedBytes) setImmediate(flushHeld, this);
        else process.nextTick(flushHeld, this);
      }
      return writeTaken;
    }
    let ok: boolean;
    try {
      ok = this.flushHeld();
    } catch (e) {
      return Promise.reject(GossipError.from(e, ErrorCode.Closed));
    }
    if (ok || this.bufferedBytes() < maxBufferedBytes) return writeTaken;
    this.drainWaiters ??= [];
    const waiters = this.drainWaiters;
    return new Promise((resolve, reject) => waiters.push({ resolve, reject }));
  }

  /**
   * Writes the frames `write` holds, in one write (of one chunk, or of the
   * pieces of {@link framePieces}); false when the caller
   * should wait for 'drain'. Subclasses call it before they end the stream.
   * Frames held when the stream can no longer write are discarded, as the
   * stream's own write buffer would be.
   */
  protected flushHeld(): boolean {
    this.flushQueued = false;
    const frames = this.held;
    if (frames.length === 0) return true;
    this.held = [];
    this.heldBytes = 0;
    if (this.isClosed || !this.writable()) return true;
    const pieces = framedPieces(frames);
    if (pieces.length === 1) return this.writeChunk(pieces[0] as Buffer);
    // Corked: the pieces reach the HTTP/2 stream as one vectored write.
    this.source.cork();
    let ok = true;
    try {
      for (const piece of pieces) ok = this.writeChunk(piece);
    } finally {
      this.source.uncork();
    }
    return ok;
  }

  /** @private The end-of-tick write of {@link Http2WireStream.write}. */
  onFlushQueued(): void {
    if (!this.flushQueued) return;
    try {
      this.flushHeld();
    } catch (e) {
      const error = GossipError.from(e, ErrorCode.Closed);
      this.failRead(error);
      this.abort(error);
    }
  }

  abstract end(): void;
  abstract abort(error?: GossipError): void;

  /** True while our side may still write. */
  protected abstract writable(): boolean;
  /** Writes one chunk; false when the caller should wait for 'drain'. */
  protected abstract writeChunk(buf: Buffer): boolean;
  /** Bytes written and not yet taken by the HTTP/2 session. */
  protected abstract bufferedBytes(): number;

  /**
   * Ends reading with `error` (subclasses call it for a non-OK status); the
   * consumer's iteration throws it once buffered envelopes are consumed.
   */
  protected failRead(error: GossipError): void {
    if (this.readError || this.readEnded) return;
    this.readError = error;
    this.wakeReader();
  }

  /** @private The HTTP/2 stream closed (its 'close' event). */
  sourceClosed(): void {
    if (this.isClosed) return;
    this.isClosed = true;
    this.onClosed();
    this.resolveClosed?.();
    this.resolveClosed = undefined;
  }

  /** Called once when the HTTP/2 stream closed. */
  protected onClosed(): void {
    if (!this.readEnded && !this.readError) {
      this.readError = this.closeError();
    }
    this.wakeReader();
    const waiters = this.drainWaiters;
    this.drainWaiters = undefined;
    for (const w of waiters ?? []) w.reject(new GossipError(ErrorCode.Closed, "stream is closed"));
  }

  /** The error reading ends with when the stream closes before its end (each side maps it in its errors module). */
  protected abstract closeError(): GossipError;

  /** @private DATA arrived (the stream's 'data' event). */
  onData(chunk: Buffer): void {
    if (this.readError) return;
    try {
      this.decoder.each(chunk, this);
    } catch (e) {
      const error = GossipError.from(e, ErrorCode.MalformedFrame);
      this.failRead(error);
      this.abort(error);
      return;
    }
    if (this.ready.length === 0) return;
    if (this.waiter || (this.reader && !this.readerHeld)) this.wakeReader();
    if (this.ready.length >= this.limits.recvBuffSize && !this.paused) {
      this.paused = true;
      this.source.pause();
    }
  }

  /**
   * @private {@link FrameSink}: one message, `buf[start, end)`, decoded
   * straight from the chunk it came in (its fields are views of it).
   */
  onFrame(buf: Uint8Array, start: number, end: number): void {
    this.ready.push(decodeEnvelopeIn(buf, start, end));
  }

  /** Subclasses may refuse a clean end (a client without a gRPC status, say). */
  protected endError(): GossipError | undefined {
    return undefined;
  }

  /** Accepts gzip-compressed frames from now on. */
  protected allowGzip(): void {
    this.decoder.allowGzip();
  }

  /** @private The remote ended its side (the stream's 'end' event). */
  onEnd(): void {
    const refused = this.endError();
    if (refused) {
      this.failRead(refused);
      return;
    }
    if (this.decoder.pending) {
      const error = new GossipError(ErrorCode.MalformedFrame, "stream ended inside a gRPC frame");
      this.failRead(error);
      this.abort(error);
      return;
    }
    this.readEnded = true;
    this.wakeReader();
  }

  readBy(reader: WireReader): void {
    if (this.reader || this.waiter) throw new Error("readBy: the stream is already being read");
    this.reader = reader;
    this.readerHeld = true;
    // As a pending next() would be resolved: in a later microtask.
    queueMicrotask(() => {
      this.readerHeld = false;
      this.push();
    });
  }

  /**
   * Hands the reader what is ready, a batch at a time until it holds one,
   * then the end or the failure once every batch went.
   */
  private push(): void {
    const reader = this.reader;
    if (reader === undefined || this.pushing || this.readerDone) return;
    this.pushing = true;
    try {
      while (!this.readerHeld) {
        const batch = this.takeReady();
        if (batch !== undefined) {
          const held = reader.onBatch(batch);
          if (held !== undefined) {
            this.readerHeld = true;
            void held.then(() => {
              this.readerHeld = false;
              this.push();
            });
          }
          continue;
        }
        if (this.readError) {
          this.readerDone = true;
          reader.onError(this.readError);
        } else if (this.readEnded) {
          this.readerDone = true;
          reader.onEnd();
        }
        return;
      }
    } finally {
      this.pushing = false;
    }
  }

  private take(): IteratorResult<readonly Envelope[]> | undefined {
    const batch = this.takeReady();
    if (batch !== undefined) return { value: batch, done: false };
    if (this.readEnded && !this.readError) return { value: undefined, done: true };
    return undefined;
  }

  /** The envelopes decoded ahead, if any; reading resumes if it paused. */
  private takeReady(): Envelope[] | undefined {
    if (this.ready.length === 0) return undefined;
    const batch = this.ready;
    this.ready = [];
    if (this.paused) {
      this.paused = false;
      this.source.resume();
    }
    return batch;
  }

  private wakeReader(): void {
    if (this.reader) {
      this.push();
      return;
    }
    const w = this.waiter;
    if (!w) return;
    const r = this.take();
    if (r) {
      this.waiter = undefined;
      w.resolve(r);
    } else if (this.readError) {
      this.waiter = undefined;
      w.reject(this.readError);
    }
  }

  /** @private Writes may go on (the stream's 'drain' event). */
  wakeWriters(): void {
    const waiters = this.drainWaiters;
    if (waiters === undefined) return;
    this.drainWaiters = undefined;
    for (const w of waiters) w.resolve();
  }
}

function ignore(): void {}

const settledPromise: Promise<void> = Promise.resolve();

/** Largest framing {@link framedPieces} keeps for the next stream (bounds what an idle process retains). */
const maxSharedChunkBytes = 256 * 1024;
let lastFrames: readonly Uint8Array[] = [];
let lastPieces: Buffer[] | undefined;

/**
 * The frames framed for one write ({@link framePieces}: views of the frames
 * that lie framed in place, copies of the others). A fan-out (`Comm.send` to
 * many peers) hands the same frame objects, in the same batches, to every
 * peer's stream: the pieces framed for the previous stream are written again
 * as they are (pieces are never changed once framed, and frames are
 * immutable encoded envelopes), so that the process copies each batch at most
 * once and not once per peer, as a hand-written fan-out writing one buffer to
 * every stream would.
 */
function framedPieces(frames: readonly Uint8Array[]): Buffer[] {
  const last = lastFrames;
  if (lastPieces !== undefined && last.length === frames.length) {
    let same = true;
    for (let i = 0; i < frames.length; i++) {
      if (frames[i] !== last[i]) {
        same = false;
        break;
      }
    }
    if (same) return lastPieces;
  }
  const pieces = framePieces(frames);
  let bytes = 0;
  for (const p of pieces) bytes += p.length;
  if (bytes <= maxSharedChunkBytes) {
    lastFrames = frames;
    lastPieces = pieces;
  } else {
    lastFrames = [];
    lastPieces = undefined;
  }
  return pieces;
}

function flushHeld(stream: Http2WireStream): void {
  stream.onFlushQueued();
}

const kOwner = Symbol("gossip-connect wire stream");
type Owned = Duplex & { [kOwner]: Http2WireStream };

/** @private The wire stream adapting `stream`, for listeners shared by every stream (subclasses). */
export function wireStreamOf(stream: Duplex): Http2WireStream | undefined {
  return (stream as Partial<Owned>)[kOwner];
}

function onSourceClose(this: Owned): void {
  this[kOwner].sourceClosed();
}
function onSourceData(this: Owned, chunk: Buffer): void {
  this[kOwner].onData(chunk);
}
function onSourceEnd(this: Owned): void {
  this[kOwner].onEnd();
}
function onSourceDrain(this: Owned): void {
  this[kOwner].wakeWriters();
}
