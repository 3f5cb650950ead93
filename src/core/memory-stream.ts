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

/** Who the two ends of a {@link MemoryConnection} are. */
export interface StreamEnds {
  /** The dialing host's name. */
  readonly clientHost: string;
  /** The listening host's name. */
  readonly serverHost: string;
  /** The address the client sees: the endpoint it dialed. */
  readonly serverAddress: string;
  /** The address the server sees: the client's host and an ephemeral port. */
  readonly clientAddress: string;
  /** The client's and the server's certificate hashes (TLS when both have one). */
  readonly clientCertHash: Uint8Array | undefined;
  readonly serverCertHash: Uint8Array | undefined;
}

/** What a {@link MemoryConnection} takes from its network (one reference rather than three per stream). */
export interface StreamNetwork {
  readonly clock: Clock;
  /** One-way delay of every batch, in ms. */
  readonly latencyMs: number;
  /** Bytes in flight per direction before a write waits. */
  readonly windowBytes: number;
}

// A pipe's (and its end's) flags, in one small integer rather than a field each.
const WRITER_ENDED = 1;
const READER_DONE = 2;
const HOLDING = 4;
const PUSHING = 8;
/** The end's `incoming` was iterated. */
const ITERATED = 16;
/** The end ended its writing side (its frames' pipe is the other end's). */
const ENDED_WRITING = 32;
/** The end took {@link WireStream.readBy}: batches are pushed to its reader. */
const PUSHED = 64;
/** The end is the server's (side 1): a bit of the flags rather than a field per end. */
const SERVER_SIDE = 128;

/** A pull waiting for a batch: its read's settle functions. */
interface Waiting {
  readonly resolve: (r: IteratorResult<readonly Envelope[]>) => void;
  readonly reject: (e: unknown) => void;
}

/**
 * One direction of a stream: frames written by one end, read by the other.
 * It is the reading end's own state (a {@link MemoryEnd} is its pipe): one
 * object per stream end rather than two.
 */
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
  /** Set when the reader's iteration must fail. */
  error: GossipError | undefined;
  /** {@link Pipe.reader} or {@link Pipe.waiting}, which one the PUSHED flag says: an end is read one way. */
  private consumer: WireReader | Waiting | undefined;
  writeWaiters: readonly { readonly resolve: () => void; readonly reject: (e: GossipError) => void }[] = noItems;
  /** The flags above (WRITER_ENDED ...). */
  protected bits = 0;

  get writerEnded(): boolean {
    return (this.bits & WRITER_ENDED) !== 0;
  }
  set writerEnded(on: boolean) {
    this.flag(WRITER_ENDED, on);
  }
  get readerDone(): boolean {
    return (this.bits & READER_DONE) !== 0;
  }
  set readerDone(on: boolean) {
    this.flag(READER_DONE, on);
  }
  /** The reader holds back the next batch (its last `onBatch` promise is pending). */
  get holding(): boolean {
    return (this.bits & HOLDING) !== 0;
  }
  set holding(on: boolean) {
    this.flag(HOLDING, on);
  }
  /** A push is scheduled in a microtask. */
  get pushing(): boolean {
    return (this.bits & PUSHING) !== 0;
  }
  set pushing(on: boolean) {
    this.flag(PUSHING, on);
  }
  /** The other end (the writer of this pipe) ended its writing side; set at once, before the end is delivered. */
  get writerEnding(): boolean {
    return (this.bits & ENDED_WRITING) !== 0;
  }
  set writerEnding(on: boolean) {
    this.flag(ENDED_WRITING, on);
  }

  /** The reader batches are pushed to, once the end took {@link WireStream.readBy}. */
  get reader(): WireReader | undefined {
    return (this.bits & PUSHED) !== 0 ? (this.consumer as WireReader) : undefined;
  }
  set reader(reader: WireReader | undefined) {
    this.consumer = reader;
    this.flag(PUSHED, reader !== undefined);
  }
  /** The reader waiting for a batch: its read's settle functions (no closure per wait); never once pushed to. */
  get waiting(): Waiting | undefined {
    return (this.bits & PUSHED) === 0 ? (this.consumer as Waiting | undefined) : undefined;
  }
  set waiting(waiting: Waiting | undefined) {
    // An end pushed to never resolves a pull (as before: a wake pushes instead).
    if ((this.bits & PUSHED) === 0) this.consumer = waiting;
  }

  protected flag(bit: number, on: boolean): void {
    this.bits = on ? this.bits | bit : this.bits & ~bit;
  }
}

/** A stream between two ends (0 = client, 1 = server). */
export class MemoryConnection implements StreamEnds {
  readonly clientHost: string;
  readonly serverAddress: string;
  readonly clientAddress: string;
  readonly clientCertHash: Uint8Array | undefined;
  readonly serverCertHash: Uint8Array | undefined;
  /** End 0; its pipe carries what end 1 writes. */
  private readonly client: MemoryEnd;
  /** End 1; its pipe carries what end 0 writes. */
  private readonly server: MemoryEnd;
  private closedFlag = false;
  /**
   * What the ends' `closed` return (see {@link closedSignal}) and a dialer's
   * deadline timer: made when first needed, one field rather than three.
   */
  private rare: { closed: Promise<void> | undefined; resolveClosed: (() => void) | undefined; deadline: unknown } | undefined;

  constructor(
    private readonly net: StreamNetwork,
    /** Who the ends are (copied into the stream: its ends read them there). */
    ends: StreamEnds,
    /** The streams of the listener it was opened to, which it leaves when it closes. */
    private readonly serverStreams: Set<MemoryConnection>,
  ) {
    this.clientHost = ends.clientHost;
    this.serverAddress = ends.serverAddress;
    this.clientAddress = ends.clientAddress;
    this.clientCertHash = ends.clientCertHash;
    this.serverCertHash = ends.serverCertHash;
    this.client = new MemoryEnd(this, 0);
    this.server = new MemoryEnd(this, 1);
  }

  /** The listening host's name: the host of the endpoint dialed (read rarely: not kept). */
  get serverHost(): string {
    return hostOf(this.serverAddress);
  }

  private rareFields(): NonNullable<MemoryConnection["rare"]> {
    this.rare ??= { closed: undefined, resolveClosed: undefined, deadline: undefined };
    return this.rare;
  }

  /** The pipe that carries what end `side` writes: the other end's. */
  private pipes(side: 0 | 1): Pipe {
    return side === 0 ? this.server : this.client;
  }

  get isClosed(): boolean {
    return this.closedFlag;
  }

  /**
   * Cuts the stream after `ms` (the deadline a dialer may set), as the gRPC
   * client does: its reader fails with `HandshakeTimeout`, the server's sees
   * the cancel.
   */
  deadline(ms: number): void {
    this.rareFields().deadline = this.net.clock.setTimeout(() => {
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

  /** End `side` (0 = client, 1 = server). */
  end(side: 0 | 1): WireStream {
    return side === 0 ? this.client : this.server;
  }

  /**
   * Settles once the stream closed: made on first read, as a connection
   * reads it only when it closes (a promise, its resolve closure and context
   * per stream for good otherwise). @private for {@link MemoryEnd}
   */
  closedSignal(): Promise<void> {
    if (this.closedFlag) return closedAlready;
    const rare = this.rareFields();
    rare.closed ??= new Promise<void>((resolve) => {
      rare.resolveClosed = resolve;
    });
    return rare.closed;
  }

  /** Reads the batches end `side` receives. @private for {@link MemoryEnd} */
  readFor(side: 0 | 1): Promise<IteratorResult<readonly Envelope[]>> {
    return this.read(this.pipes(side === 0 ? 1 : 0));
  }

  /** Pushes what end `side` receives to `reader` from now on. @private for {@link MemoryEnd} */
  readBy(side: 0 | 1, reader: WireReader): void {
    const pipe = this.pipes(side === 0 ? 1 : 0);
    if (pipe.reader !== undefined || pipe.waiting !== undefined)
      throw new Error("a WireStream is read once: readBy with a read pending or twice");
    pipe.reader = reader;
    this.schedulePush(pipe);
  }

  /** Writes from end `side`. @private for {@link MemoryEnd} */
  writeFrom(side: 0 | 1, envelopes: readonly Uint8Array[]): Promise<void> {
    return this.write(side, this.pipes(side), envelopes);
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
    if (this.closedFlag || pipe.writerEnding) return Promise.reject(new GossipError(ErrorCode.Closed, "stream is closed"));
    if (envelopes.length === 0) return writeTaken;
    let bytes = 0;
    for (const e of envelopes) bytes += e.length;
    pipe.inFlight += bytes;
    const { latencyMs } = this.net;
    if (latencyMs > 0) {
      // The writer may reuse its array once the write returns.
      const frames = envelopes.slice();
      this.net.clock.setTimeout(() => this.arrive(side, pipe, frames, bytes), latencyMs);
    } else {
      // Without latency the frames arrive now, within the write: no copy of
      // the array and no closure (one of each per write of a simulation).
      this.arrive(side, pipe, envelopes, bytes);
    }
    if (pipe.inFlight <= this.net.windowBytes) return writeTaken;
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
    while (pipe.writeWaiters.length > 0 && pipe.inFlight <= this.net.windowBytes) shifted(pipe.writeWaiters)?.resolve();
  }

  private endSide(side: 0 | 1): void {
    const pipe = this.pipes(side);
    if (this.closedFlag || pipe.writerEnding) return;
    pipe.writerEnding = true;
    this.deliver(() => {
      pipe.writerEnded = true;
      this.wake(pipe);
      if (this.client.writerEnding && this.server.writerEnding) this.close();
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
    else this.pipes(1).writerEnded = true;
    this.fail(side, error ?? new GossipError(ErrorCode.Canceled, "stream was closed"));
    this.close();
  }

  /** Ends end `reader`'s iteration with `error` (after what it already received) unless it ended cleanly. */
  private fail(reader: 0 | 1, error: GossipError): void {
    const pipe = this.pipes(reader === 0 ? 1 : 0);
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
    const rare = this.rare;
    if (rare !== undefined) this.net.clock.clearTimeout(rare.deadline);
    for (const pipe of [this.client, this.server]) {
      const waiters = pipe.writeWaiters;
      pipe.writeWaiters = noItems;
      for (const w of waiters) w.reject(new GossipError(ErrorCode.Closed, "stream is closed"));
      this.wake(pipe);
    }
    this.serverStreams.delete(this);
    const waited = this.rare;
    if (waited !== undefined) {
      waited.resolveClosed?.();
      waited.resolveClosed = undefined;
    }
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
    if (this.net.latencyMs > 0) this.net.clock.setTimeout(fn, this.net.latencyMs);
    else fn();
  }
}

const closedAlready: Promise<void> = Promise.resolve();

/** The host of `host:port` (or `[v6]:port`). */
export function hostOf(endpoint: string): string {
  if (endpoint.startsWith("[")) return endpoint.slice(1, endpoint.indexOf("]"));
  const i = endpoint.lastIndexOf(":");
  return i > 0 ? endpoint.slice(0, i) : endpoint;
}

/**
 * One end of a {@link MemoryConnection}, and the pipe of what it receives: a
 * class rather than an object of closures, as the simulations hold one per
 * connection end (a million at 1,000 fully connected peers). Its addresses
 * and certificate hashes are read from the stream's {@link StreamEnds}, its
 * `incoming` is itself.
 */
class MemoryEnd extends Pipe implements WireStream, AsyncIterable<readonly Envelope[]>, AsyncIterator<readonly Envelope[]> {
  constructor(
    private readonly conn: MemoryConnection,
    side: 0 | 1,
  ) {
    super();
    if (side === 1) this.bits |= SERVER_SIDE;
  }

  /** 0 = client, 1 = server. */
  private get side(): 0 | 1 {
    return (this.bits & SERVER_SIDE) !== 0 ? 1 : 0;
  }

  get remoteAddress(): string {
    return this.side === 0 ? this.conn.serverAddress : this.conn.clientAddress;
  }

  get tls(): boolean {
    return this.conn.clientCertHash !== undefined && this.conn.serverCertHash !== undefined;
  }

  get remoteCertHash(): Uint8Array | undefined {
    return this.side === 0 ? this.conn.serverCertHash : this.conn.clientCertHash;
  }

  get localCertHash(): Uint8Array | undefined {
    return this.side === 0 ? this.conn.clientCertHash : this.conn.serverCertHash;
  }

  get closed(): Promise<void> {
    return this.conn.closedSignal();
  }

  get incoming(): AsyncIterable<readonly Envelope[]> {
    return this;
  }

  [Symbol.asyncIterator](): AsyncIterator<readonly Envelope[]> {
    if ((this.bits & ITERATED) !== 0) throw new Error("a WireStream's incoming can be iterated only once");
    this.flag(ITERATED, true);
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
