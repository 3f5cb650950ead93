import { ErrorCode, GossipError } from "./errors.js";
import { noItems, pushed, removedAt, shifted } from "./lazy-list.js";
import { writeTaken } from "./transport.js";

/**
 * What a {@link SendBuffer} writes to and reports to. Its method names say
 * whose they are, so that an owner (a connection) can be its buffer's sink
 * itself rather than keep one more object per connection.
 */
export interface SendBufferSink {
  /**
   * Writes a batch, in order; resolves when the transport took it. Returning
   * {@link writeTaken} says the transport took it at once.
   */
  writeFrames(frames: readonly Uint8Array[]): Promise<void>;
  /** A batch was written. */
  framesWritten(count: number, bytes: number): void;
  /** Frames that had entered the buffer will never be written (close, or a failed write). */
  framesDropped(count: number): void;
  /** A write failed; the buffer closed itself (after reporting the frames it dropped). */
  writeFailed(error: GossipError): void;
}

/** A send buffer's bounds, as a comm's config names them (so that the config itself serves). */
export interface SendBufferLimits {
  /** Frames queued at most (the buffer's capacity). */
  readonly sendBuffSize: number;
  /** Puts allowed to wait for room at once. */
  readonly maxBlockedSends: number;
}

/**
 * Why a `put` never entered the queue: the buffer closed first, or
 * `maxWaiters` puts were already waiting for room when it was called.
 */
export type PutRefusal = "closed" | "overflow";

interface Waiter {
  readonly frame: Uint8Array;
  readonly resolve: () => void;
  readonly reject: (e: GossipError) => void;
  /** When given, a frame that never enters is reported here and the promise resolves instead of rejecting. */
  readonly dropped: ((why: PutRefusal) => void) | undefined;
}

/** A batch is being written (or the next write waits for the next turn). */
const WRITING = 1;
/** An idle buffer's write is scheduled (see `schedule`). */
const SCHEDULED = 2;
/** Closed: nothing enters any more. */
const CLOSED = 4;
/** Where the owner's bits ({@link SendQueue.ownerBits}) start: above the queue's three. */
const OWNER_SHIFT = 3;
/** How many bits the owner gets. */
const OWNER_BITS = 4;
const OWNER_MASK = (1 << OWNER_BITS) - 1;
/** Where the next-turn id starts: above the queue's flags and the owner's bits, all of which are `LOW_FLAGS`. */
const TURN_SHIFT = OWNER_SHIFT + OWNER_BITS;
const LOW_FLAGS = (1 << TURN_SHIFT) - 1;
/** Next-turn ids run 1..MAX_TURN: shifted, they stay a small integer (31 bits; 2^24 - 1 with 7 bits below). */
const MAX_TURN = 2 ** (31 - TURN_SHIFT) - 1;
/** Ids of next-turn writes (see `nextTurn`), from one process counter: no counter per buffer. */
let turnSeq = 0;

/**
 * A connection's bounded outgoing queue (Fabric's `outBuff`) and its single
 * writer. Guarantees:
 *
 * - At most `capacity` frames are queued; `offer` refuses beyond that, `put`
 *   waits for room. Blocked `put`s enter the queue in call order.
 * - At most `maxWaiters` `put`s wait for room: a caller that does not await
 *   its `put`s cannot make the buffer hold more than `capacity + maxWaiters`
 *   frames. A `put` beyond that is refused at once (`overflow`) and never
 *   enters; frames already queued or waiting are unaffected.
 * - Frames are written in the order they entered, by one writer, one batch at
 *   a time: an idle connection writes at the end of the current tick (after
 *   the promise jobs it started); after a
 *   write, what is queued meanwhile goes out in one transport write on the
 *   next turn of the event loop (or as soon as the queue is full and a `put`
 *   waits, when the transport took the last write at once), so a busy
 *   connection coalesces.
 * - Every frame that entered the queue is either written (reported through
 *   `written`) or, when the buffer closes or a write fails, reported as
 *   dropped; none disappears silently.
 */
export abstract class SendQueue {
  // The three lists start as the shared empty one (lazy-list.ts): most connections never wait or flush-wait.
  private queue: readonly Uint8Array[] = noItems;
  private waiters: readonly Waiter[] = noItems;
  /**
   * {@link WRITING}, {@link SCHEDULED} and {@link CLOSED} in the low bits, the
   * owner's four bits above them ({@link SendQueue.ownerBits}), the pending
   * next-turn write's id above those ({@link TURN_SHIFT}): one small integer
   * rather than four fields per connection, and the connection's own flags
   * in it rather than a field of their own (8 B per connection end).
   */
  private sendBits = 0;
  private idle: readonly (() => void)[] = noItems;
  private inFlight = 0;

  /**
   * The queue's bounds: those of many queues in one object (a comm's config:
   * its connections share it, read through their own collaborators rather
   * than kept in a field of each, 8 B per connection end).
   */
  protected abstract readonly limits: SendBufferLimits;

  /**
   * Four bits of the queue's state word left to the subclass (a connection
   * keeps its own flags there): 0 to 15.
   */
  protected get ownerBits(): number {
    return (this.sendBits >>> OWNER_SHIFT) & OWNER_MASK;
  }

  protected set ownerBits(bits: number) {
    this.sendBits = (this.sendBits & ~(OWNER_MASK << OWNER_SHIFT)) | ((bits & OWNER_MASK) << OWNER_SHIFT);
  }

  /** Writes a batch ({@link SendBufferSink.writeFrames}). */
  protected abstract writeFrames(frames: readonly Uint8Array[]): Promise<void>;
  /** {@link SendBufferSink.framesWritten}. */
  protected abstract framesWritten(count: number, bytes: number): void;
  /** {@link SendBufferSink.framesDropped}. */
  protected abstract framesDropped(count: number): void;
  /** {@link SendBufferSink.writeFailed}. */
  protected abstract writeFailed(error: GossipError): void;

  /** Frames it queues at most. */
  get capacity(): number {
    return this.limits.sendBuffSize;
  }

  /** Puts allowed to wait for room at once; more are refused (`overflow`). */
  get maxWaiters(): number {
    return this.limits.maxBlockedSends;
  }

  /** Id of the pending next-turn write (see `nextTurn`), 0 when none. */
  private get turn(): number {
    return this.sendBits >>> TURN_SHIFT;
  }

  private set turn(id: number) {
    this.sendBits = (this.sendBits & LOW_FLAGS) | (id << TURN_SHIFT);
  }

  /** Puts waiting for room. */
  get waiting(): number {
    return this.waiters.length;
  }

  /** Frames queued and not yet handed to the transport. */
  get size(): number {
    return this.queue.length;
  }

  /** Frames accepted and not yet written: queued, plus the batch the transport holds back (flow control). */
  get pending(): number {
    return this.queue.length + this.inFlight;
  }

  /**
   * True once closed; nothing enters any more. Protected: a connection,
   * which is a send queue, has its own state (a closed queue does not make
   * it closed); {@link SendBuffer} shows it as `isClosed`.
   */
  protected get queueClosed(): boolean {
    return (this.sendBits & CLOSED) !== 0;
  }

  /** Queues `frame` if there is room; false when full or closed (the frame is not taken). */
  offer(frame: Uint8Array): boolean {
    if ((this.sendBits & CLOSED) !== 0 || this.queue.length >= this.capacity || this.waiters.length > 0) return false;
    this.queue = pushed(this.queue, frame);
    this.schedule();
    return true;
  }

  /**
   * Queues `frame`, waiting for room. Rejects with `Closed` when the buffer
   * closes before the frame entered, and at once with `Overflow` when
   * `maxWaiters` puts already wait (unless `uncapped`: a frame some other
   * queue already accepted, which must not be lost to the cap); with
   * `dropped`, calls it with the reason instead and resolves (one promise
   * per blocked frame, none to catch the rejection).
   */
  put(frame: Uint8Array, dropped?: (why: PutRefusal) => void, uncapped = false): Promise<void> {
    if (this.offer(frame)) return writeTaken;
    if ((this.sendBits & CLOSED) !== 0) return refused(dropped);
    if (this.turn !== 0 && this.waiters.length === 0) {
      // Full, and the transport took the last batch at once: write the queue
      // now rather than parking the producer until the next turn. The
      // transport's own bound (it stops taking writes at once) ends this.
      this.turn = 0;
      this.sendBits &= ~WRITING;
      this.flush();
      if (this.offer(frame)) return writeTaken;
    }
    if (!uncapped && this.waiters.length >= this.maxWaiters) return refused(dropped, "overflow");
    return new Promise((resolve, reject) => {
      this.waiters = pushed(this.waiters, { frame, resolve, reject, dropped });
    });
  }

  /**
   * Takes back `frame` if its `put` still waits for room (it has not
   * entered the queue): it will never be written, and that `put` resolves.
   * False when the frame entered already (it will be written) or is unknown.
   * For a caller whose own deadline passed while it waited.
   */
  withdraw(frame: Uint8Array): boolean {
    const i = this.waiters.findIndex((w) => w.frame === frame);
    if (i < 0) return false;
    removedAt(this.waiters, i)?.resolve();
    return true;
  }

  /**
   * Resolves when every queued frame was handed to the transport (or the
   * buffer closed). Used to flush before a graceful close.
   */
  flushed(): Promise<void> {
    if ((this.sendBits & CLOSED) !== 0 || ((this.sendBits & (WRITING | SCHEDULED)) === 0 && this.queue.length === 0))
      return Promise.resolve();
    return new Promise((resolve) => {
      this.idle = pushed(this.idle, resolve);
    });
  }

  /**
   * Closes the queue: blocked `put`s reject with `Closed`, queued frames are
   * discarded and reported as dropped. Idempotent. Protected for the reason
   * `queueClosed` is; {@link SendBuffer} shows it as `close()`.
   */
  protected closeQueue(): void {
    if ((this.sendBits & CLOSED) !== 0) return;
    this.sendBits |= CLOSED;
    const dropped = this.queue.length;
    this.queue = noItems;
    if (dropped > 0) this.framesDropped(dropped);
    const waiters = this.waiters;
    this.waiters = noItems;
    for (const w of waiters) {
      if (w.dropped === undefined) {
        w.reject(closedError());
      } else {
        w.dropped("closed");
        w.resolve();
      }
    }
    this.notifyIdle();
  }

  private schedule(): void {
    if ((this.sendBits & (WRITING | SCHEDULED)) !== 0) return;
    this.sendBits |= SCHEDULED;
    // Let the current task queue more frames, so that they leave in one
    // write. A tick, not a microtask: a consumer that handles what one read
    // delivered in a promise chain (a relay's `for await` + `forward`) runs
    // entirely in microtasks, and a tick waits for all of it, where a
    // microtask would write its first message alone.
    process.nextTick(flushScheduled, this);
  }

  /** @private The scheduled write of an idle buffer (see `schedule`). */
  onScheduled(): void {
    this.sendBits &= ~SCHEDULED;
    this.flush();
  }

  private flush(): void {
    if ((this.sendBits & (CLOSED | WRITING)) !== 0) return;
    if (this.queue.length === 0) {
      this.notifyIdle();
      return;
    }
    const batch = this.queue;
    this.queue = noItems;
    this.admitWaiters();
    let bytes = 0;
    for (const f of batch) bytes += f.length;
    this.sendBits |= WRITING;
    this.inFlight = batch.length;
    const written = this.writeFrames(batch);
    if (written === writeTaken) {
      this.inFlight = 0;
      this.framesWritten(batch.length, bytes);
      this.nextTurn();
      return;
    }
    written.then(
      () => {
        this.inFlight = 0;
        this.framesWritten(batch.length, bytes);
        if (this.queue.length === 0 || (this.sendBits & CLOSED) !== 0) {
          this.sendBits &= ~WRITING;
          this.flush();
          return;
        }
        this.nextTurn();
      },
      (e: unknown) => {
        this.sendBits &= ~WRITING;
        this.inFlight = 0;
        this.framesDropped(batch.length);
        if ((this.sendBits & CLOSED) !== 0) return;
        this.closeQueue();
        this.writeFailed(GossipError.from(e, ErrorCode.Closed));
      },
    );
  }

  /**
   * Busy: the next write waits for the next turn of the event loop, so that
   * producers can queue up to `capacity` frames for it. A microtask here would
   * write as soon as a single frame is queued: one HTTP/2 write (and TLS
   * record) per message. A `put` that finds the queue full meanwhile writes
   * at once instead (see `put`).
   */
  private nextTurn(): void {
    // Ids wrap within a small integer (the flags' bits above TURN_SHIFT), never 0: a write pending
    // for 2^24 turns of other buffers' ids (16.7 million writes within one turn of the event loop) is not a case.
    turnSeq = (turnSeq % MAX_TURN) + 1;
    const id = turnSeq;
    this.turn = id;
    setImmediate(() => {
      if (this.turn !== id) return;
      this.turn = 0;
      this.sendBits &= ~WRITING;
      this.flush();
    });
  }

  private admitWaiters(): void {
    while (this.waiters.length > 0 && this.queue.length < this.capacity) {
      const w = shifted(this.waiters) as Waiter;
      this.queue = pushed(this.queue, w.frame);
      w.resolve();
    }
  }

  private notifyIdle(): void {
    const idle = this.idle;
    if (idle.length === 0) return;
    this.idle = noItems;
    for (const f of idle) f();
  }
}

/** What a `put` that cannot enter returns: a rejection, or with `dropped` a report and a resolved promise. */
export function refused(dropped: ((why: PutRefusal) => void) | undefined, why: PutRefusal = "closed"): Promise<void> {
  if (dropped === undefined) return Promise.reject(why === "closed" ? closedError() : overflowError());
  dropped(why);
  return writeTaken;
}

function flushScheduled(buffer: SendQueue): void {
  buffer.onScheduled();
}

function closedError(): GossipError {
  return new GossipError(ErrorCode.Closed, "connection is closing");
}

function overflowError(): GossipError {
  return new GossipError(ErrorCode.Overflow, "send buffer full and too many sends already wait for room");
}

/**
 * A {@link SendQueue} that writes to and reports to a {@link SendBufferSink}
 * (a dial queue's buffer). A connection is a send queue itself (one object
 * per connection end, not two).
 */
export class SendBuffer extends SendQueue {
  protected readonly limits: SendBufferLimits;

  /**
   * `capacity` is the frames it queues, or the limits of many buffers in
   * one object; `maxWaiters` the puts allowed to wait for room at once
   * (more are refused, `overflow`), when `capacity` is a number.
   */
  constructor(
    capacity: number | SendBufferLimits,
    private readonly sink: SendBufferSink,
    maxWaiters: number = Number.POSITIVE_INFINITY,
  ) {
    super();
    this.limits = typeof capacity === "number" ? { sendBuffSize: capacity, maxBlockedSends: maxWaiters } : capacity;
  }

  /** True once closed; nothing enters any more. */
  get isClosed(): boolean {
    return this.queueClosed;
  }

  /** Closes the buffer: blocked `put`s reject with `Closed`, queued frames are discarded and reported as dropped. Idempotent. */
  close(): void {
    this.closeQueue();
  }

  protected writeFrames(frames: readonly Uint8Array[]): Promise<void> {
    return this.sink.writeFrames(frames);
  }

  protected framesWritten(count: number, bytes: number): void {
    this.sink.framesWritten(count, bytes);
  }

  protected framesDropped(count: number): void {
    this.sink.framesDropped(count);
  }

  protected writeFailed(error: GossipError): void {
    this.sink.writeFailed(error);
  }
}
