/**
 * The outbound side of a comm: dialing (open a stream, handshake, the
 * expected-PKI-ID rule and identity switches), Fabric's two probes, and the
 * send path with its one overflow policy.
 *
 * A send to a peer with an open connection enters that connection's send
 * buffer. A send to a peer without one enters the peer's dial queue: a
 * {@link SendBuffer} of the same capacity whose "transport" is the dial, and
 * which hands its frames, in order, to the connection the dial delivers.
 * Until that queue has drained, later sends to the peer go through it too, so
 * that nothing overtakes. Both queues are full at the same point and the same
 * policy applies to both: `drop` counts the frame, `block` waits for room,
 * `disconnect` presumes the peer dead and closes the connection (or abandons
 * the dial queue).
 *
 * @private Internal code, not part of the public API.
 */
import { timeoutSignal } from "./clock.js";
import type { Connection } from "./connection.js";
import { type ConnectionStore, dialKey } from "./connection-store.js";
import type { CommContext } from "./context.js";
import { ErrorCode, GossipError } from "./errors.js";
import type { EventStream } from "./event-stream.js";
import { type HandshakeResult, handshake } from "./handshake.js";
import { bytesEqual, type PeerIdentity, type PkiId, pkiIdHex, type RemotePeer, rememberPkiIdHex } from "./identity.js";
import type { DropReason } from "./metrics.js";
import type { Router } from "./routing.js";
import { type PutRefusal, SendBuffer } from "./send-buffer.js";
import type { Dialer } from "./transport.js";

/**
 * A peer answered at an endpoint under a new PKI-ID of the same organization:
 * the old PKI-ID should be forgotten (Fabric's IdentitySwitch carries the old one).
 */
export interface IdentitySwitchEvent {
  readonly oldPkiId: PkiId;
  readonly newPkiId: PkiId;
  readonly endpoint: string;
}

/** Where a frame is queued: a connection's send buffer or a dial queue. */
interface Queue {
  offer(frame: Uint8Array): boolean;
  /**
   * Waits for room; a frame that can no longer enter, or that finds
   * `maxBlockedSends` sends waiting (unless `uncapped`), is reported to
   * `dropped` (never rejects).
   */
  put(frame: Uint8Array, dropped: (why: PutRefusal) => void, uncapped?: boolean): Promise<void>;
  /** Gives up on the peer: drops what is queued (counted). */
  abort(error: GossipError): void;
  readonly pkiId: PkiId;
  readonly endpoint: string;
  /** What a frame that can no longer be queued counts as. */
  readonly dropReason: DropReason;
}

/** Frames for a peer whose dial is in progress. */
class DialQueue implements Queue {
  readonly dropReason = "dial_failed" as const;
  readonly buffer: SendBuffer;
  readonly pkiId: PkiId;
  readonly endpoint: string;
  private abandoned: GossipError | undefined;

  constructor(
    peer: RemotePeer,
    /** Its key in the dial queues: the peer's dial key. */
    readonly key: string,
    capacity: number,
    maxWaiters: number,
    connect: () => Promise<Connection>,
    deliver: (conn: Connection, frames: readonly Uint8Array[]) => Promise<void>,
    onDropped: (count: number) => void,
    onFailed: (error: GossipError) => void,
    private readonly onAbandoned: () => void,
  ) {
    this.pkiId = peer.pkiId ?? new Uint8Array(0);
    this.endpoint = peer.endpoint;
    let dialed: Promise<Connection> | undefined;
    this.buffer = new SendBuffer(
      capacity,
      {
        writeFrames: async (frames) => {
          dialed ??= connect();
          const conn = await dialed;
          if (this.abandoned) throw this.abandoned;
          await deliver(conn, frames);
        },
        // Counted as sent by the connection's own buffer when it writes them.
        framesWritten: () => {},
        framesDropped: onDropped,
        writeFailed: onFailed,
      },
      maxWaiters,
    );
  }

  offer(frame: Uint8Array): boolean {
    return this.buffer.offer(frame);
  }

  put(frame: Uint8Array, dropped: (why: PutRefusal) => void, uncapped?: boolean): Promise<void> {
    return this.buffer.put(frame, dropped, uncapped);
  }

  abort(error: GossipError): void {
    this.abandoned ??= error;
    this.onAbandoned();
    this.buffer.close();
  }
}

/** Adapts a connection to {@link Queue}. */
function connectionQueue(conn: Connection): Queue {
  return {
    offer: (frame) => conn.offer(frame),
    put: (frame, dropped, uncapped) => conn.put(frame, dropped, uncapped),
    abort: (error) => conn.abort(error),
    pkiId: conn.info.pkiId,
    endpoint: conn.info.endpoint,
    dropReason: "connection_closed",
  };
}

/** Dials peers and sends to them. */
export class Outbound {
  /**
   * Queues in front of dials in progress, by dial key; undefined while
   * there are none (the steady state: an empty Map kept for good was
   * ~184 B of heap per comm, W9).
   */
  private dialQueues: Map<string, DialQueue> | undefined;
  /**
   * What a blocked frame that can no longer be queued counts as, by where it
   * waited: an overflow when `maxBlockedSends` sends already waited, else
   * dropped for that reason.
   */
  private readonly droppedBy: Readonly<Record<DropReason, (why: PutRefusal) => void>>;

  constructor(
    private readonly ctx: CommContext,
    private readonly store: ConnectionStore,
    private readonly router: Router,
    private readonly dialer: Dialer,
    private readonly identitySwitch: EventStream<IdentitySwitchEvent>,
  ) {
    const count = (reason: DropReason) => (why: PutRefusal) => {
      if (why === "closed") {
        ctx.metrics.dropped(reason, 1);
        return;
      }
      ctx.metrics.overflow();
      ctx.limiter.maybe("overflow blocked", (suppressed) =>
        ctx.log.debug(
          { maxBlockedSends: ctx.config.maxBlockedSends, suppressed },
          "send buffer full and maxBlockedSends sends already wait; dropping message",
        ),
      );
    };
    this.droppedBy = { connection_closed: count("connection_closed"), dial_failed: count("dial_failed") } as Record<
      DropReason,
      (why: PutRefusal) => void
    >;
  }

  /** Frames waiting for a dial. */
  get queued(): number {
    let n = 0;
    if (this.dialQueues !== undefined) for (const q of this.dialQueues.values()) n += q.buffer.pending;
    return n;
  }

  /**
   * Queues `frame` for `peer`, dialing when needed. Returns a promise only
   * when the `block` policy makes the caller wait; never rejects.
   */
  send(peer: RemotePeer, frame: Uint8Array): Promise<void> | undefined {
    // The hot path (no dial in progress, a connection open) allocates nothing.
    const dialing = this.dialQueues !== undefined ? this.dialQueues.get(dialKey(peer)) : undefined;
    if (dialing !== undefined) return dialing.offer(frame) ? undefined : this.overflow(dialing, frame);
    const conn = this.store.lookup(peer);
    if (conn !== undefined) {
      if (conn.offer(frame)) return undefined;
      // A blocked sender waits on the connection itself: one promise, no adapter (the steady state of a fast sender).
      if (this.ctx.config.overflowPolicy === "block") return conn.put(frame, this.droppedBy.connection_closed);
      return this.overflow(connectionQueue(conn), frame);
    }
    const queue = this.startDialQueue(peer, dialKey(peer));
    queue.offer(frame); // an empty queue has room
    void this.retireWhenDrained(queue);
    return undefined;
  }

  /**
   * Dials `peer` for the store: opens a stream, runs the handshake, and
   * applies the expected-PKI-ID rule (a different PKI-ID of the expected
   * organization is an identity switch; of another, `UnexpectedPeer`).
   */
  async dial(peer: RemotePeer, signal: AbortSignal): Promise<Connection> {
    const { ctx } = this;
    const stream = await this.dialer.openStream(peer.endpoint, { signal });
    let hs: HandshakeResult;
    try {
      hs = await handshake(stream, ctx.handshakeOptions(false));
    } catch (e) {
      const error = GossipError.from(e);
      stream.abort(error);
      ctx.handshakeFailed("outbound", stream.remoteAddress, error);
      throw error;
    }
    if (peer.pkiId !== undefined && peer.pkiId.length > 0 && !bytesEqual(peer.pkiId, hs.pkiId)) {
      const expected = ctx.knownIdentity(peer.pkiId);
      const sameOrg = expected !== undefined && ctx.crypto.organizationOf(expected) === ctx.crypto.organizationOf(hs.identity);
      if (!sameOrg) {
        const error = new GossipError(ErrorCode.UnexpectedPeer, "authentication failure");
        ctx.log.warn(
          { address: peer.endpoint, expected: pkiIdHex(peer.pkiId), pkiId: pkiIdHex(hs.pkiId) },
          "remote endpoint claims to be a different peer",
        );
        stream.abort(error);
        ctx.handshakeFailed("outbound", peer.endpoint, error);
        throw error;
      }
      ctx.log.info({ address: peer.endpoint, oldPkiId: pkiIdHex(peer.pkiId), pkiId: pkiIdHex(hs.pkiId) }, "peer changed its PKI-ID");
      ctx.metrics.identitySwitch();
      this.identitySwitch.emit({ oldPkiId: peer.pkiId, newPkiId: hs.pkiId, endpoint: peer.endpoint });
    } else if (peer.pkiId !== undefined && peer.pkiId.length > 0) {
      // The PKI-ID the caller expected: the connection and the identity store key on the caller's hex
      // string for it (membership's, say), so that a peer's hex is one string in the process, not two.
      rememberPkiIdHex(hs.pkiId, pkiIdHex(peer.pkiId));
    }
    ctx.metrics.handshake("outbound", "ok");
    ctx.learn(hs.pkiId, hs.identity);
    return this.router.connection(stream, hs, "outbound");
  }

  /** Fabric's shallow probe: a fresh connection and one Ping within `dialTimeoutMs` + `connTimeoutMs`. */
  async probe(peer: RemotePeer): Promise<void> {
    const { config, clock } = this.ctx;
    const ms = config.dialTimeoutMs + config.connTimeoutMs;
    const t = timeoutSignal(clock, ms, () => new GossipError(ErrorCode.DialTimeout, `probe of ${peer.endpoint} timed out after ${ms} ms`));
    try {
      await this.dialer.ping(peer.endpoint, { signal: t.signal });
    } catch (e) {
      throw timedOut(t.signal, e);
    } finally {
      t.clear();
    }
  }

  /** Fabric's deep probe: a handshake with `probe = true` on a fresh stream, which is then closed. */
  async handshake(peer: RemotePeer): Promise<{ pkiId: PkiId; identity: PeerIdentity }> {
    const { ctx } = this;
    const { config, clock } = ctx;
    const ms = config.dialTimeoutMs + config.handshakeTimeoutMs;
    const t = timeoutSignal(
      clock,
      ms,
      () => new GossipError(ErrorCode.DialTimeout, `handshake with ${peer.endpoint} timed out after ${ms} ms`),
    );
    let result: HandshakeResult;
    try {
      const stream = await this.dialer
        .openStream(peer.endpoint, { signal: t.signal, streamTimeoutMs: config.handshakeTimeoutMs })
        .catch((e: unknown) => {
          throw timedOut(t.signal, e);
        });
      try {
        result = await handshake(stream, ctx.handshakeOptions(true));
        ctx.metrics.handshake("outbound", "probe");
      } catch (e) {
        const error = GossipError.from(e);
        ctx.metrics.handshake("outbound", error.code);
        throw error;
      } finally {
        stream.abort();
      }
    } finally {
      t.clear();
    }
    ctx.learn(result.pkiId, result.identity);
    if (peer.pkiId !== undefined && peer.pkiId.length > 0 && !bytesEqual(peer.pkiId, result.pkiId)) {
      throw new GossipError(ErrorCode.UnexpectedPeer, "PKI-ID of remote peer doesn't match expected PKI-ID");
    }
    return { pkiId: result.pkiId, identity: result.identity };
  }

  /** The overflow policy, the same for a connection and a dial queue. */
  private overflow(queue: Queue, frame: Uint8Array): Promise<void> | undefined {
    const { ctx } = this;
    switch (ctx.config.overflowPolicy) {
      case "block":
        return queue.put(frame, this.droppedBy[queue.dropReason]);
      case "disconnect": {
        ctx.metrics.overflow();
        const error = new GossipError(ErrorCode.Overflow, `send buffer to ${queue.endpoint} is full; peer is unresponsive`);
        ctx.log.warn(
          { pkiId: pkiIdHex(queue.pkiId), address: queue.endpoint, code: error.code },
          "send buffer overflowed; closing the connection",
        );
        queue.abort(error);
        ctx.presumedDead(queue.pkiId, queue.endpoint, error);
        return undefined;
      }
      case "drop":
        ctx.metrics.overflow();
        ctx.limiter.maybe(`overflow ${pkiIdHex(queue.pkiId)} ${queue.endpoint}`, (suppressed) =>
          ctx.log.debug({ pkiId: pkiIdHex(queue.pkiId), address: queue.endpoint, suppressed }, "send buffer overflowed; dropping message"),
        );
        return undefined;
    }
  }

  private startDialQueue(peer: RemotePeer, key: string): DialQueue {
    const { ctx } = this;
    const queue: DialQueue = new DialQueue(
      peer,
      key,
      ctx.config.sendBuffSize,
      ctx.config.maxBlockedSends,
      () => this.store.getOrDial(peer),
      (conn, frames) => this.deliver(conn, frames),
      (count) => ctx.metrics.dropped("dial_failed", count),
      (error) => {
        this.forget(queue);
        if (error.code !== ErrorCode.Stopping) ctx.presumedDead(peer.pkiId ?? new Uint8Array(0), peer.endpoint, error);
      },
      () => this.forget(queue),
    );
    this.dialQueues ??= new Map();
    this.dialQueues.set(key, queue);
    return queue;
  }

  /** Hands frames that waited for a dial to its connection, under the same policy. */
  private async deliver(dialed: Connection, frames: readonly Uint8Array[]): Promise<void> {
    const conn = this.store.current(dialed);
    const target = connectionQueue(conn);
    for (const frame of frames) {
      if (target.offer(frame)) continue;
      if (conn.state !== "open") {
        this.ctx.metrics.dropped("connection_closed", 1);
        continue;
      }
      // Accepted once already (by the dial queue): under "block" it waits whatever the cap.
      const waiting =
        this.ctx.config.overflowPolicy === "block"
          ? target.put(frame, this.droppedBy.connection_closed, true)
          : this.overflow(target, frame);
      if (waiting !== undefined) await waiting;
    }
  }

  /** Removes a dial queue once it is empty after its dial (later sends go straight to the connection). */
  private async retireWhenDrained(queue: DialQueue): Promise<void> {
    const { buffer } = queue;
    for (;;) {
      await buffer.flushed();
      if (buffer.isClosed || buffer.pending === 0) break;
    }
    this.forget(queue);
    buffer.close();
  }

  private forget(queue: DialQueue): void {
    const queues = this.dialQueues;
    if (queues?.get(queue.key) !== queue) return;
    queues.delete(queue.key);
    if (queues.size === 0) this.dialQueues = undefined;
  }

  /** Abandons every dial queue (on stop); blocked senders are released. */
  close(): void {
    const queues = this.dialQueues;
    if (queues === undefined) return;
    for (const q of [...queues.values()]) q.abort(new GossipError(ErrorCode.Stopping, "comm is stopping"));
    queues.clear();
    if (this.dialQueues === queues) this.dialQueues = undefined;
  }
}

/**
 * A dialer reports a dial its signal stopped as `Stopping`, whatever the
 * reason; when the signal was our own deadline, the caller must see the
 * deadline (`DialTimeout`), as the error it was aborted with.
 */
function timedOut(signal: AbortSignal, e: unknown): unknown {
  return signal.aborted && signal.reason instanceof GossipError ? signal.reason : e;
}
