/**
 * One stream of the in-memory transport ({@link MemoryNetwork}): two ends,
 * a pipe per direction with a flow-control window, half-close, abort, and
 * what each end observes when the other refuses the stream.
 *
 * @private Internal code of the memory transport.
 */
import type { Envelope } from "../gen/gossip/message_pb.js";
import type { Clock } from "./clock.js";
import { decodeEnvelope } from "./envelope.js";
import { ErrorCode, GossipError, remoteEndError } from "./errors.js";
import { noItems, pushed, shifted } from "./lazy-list.js";
import { type WireReader, type WireStream, writeTaken } from "./transport.js";

export interface EndInfo {
  readonly remoteAddress: string;
  readonly tls: boolean;
  readonly remoteCertHash: Uint8Array | undefined;
  readonly localCertHash: Uint8Array | undefined;
}

/** One direction of a stream: frames written by one end, read by the other. */
class Pipe {
  /**
   * Batches not yet read, and their sizes; the shared empty list (lazy-list.ts)
   * while there are none, again once drained (a drained array keeps its grown
   * capacity, per stream end).
   */
  batches: readonly Envelope[][] = noItems;
  /** Bytes written and not yet read (the flow-control window's use). */
  inFlight = 0;
  sizes: readonly number[] = noItems;
  writerEnded = false;
  /** Set when the reader's iteration must fail. */
  error: GossipError | undefined;
  readerDone = false;
  /** The reader waiting for a batch: its read's settle functions (no closure per wait). */
  waiting: { resolve: (r: IteratorResult<readonly Envelope[]>) => void; reject: (e: unknown) => void } | undefined;
  /** The reader batches are pushed to, once the end took {@link WireStream.readBy}. */
  reader: WireReader | undefined;
  /** The reader holds back the next batch (its last `onBatch` promise is pending). */
  holding = false;
  /** A push is scheduled in a microtask. */
  pushing = false;
  writeWaiters: readonly { readonly resolve: () => void; readonly reject: (e: GossipError) => void }[] = noItems;
}

/** A stream between two ends (0 = client, 1 = server). */
export class MemoryConnection {
  /** pipes[i] carries what end i writes. */
  private readonly pipes = [new Pipe(), new Pipe()] as const;
  private readonly endedWriting = [false, false];
  private closedFlag = false;
  /** What the ends' `closed` return, made on first read (see {@link closedSignal}). */
  private closedPromise: Promise<void> | undefined;
  private resolveClosed: (() => void) | undefined;
  private deadlineTimer: unknown;

  constructor(
    private readonly clock: Clock,
    private readonly latencyMs: number,
    private readonly windowBytes: number,
    readonly clientHost: string,
    readonly serverHost: string,
    /** Told once the stream closed (an owner rather than a closure and its context per stream). */
    private readonly owner: { streamClosed(conn: MemoryConnection): void },
    /** The streams of the listener it was opened to, which it leaves when it closes. */
    private readonly serverStreams: Set<MemoryConnection>,
  ) {}

  get isClosed(): boolean {
    return this.closedFlag;
  }

  /**
   * Cuts the stream after `ms` (the deadline a dialer may set), as the gRPC
   * client does: its reader fails with `HandshakeTimeout`, the server's sees
   * the cancel.
   */
  deadline(ms: number): void {
    this.deadlineTimer = this.clock.setTimeout(() => {
      this.abortFrom(0, new GossipError(ErrorCode.HandshakeTimeout, `stream exceeded its ${ms}ms deadline`));
    }, ms);
  }

  /** The connection dropped under both ends (partition, crash, lost link). */
  cut(why: string): void {
    if (this.closedFlag) return;
    this.fail(0, new GossipError(ErrorCode.Canceled, `stream was closed: ${why}`));
    this.fail(1, new GossipError(ErrorCode.Canceled, `stream was closed: ${why}`));
    this.close();
  }

  end(side: 0 | 1, info: EndInfo): WireStream {
    return new MemoryEnd(this, side, info);
  }

  /**
   * Settles once the stream closed: made on first read, as a connection
   * reads it only when it closes (a promise, its resolve closure and context
   * per stream for good otherwise). @private for {@link MemoryEnd}
   */
  closedSignal(): Promise<void> {
    this.closedPromise ??= this.closedFlag
      ? Promise.resolve()
      : new Promise<void>((resolve) => {
          this.resolveClosed = resolve;
        });
    return this.closedPromise;
  }

  /** Reads the batches end `side` receives. @private for {@link MemoryEnd} */
  readFor(side: 0 | 1): Promise<IteratorResult<readonly Envelope[]>> {
    return this.read(this.pipes[side === 0 ? 1 : 0]);
  }

  /** Pushes what end `side` receives to `reader` from now on. @private for {@link MemoryEnd} */
  readBy(side: 0 | 1, reader: WireReader): void {
    const pipe = this.pipes[side === 0 ? 1 : 0];
    if (pipe.reader !== undefined || pipe.waiting !== undefined)
      throw new Error("a WireStream is read once: readBy with a read pending or twice");
    pipe.reader = reader;
    this.schedulePush(pipe);
  }

  /** Writes from end `side`. @private for {@link MemoryEnd} */
  writeFrom(side: 0 | 1, envelopes: readonly Uint8Array[]): Promise<void> {
    return this.write(side, this.pipes[side], envelopes);
  }

  /** Half-closes end `side`. @private for {@link MemoryEnd} */
  endFrom(side: 0 | 1): void {
    this.endSide(side);
  }

  /** Aborts from end `side`. @private for {@link MemoryEnd} */
  abortBy(side: 0 | 1, error: GossipError | undefined): void {
    this.abortFrom(side, error);
  }

  private write(side: 0 | 1, pipe: Pipe, envelopes: readonly Uint8Array[]): Promise<void> {
    if (this.closedFlag || this.endedWriting[side]) return Promise.reject(new GossipError(ErrorCode.Closed, "stream is closed"));
    if (envelopes.length === 0) return writeTaken;
    let bytes = 0;
    for (const e of envelopes) bytes += e.length;
    pipe.inFlight += bytes;
    if (this.latencyMs > 0) {
      // The writer may reuse its array once the write returns.
      const frames = envelopes.slice();
      this.clock.setTimeout(() => this.arrive(side, pipe, frames, bytes), this.latencyMs);
    } else {
      // Without latency the frames arrive now, within the write: no copy of
      // the array and no closure (one of each per write of a simulation).
      this.arrive(side, pipe, envelopes, bytes);
    }
    if (pipe.inFlight <= this.windowBytes) return writeTaken;
    return new Promise((resolve, reject) => {
      pipe.writeWaiters = pushed(pipe.writeWaiters, { resolve, reject });
    });
  }

  /** Frames written by end `side` (`bytes` in all) reach `pipe`'s reader, decoded as a socket transport decodes them. */
  private arrive(side: 0 | 1, pipe: Pipe, frames: readonly Uint8Array[], bytes: number): void {
    if (pipe.readerDone || pipe.error) return;
    const batch: Envelope[] = [];
    let failure: GossipError | undefined;
    for (const f of frames) {
      try {
        batch.push(decodeEnvelope(f));
      } catch (e) {
        failure = GossipError.from(e, ErrorCode.MalformedFrame);
        break;
      }
    }
    if (batch.length > 0) {
      pipe.batches = pushed(pipe.batches, batch);
      pipe.sizes = pushed(pipe.sizes, bytes);
    }
    // As a socket transport does with a frame it cannot decode: the reader
    // gets the envelopes before it, then aborts the stream.
    if (failure) this.abortFrom(side === 0 ? 1 : 0, failure);
    else this.wake(pipe);
  }

  private read(pipe: Pipe): Promise<IteratorResult<readonly Envelope[]>> {
    const batch = shifted(pipe.batches);
    if (batch !== undefined) {
      pipe.inFlight -= shifted(pipe.sizes) ?? 0;
      if (pipe.batches.length === 0) {
        pipe.batches = noItems;
        pipe.sizes = noItems;
      }
      this.releaseWriters(pipe);
      return Promise.resolve({ done: false, value: batch });
    }
    if (pipe.error) {
      const e = pipe.error;
      pipe.readerDone = true;
      return Promise.reject(e);
    }
    if (pipe.writerEnded || pipe.readerDone) {
      pipe.readerDone = true;
      return Promise.resolve({ done: true, value: undefined });
    }
    return new Promise((resolve, reject) => {
      pipe.waiting = { resolve, reject };
    });
  }

  private releaseWriters(pipe: Pipe): void {
    while (pipe.writeWaiters.length > 0 && pipe.inFlight <= this.windowBytes) shifted(pipe.writeWaiters)?.resolve();
  }

  private endSide(side: 0 | 1): void {
    if (this.closedFlag || this.endedWriting[side]) return;
    this.endedWriting[side] = true;
    const pipe = this.pipes[side];
    this.deliver(() => {
      pipe.writerEnded = true;
      this.wake(pipe);
      if (this.endedWriting[0] && this.endedWriting[1]) this.close();
    });
  }

  /**
   * What each end observes of an abort, as over gRPC: a server's abort with
   * an error reaches the client as that refusal (its code carried as
   * `remoteCode`), without one as a clean end (status OK); a client's abort
   * is a cancel for the server, whatever its reason. The aborting end's own
   * reader fails with its error, or `Canceled`.
   */
  private abortFrom(side: 0 | 1, error: GossipError | undefined): void {
    if (this.closedFlag) return;
    const other = side === 0 ? 1 : 0;
    if (side === 0) this.fail(other, new GossipError(ErrorCode.Canceled, "stream was cancelled by the remote"));
    else if (error !== undefined) this.fail(other, remoteEndError(error.code, `remote ended the stream (${error.code}): ${error.message}`));
    else this.pipes[1].writerEnded = true;
    this.fail(side, error ?? new GossipError(ErrorCode.Canceled, "stream was closed"));
    this.close();
  }

  /** Ends end `reader`'s iteration with `error` (after what it already received) unless it ended cleanly. */
  private fail(reader: 0 | 1, error: GossipError): void {
    const pipe = this.pipes[reader === 0 ? 1 : 0];
    if (pipe.error || pipe.readerDone || pipe.writerEnded) {
      this.wake(pipe);
      return;
    }
    pipe.error = error;
    this.wake(pipe);
  }

  private close(): void {
    if (this.closedFlag) return;
    this.closedFlag = true;
    this.clock.clearTimeout(this.deadlineTimer);
    for (const pipe of this.pipes) {
      const waiters = pipe.writeWaiters;
      pipe.writeWaiters = noItems;
      for (const w of waiters) w.reject(new GossipError(ErrorCode.Closed, "stream is closed"));
      this.wake(pipe);
    }
    this.serverStreams.delete(this);
    this.owner.streamClosed(this);
    this.resolveClosed?.();
    this.resolveClosed = undefined;
  }

  private wake(pipe: Pipe): void {
    if (pipe.reader !== undefined) {
      this.schedulePush(pipe);
      return;
    }
    const w = pipe.waiting;
    if (w === undefined) return;
    pipe.waiting = undefined;
    this.read(pipe).then(w.resolve, w.reject);
  }

  /**
   * Pushes in a microtask, never within the call that woke the pipe: a
   * write delivers at once when there is no latency, and the reader must not
   * run inside its peer's write (nor inside `readBy`).
   */
  private schedulePush(pipe: Pipe): void {
    if (pipe.pushing || pipe.holding) return;
    pipe.pushing = true;
    queueMicrotask(() => {
      pipe.pushing = false;
      this.push(pipe);
    });
  }

  /** Hands the reader every batch it does not hold back, then the end or the failure once. */
  private push(pipe: Pipe): void {
    const reader = pipe.reader;
    if (reader === undefined || pipe.holding || pipe.readerDone) return;
    for (;;) {
      const batch = shifted(pipe.batches);
      if (batch === undefined) break;
      pipe.inFlight -= shifted(pipe.sizes) ?? 0;
      if (pipe.batches.length === 0) {
        pipe.batches = noItems;
        pipe.sizes = noItems;
      }
      this.releaseWriters(pipe);
      const held = reader.onBatch(batch);
      if (held !== undefined) {
        pipe.holding = true;
        void held.then(() => {
          pipe.holding = false;
          this.push(pipe);
        });
        return;
      }
    }
    if (pipe.error !== undefined) {
      pipe.readerDone = true;
      reader.onError(pipe.error);
    } else if (pipe.writerEnded) {
      pipe.readerDone = true;
      reader.onEnd();
    }
  }

  private deliver(fn: () => void): void {
    if (this.latencyMs > 0) this.clock.setTimeout(fn, this.latencyMs);
    else fn();
  }
}

/**
 * One end of a {@link MemoryConnection}: a class rather than an object of
 * closures, as the simulations hold one per connection end (a million at
 * 1,000 fully connected peers). Its `incoming` is itself.
 */
class MemoryEnd implements WireStream, AsyncIterable<readonly Envelope[]>, AsyncIterator<readonly Envelope[]> {
  readonly remoteAddress: string;
  readonly tls: boolean;
  readonly remoteCertHash: Uint8Array | undefined;
  readonly localCertHash: Uint8Array | undefined;
  private iterated = false;

  constructor(
    private readonly conn: MemoryConnection,
    private readonly side: 0 | 1,
    info: EndInfo,
  ) {
    this.remoteAddress = info.remoteAddress;
    this.tls = info.tls;
    this.remoteCertHash = info.remoteCertHash;
    this.localCertHash = info.localCertHash;
  }

  get closed(): Promise<void> {
    return this.conn.closedSignal();
  }

  get incoming(): AsyncIterable<readonly Envelope[]> {
    return this;
  }

  [Symbol.asyncIterator](): AsyncIterator<readonly Envelope[]> {
    if (this.iterated) throw new Error("a WireStream's incoming can be iterated only once");
    this.iterated = true;
    return this;
  }

  next(): Promise<IteratorResult<readonly Envelope[]>> {
    return this.conn.readFor(this.side);
  }

  readBy(reader: WireReader): void {
    this.conn.readBy(this.side, reader);
  }

  write(envelopes: readonly Uint8Array[]): Promise<void> {
    return this.conn.writeFrom(this.side, envelopes);
  }

  end(): void {
    this.conn.endFrom(this.side);
  }

  abort(error?: GossipError): void {
    this.conn.abortBy(this.side, error);
  }
}
