import type { Envelope } from "../gen/gossip/message_pb.js";
import { type Span, spanOf, viewOfSpan } from "./byte-span.js";
import type { Clock } from "./clock.js";
import type { CommConfig } from "./config.js";
import { ErrorCode, GossipError } from "./errors.js";
import type { HandshakeResult } from "./handshake.js";
import { type PeerIdentity, type PkiId, rememberPkiIdHex } from "./identity.js";
import type { CommMetrics, Direction } from "./metrics.js";
import { type PutRefusal, refused, type SendBufferLimits, SendQueue } from "./send-buffer.js";
import type { WireReader, WireStream } from "./transport.js";

/** Who is on the other end of a connection, as the handshake proved it (Fabric's ConnectionInfo). */
export interface ConnectionInfo {
  /**
   * The remote's authenticated PKI-ID. It may be a view made on each read
   * (a connection's is): compare its bytes, or key on {@link pkiIdHex}, not
   * on the array's identity.
   */
  readonly pkiId: PkiId;
  /** `pkiId` in lower-case hex (one string per connection, made once: layers key their maps by it). */
  readonly pkiIdHex: string;
  /**
   * The remote's serialized identity. It may be a view made on each read (a
   * connection's is, of its handshake's buffer): compare its bytes, not the
   * array's identity.
   */
  readonly identity: PeerIdentity;
  /** The remote's transport address `host:port` (for inbound connections an ephemeral port). */
  readonly endpoint: string;
  /** The remote's signed handshake message, which higher layers may re-present. */
  readonly auth: { readonly signedData: Uint8Array; readonly signature: Uint8Array };
  /** Which side dialed. */
  readonly direction: Direction;
}

/**
 * The {@link ConnectionInfo} of a handshake. It keeps one buffer: the signed
 * payload, then the signature. A handshake's result is laid out so (it
 * copies the payload and signature into one fresh buffer, with the PKI-ID
 * and identity as views into it), and nothing more is kept for it; from
 * anything else one copy is made, the signed data, the signature, the
 * PKI-ID, then the identity. `auth`, `pkiId` and `identity` are views made
 * on each read (few read them: layers key on `pkiIdHex`): the buffer and
 * where they lie in it are kept, not views of their own. Kept views, the
 * fields for them and an object were ~430 B per connection end (per known
 * peer in a full mesh); the identity's view, which membership's identity
 * mapper held too, ~96 B more.
 */
export class HandshakeInfo implements ConnectionInfo {
  /** The signed data, the signature, and (when not within the signed data) the PKI-ID and identity, back to back. */
  private readonly kept: ArrayBuffer;
  /**
   * Where the PKI-ID starts in {@link kept} (its length is `pkiIdHex`'s
   * half), the signed data's length and the direction, in one number
   * ({@link layoutOf}): a small integer while the buffer is below ~32 KiB
   * (a handshake's is); for a buffer so large that the number would not be
   * exact (~64 MiB), the three fields as an object.
   */
  private readonly layout: Layout;
  /** Where the identity lies in {@link kept} (core/byte-span.ts): a small integer for a handshake's buffer. */
  private readonly identitySpan: Span;

  /**
   * @param pkiId its length must be half `pkiIdHex`'s, which names it
   */
  constructor(
    pkiId: PkiId,
    readonly pkiIdHex: string,
    identity: PeerIdentity,
    readonly endpoint: string,
    auth: ConnectionInfo["auth"],
    direction: Direction,
  ) {
    if (pkiId.length * 2 !== pkiIdHex.length) throw new TypeError("HandshakeInfo: pkiIdHex does not name pkiId");
    const { signedData, signature } = auth;
    const { buffer } = signedData;
    const length = signedData.length;
    const outbound = direction === "outbound";
    if (
      buffer instanceof ArrayBuffer &&
      pkiId.buffer === buffer &&
      signature.buffer === buffer &&
      signedData.byteOffset === 0 &&
      signature.byteOffset === length &&
      signature.byteOffset + signature.length === buffer.byteLength &&
      pkiId.length > 0 &&
      pkiId.byteOffset + pkiId.length <= length &&
      // An empty identity (which only a test's crypto accepts) lies anywhere.
      (identity.length === 0 || (identity.buffer === buffer && identity.byteOffset + identity.length <= length))
    ) {
      this.kept = buffer;
      this.layout = layoutOf(pkiId.byteOffset, length, outbound, buffer.byteLength);
      this.identitySpan = identity.length === 0 ? 0 : spanOf(identity.byteOffset, identity.length, buffer.byteLength);
    } else {
      const pkiAt = length + signature.length;
      const identityAt = pkiAt + pkiId.length;
      const copy = new Uint8Array(identityAt + identity.length);
      copy.set(signedData);
      copy.set(signature, length);
      copy.set(pkiId, pkiAt);
      copy.set(identity, identityAt);
      this.kept = copy.buffer;
      this.layout = layoutOf(pkiAt, length, outbound, copy.length);
      this.identitySpan = spanOf(identityAt, identity.length, copy.length);
    }
  }

  /** The remote's PKI-ID: a view of the kept buffer made now (its hex is remembered, see `pkiIdHex`). */
  get pkiId(): PkiId {
    const id = new Uint8Array(this.kept, pkiAtOf(this.layout, this.kept.byteLength), this.pkiIdHex.length >>> 1);
    rememberPkiIdHex(id, this.pkiIdHex);
    return id;
  }

  /** The remote's identity: a view of the kept buffer made now (compare its bytes, not the array). */
  get identity(): PeerIdentity {
    return viewOfSpan(this.kept, this.identitySpan);
  }

  get auth(): { readonly signedData: Uint8Array; readonly signature: Uint8Array } {
    const length = signedLengthOf(this.layout, this.kept.byteLength);
    const at = pkiAtOf(this.layout, this.kept.byteLength);
    // The PKI-ID within the signed data (a handshake's), or after the signature (a copy).
    const signed = new Uint8Array(this.kept, 0, at >= length ? at : this.kept.byteLength);
    return { signedData: signed.subarray(0, length), signature: signed.subarray(length) };
  }

  get direction(): Direction {
    return outboundOf(this.layout) ? "outbound" : "inbound";
  }
}

/** {@link HandshakeInfo}'s layout: one number ({@link layoutOf}), or the fields where that number would not be exact. */
type Layout = number | { readonly pkiAt: number; readonly signedLength: number; readonly outbound: boolean };

/**
 * {@link HandshakeInfo}'s layout: the PKI-ID's offset and the signed data's
 * length, both at most the kept buffer's `size` (digits of base `size + 1`),
 * and outbound (the low bit), as one number while that is a safe integer.
 * @private Exported for its tests.
 */
export function layoutOf(pkiAt: number, signedLength: number, outbound: boolean, size: number): Layout {
  const packed = (pkiAt * (size + 1) + signedLength) * 2 + (outbound ? 1 : 0);
  return Number.isSafeInteger(packed) ? packed : { pkiAt, signedLength, outbound };
}

/** @private Exported for its tests. */
export function signedLengthOf(layout: Layout, size: number): number {
  return typeof layout === "number" ? Math.floor(layout / 2) % (size + 1) : layout.signedLength;
}

/** @private Exported for its tests. */
export function pkiAtOf(layout: Layout, size: number): number {
  return typeof layout === "number" ? Math.floor(Math.floor(layout / 2) / (size + 1)) : layout.pkiAt;
}

/** @private Exported for its tests. */
export function outboundOf(layout: Layout): boolean {
  return typeof layout === "number" ? layout % 2 === 1 : layout.outbound;
}

/** The state of a {@link Connection}. */
export type ConnectionState =
  /** Authenticated and registered; sends are accepted. */
  | "open"
  /** Closing gracefully: no new sends; queued ones are flushed, then our side ends; reading goes on until the remote ends. */
  | "draining"
  /** Done: the stream is cut and every resource released. */
  | "closed";

/** What a connection reports to its owner. */
export interface ConnectionHooks {
  /**
   * One received Envelope, in order (its payload not yet decoded). A returned
   * promise holds further reading until it settles; a throw (a malformed
   * payload) fails reading.
   */
  onMessage(envelope: Envelope, conn: Connection): Promise<void> | undefined;
  /** A write failed; the connection is already closing. */
  onWriteError(conn: Connection, error: GossipError): void;
  /** Reading failed (stream error, malformed message); the connection is already closing. */
  onReadError(conn: Connection, error: GossipError): void;
  /**
   * A registered connection (its {@link Connection.registeredSeq} set) closed:
   * once, before its `closed` settles. For its owner, the connection store:
   * one hook for every connection rather than a listener field in each (8 B
   * per connection end, per known peer in a full mesh).
   */
  onClosed?(conn: Connection): void;
}

/** Collaborators of a {@link Connection}. */
export interface ConnectionDeps {
  readonly config: CommConfig;
  readonly metrics: CommMetrics;
  readonly clock: Clock;
  readonly hooks: ConnectionHooks;
}

/**
 * One authenticated GossipStream to a remote peer: its send buffer and writer,
 * its reader, and its life cycle (`open` → `draining` → `closed`, or straight
 * to `closed` on abort). Created by the comm after a successful handshake;
 * reading starts at once.
 *
 * It reads as the stream's {@link WireReader} (see {@link WireStream.readBy}),
 * or pulls `incoming` where the transport cannot push: an idle connection
 * then keeps no reader task, pending promise or closure, only its fields.
 */
export class Connection extends SendQueue implements WireReader {
  /**
   * @private Set by the connection store when it registers the connection:
   * its registration order (0 before) and time (fields rather than two weak
   * maps, whose entries cost an idle connection more). Not 0 also tells
   * that its close goes to {@link ConnectionHooks.onClosed}.
   */
  registeredSeq = 0;
  /**
   * @private See {@link Connection.registeredSeq}: whole ms of the store's
   * clock, 0 before. A small integer V8 keeps in the object; a fraction (or
   * -Infinity) made every connection's field a boxed number (16 bytes more).
   */
  registeredAt = 0;
  /**
   * @private The endpoints the connection store finds this connection by
   * (dialed under, or inherited from the connection it replaced), so that
   * moving or forgetting them costs what they number, not every endpoint the
   * store knows. One endpoint (most connections have one, or none) is kept
   * as it is, not in an array of its own (~56 B).
   */
  storeEndpoints: string | string[] | undefined = undefined;
  /**
   * The state ({@link DRAINING}, {@link CLOSED}, neither: open), {@link READ_DONE}
   * (reading is over: the remote ended, reading failed, or we closed) and
   * {@link SETTLED} (closed, `closed` settled): four bits of the send
   * queue's state word ({@link SendQueue.ownerBits}) rather than a field.
   */
  private get flags(): number {
    return this.ownerBits;
  }

  private set flags(bits: number) {
    this.ownerBits = bits;
  }
  /** What only a closing, held back, pulled or waited-on connection needs: made on first use. */
  private rare: Rare | undefined;

  constructor(
    private readonly stream: WireStream,
    handshake: HandshakeResult,
    readonly info: ConnectionInfo,
    private readonly deps: ConnectionDeps,
  ) {
    // Its own send queue (see the SendQueue methods below): no buffer object, sink or adapter per connection.
    super();
    if (handshake.pending.length > 0) {
      const held = this.onBatch(handshake.pending);
      if (held !== undefined) {
        const rare = this.rareFields();
        rare.held = held;
        void held.then(() => {
          if (rare.held === held) rare.held = undefined;
        });
      }
    }
    if (stream.readBy) {
      // Its onShutdown: the transport going away (a server closing while the comm goes on) closes us gracefully.
      stream.readBy(this);
    } else {
      const unwatch = stream.onShutdown?.(() => void this.drain());
      if (unwatch !== undefined) this.rareFields().unwatchShutdown = unwatch;
      void pull(handshake.incoming, this);
    }
  }

  /**
   * @private True once closed and `closed` settled: a registrar that comes
   * later than that (the hook {@link ConnectionHooks.onClosed} was not called
   * for an unregistered connection) handles the close itself.
   */
  get settled(): boolean {
    return (this.flags & SETTLED) !== 0;
  }

  /**
   * Settles when the connection reached "closed". Made on first read: most
   * connections' owners never wait on it (the connection store has
   * {@link ConnectionHooks.onClosed}), and a promise with its resolve closure
   * cost ~150 bytes per connection end for good (two fields more even unread).
   */
  get closed(): Promise<void> {
    if ((this.flags & SETTLED) !== 0) return settledPromise;
    const rare = this.rareFields();
    rare.closedSignal ??= new Promise<void>((resolve) => (rare.closedNow = resolve));
    return rare.closedSignal;
  }

  /** Lower-case hex of the remote PKI-ID (its {@link ConnectionInfo.pkiIdHex}: one string, one field). */
  get pkiHex(): string {
    return this.info.pkiIdHex;
  }

  /** Current state. */
  get state(): ConnectionState {
    const f = this.flags;
    return (f & CLOSED) !== 0 ? "closed" : (f & DRAINING) !== 0 ? "draining" : "open";
  }

  /** Frames accepted for writing and not written yet (queued, or held back by flow control). */
  get queued(): number {
    return this.pending;
  }

  /** The error this connection is closing with, if any. */
  get error(): GossipError | undefined {
    return this.rare?.closingError;
  }

  /** Queues a serialized Envelope without waiting; false when the buffer is full or the connection is not open. */
  override offer(frame: Uint8Array): boolean {
    return (this.flags & ENDING) === 0 && super.offer(frame);
  }

  /**
   * Queues a serialized Envelope, waiting for room; rejects with `Closed`
   * when the connection closes first, or with `Overflow` when
   * `maxBlockedSends` puts already wait (not when `uncapped`: a frame a dial
   * queue already accepted), or, with `dropped`, calls it and resolves.
   */
  override put(frame: Uint8Array, dropped?: (why: PutRefusal) => void, uncapped = false): Promise<void> {
    if ((this.flags & ENDING) !== 0) return refused(dropped);
    return super.put(frame, dropped, uncapped);
  }

  /**
   * Closes gracefully: stops taking sends, flushes what is queued (within
   * `drainTimeoutMs`), ends our side, keeps delivering what the remote still
   * sends until it ends too (within `drainTimeoutMs`), then cuts the stream.
   * Resolves when closed. Idempotent; a later {@link Connection.abort} still cuts at once.
   */
  async drain(): Promise<void> {
    if ((this.flags & ENDING) !== 0) return this.closed;
    this.flags |= DRAINING;
    const { clock, config } = this.deps;
    await raceTimeout(clock, this.flushed(), config.drainTimeoutMs);
    this.closeQueue(); // queued frames are reported dropped
    this.stream.end();
    // Both sides ended: the transport closes the stream once our end went out.
    // Cutting it before would overtake that end (a client's cancel does), and
    // the remote would see the stream reset rather than ended. Within the same
    // drainTimeoutMs as the remote's end.
    const until = clock.now() + config.drainTimeoutMs;
    if (await raceTimeout(clock, this.readingOver(), config.drainTimeoutMs)) {
      await raceTimeout(clock, this.stream.closed, Math.max(0, until - clock.now()));
    }
    this.abort();
    return this.closed;
  }

  /**
   * Cuts the stream now; queued frames are dropped (and counted). With an
   * error, the remote sees it as a refusal (see `WireStream.abort`). Idempotent.
   */
  abort(error?: GossipError): void {
    if ((this.flags & CLOSED) !== 0) return;
    if (error && !this.rare?.closingError) this.rareFields().closingError = error;
    this.flags |= CLOSED;
    this.wakeHeld();
    this.closeQueue();
    this.stream.abort(error);
  }

  /** @private {@link WireReader}: delivers a batch of received envelopes, in order. */
  onBatch(batch: readonly Envelope[]): Promise<void> | undefined {
    if ((this.flags & READ_DONE) !== 0) return undefined;
    const held = this.rare?.held;
    if (held !== undefined) return held.then(() => this.onBatch(batch));
    let bytes = 0;
    for (const env of batch) bytes += env.payload.length + env.signature.length;
    this.deps.metrics.messagesReceived(batch.length, bytes);
    return this.deliver(batch, 0);
  }

  /** @private {@link WireReader}: the remote ended its side; flush ours and finish. */
  onEnd(): void {
    if ((this.flags & READ_DONE) !== 0) return;
    const held = this.rare?.held;
    if (held !== undefined) {
      void held.then(() => this.onEnd());
      return;
    }
    if ((this.flags & ENDING) === 0) void this.drain();
    this.readingEnded();
  }

  /** @private {@link WireReader}: reading failed. */
  onError(e: GossipError): void {
    if ((this.flags & READ_DONE) !== 0) return;
    const held = this.rare?.held;
    if (held !== undefined) {
      void held.then(() => this.onError(e));
      return;
    }
    this.readFailed(e);
  }

  /** @private {@link WireReader}: the transport is shutting down under us. */
  onShutdown(): void {
    void this.drain();
  }

  /** Hands `batch[from..]` to the hooks; a promise while a delivery is held. */
  private deliver(batch: readonly Envelope[], from: number): Promise<void> | undefined {
    const { hooks } = this.deps;
    for (let i = from; i < batch.length; i++) {
      if ((this.flags & CLOSED) !== 0) {
        this.readingEnded();
        return undefined;
      }
      const env = batch[i] as Envelope;
      let r: Promise<void> | undefined;
      try {
        r = hooks.onMessage(env, this);
      } catch (e) {
        this.readFailed(e);
        return undefined;
      }
      if (r !== undefined) return this.resumeAfter(r, batch, i + 1);
    }
    return undefined;
  }

  private readFailed(e: unknown): void {
    if ((this.flags & READ_DONE) !== 0) return;
    if ((this.flags & CLOSED) === 0) {
      const error = GossipError.from(e, ErrorCode.Canceled);
      this.abort(error);
      this.deps.hooks.onReadError(this, error);
    }
    this.readingEnded();
  }

  /** Reading is over: the connection closes once the stream has. */
  private readingEnded(): void {
    if ((this.flags & READ_DONE) !== 0) return;
    this.flags |= READ_DONE;
    this.rare?.readDoneNow?.();
    void this.stream.closed.then(() => this.settle());
  }

  /** Settles once reading is over. */
  private readingOver(): Promise<void> {
    if ((this.flags & READ_DONE) !== 0) return settledPromise;
    const rare = this.rareFields();
    rare.readDoneSignal ??= new Promise<void>((resolve) => (rare.readDoneNow = resolve));
    return rare.readDoneSignal;
  }

  /** Reading is over and the stream closed: the connection is closed. */
  private settle(): void {
    const rare = this.rare;
    rare?.unwatchShutdown?.();
    if (rare !== undefined) rare.unwatchShutdown = undefined;
    this.flags |= CLOSED | SETTLED;
    this.closeQueue();
    if (this.registeredSeq !== 0) {
      try {
        this.deps.hooks.onClosed?.(this);
      } catch {
        // `closed` never rejects; the owner's hook reports its own failures.
      }
    }
    if (rare !== undefined) {
      rare.closedNow?.();
      rare.closedNow = undefined;
    }
  }

  /**
   * Delivers `batch[from..]` once the held delivery `r` settled, or at once
   * when the connection is cut meanwhile: a reader parked in a delivery
   * blocked by an unread subscription must not hold `closed` back. Not a
   * `Promise.race` with one promise settled on abort: each race left a
   * reaction on that promise until the connection closed, ~310 B for every
   * delivery a full subscription ever held (tens of MB a minute on W2's
   * receiver, which blocks every `acceptBuffSize` messages). One delivery is
   * held at a time: the stream pushes nothing more until it resumed.
   */
  private resumeAfter(r: Promise<void>, batch: readonly Envelope[], from: number): Promise<void> {
    if ((this.flags & CLOSED) !== 0) return Promise.resolve(this.deliver(batch, from));
    const rare = this.rareFields();
    return new Promise<void>((resolve, reject) => {
      rare.wakeHeld = resolve;
      r.then(resolve, reject);
    }).then(
      () => {
        rare.wakeHeld = undefined;
        return this.deliver(batch, from);
      },
      (e: unknown) => {
        rare.wakeHeld = undefined;
        this.readFailed(e);
      },
    );
  }

  /** Lets a delivery held by a full subscription go on (the connection was cut). */
  private wakeHeld(): void {
    const rare = this.rare;
    const wake = rare?.wakeHeld;
    if (wake === undefined) return;
    (rare as Rare).wakeHeld = undefined;
    wake();
  }

  private rareFields(): Rare {
    this.rare ??= {
      closingError: undefined,
      wakeHeld: undefined,
      readDoneSignal: undefined,
      readDoneNow: undefined,
      held: undefined,
      unwatchShutdown: undefined,
      closedSignal: undefined,
      closedNow: undefined,
    };
    return this.rare;
  }

  /** @private {@link SendQueue}: the comm's config bounds every connection's queue. */
  protected get limits(): SendBufferLimits {
    return this.deps.config;
  }

  /** @private {@link SendQueue}: the queue writes a batch to the stream. */
  writeFrames(frames: readonly Uint8Array[]): Promise<void> {
    return this.stream.write(frames);
  }

  /** @private {@link SendQueue}. */
  framesWritten(count: number, bytes: number): void {
    this.deps.metrics.messagesSent(count, bytes);
  }

  /** @private {@link SendQueue}. */
  framesDropped(count: number): void {
    this.deps.metrics.dropped("connection_closed", count);
  }

  /** @private {@link SendQueue}: a write failed; the connection closes with it. */
  writeFailed(error: GossipError): void {
    if ((this.flags & CLOSED) !== 0) return;
    this.abort(error);
    this.deps.hooks.onWriteError(this, error);
  }
}

/** {@link Connection}'s flags: reading is over. */
const READ_DONE = 1;
/** {@link Connection}'s flags: closed, and `closed` settled. */
const SETTLED = 2;
/** {@link Connection}'s flags: state "draining" (unless {@link CLOSED}). */
const DRAINING = 4;
/** {@link Connection}'s flags: state "closed". */
const CLOSED = 8;
/** {@link Connection}'s flags: not open any more. */
const ENDING = DRAINING | CLOSED;

const settledPromise: Promise<void> = Promise.resolve();

/**
 * A connection's fields that only a closing, held back, pulled or waited-on
 * one needs, in one object made on first use: eight fields (64 B) less on
 * every idle connection end, per known peer in a full mesh.
 */
interface Rare {
  closingError: GossipError | undefined;
  /**
   * Resumes the delivery a full subscription holds, called on abort: a
   * reader parked in it must not hold `closed` back (see `resumeAfter`).
   */
  wakeHeld: (() => void) | undefined;
  /** Settles when reading is over; made when a drain first waits for it. */
  readDoneSignal: Promise<void> | undefined;
  readDoneNow: (() => void) | undefined;
  /**
   * The delivery of the envelopes that came with the handshake, while a
   * subscription holds it: what the stream pushes meanwhile waits for it.
   */
  held: Promise<void> | undefined;
  /** Stops watching the transport's shutdown (transports without `readBy`). */
  unwatchShutdown: (() => void) | undefined;
  /** What {@link Connection.closed} returns until the connection closed, made on its first read. */
  closedSignal: Promise<void> | undefined;
  closedNow: (() => void) | undefined;
}

/** Reads `incoming` into `reader`, for transports without {@link WireStream.readBy}. */
async function pull(incoming: AsyncIterator<readonly Envelope[]>, reader: WireReader): Promise<void> {
  for (;;) {
    let next: IteratorResult<readonly Envelope[]>;
    try {
      next = await incoming.next();
    } catch (e) {
      reader.onError(GossipError.from(e, ErrorCode.Canceled));
      return;
    }
    if (next.done) break;
    if (next.value.length === 0) continue;
    const held = reader.onBatch(next.value);
    if (held !== undefined) await held;
  }
  reader.onEnd();
}

/** Waits for `p` at most `ms`; true when `p` settled first. */
async function raceTimeout(clock: Clock, p: Promise<void>, ms: number): Promise<boolean> {
  let timer: unknown;
  const settled = await Promise.race([
    p.then(() => true),
    new Promise<boolean>((resolve) => (timer = clock.setTimeout(() => resolve(false), ms))),
  ]);
  clock.clearTimeout(timer);
  return settled;
}
