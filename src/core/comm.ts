import { randomBytes } from "node:crypto";
import type { Envelope, GossipMessage } from "../gen/gossip/message_pb.js";
import { AckRegistry, AggregatedSendResult, type SendResult } from "./ack.js";
import { Admission } from "./admission.js";
import { type Clock, systemClock } from "./clock.js";
import { type CommConfig, type CommOptions, resolveCommConfig } from "./config.js";
import { Connection, type ConnectionInfo, type ConnectionState } from "./connection.js";
import { ConnectionStore } from "./connection-store.js";
import type { CryptoService } from "./crypto.js";
import { Demux, type Predicate, type Subscription } from "./demux.js";
import { encodeEnvelope, encodeUnsignedEnvelope, signMessage } from "./envelope.js";
import { authenticationCodes, ErrorCode, GossipError } from "./errors.js";
import { EventStream } from "./event-stream.js";
import { handshake } from "./handshake.js";
import { bytesEqual, pkiIdHex, type PeerIdentity, type PkiId, type RemotePeer } from "./identity.js";
import { IdentityStore } from "./identity-store.js";
import { LogLimiter, type Logger, silentLogger } from "./logger.js";
import { type CommMetrics, type Direction, noopMetrics } from "./metrics.js";
import { type ReceivedMessage, ReceivedMessageImpl } from "./received-message.js";
import type { Dialer, WireStream } from "./transport.js";

/** A peer was presumed dead: a dial to it failed, or a write to it failed. */
export interface PresumedDeadEvent {
  /** The PKI-ID the sender targeted (empty when it sent by endpoint only). */
  readonly pkiId: PkiId;
  /** The endpoint dialed, or the remote address of the failed connection. */
  readonly endpoint: string;
  /** Why. */
  readonly error: GossipError;
}

/**
 * A peer answered at an endpoint under a new PKI-ID of the same organization:
 * the old PKI-ID should be forgotten (Fabric's IdentitySwitch carries the old one).
 */
export interface IdentitySwitchEvent {
  readonly oldPkiId: PkiId;
  readonly newPkiId: PkiId;
  readonly endpoint: string;
}

/** A connection was registered (`connected`) or closed (`disconnected`). */
export interface ConnectionEvent {
  readonly type: "connected" | "disconnected";
  readonly connection: ConnectionInfo;
  /** For `disconnected`: the error it closed with, if any. */
  readonly error?: GossipError;
}

/** Counters and gauges of a comm, for dashboards and the live view. */
export interface CommStats {
  readonly connections: { readonly inbound: number; readonly outbound: number };
  readonly messagesSent: number;
  readonly messagesReceived: number;
  readonly bytesSent: number;
  readonly bytesReceived: number;
  readonly overflow: number;
  readonly dropped: number;
  readonly presumedDead: number;
  readonly handshakeFailures: number;
  /** Frames queued in send buffers now. */
  readonly sendBuffered: number;
  /** Inbound streams in the handshake now. */
  readonly unauthenticatedStreams: number;
  /** `sendWithAck` acknowledgements being waited for. */
  readonly pendingAcks: number;
}

/** A connection as {@link Comm.connections} lists it. */
export interface ConnectionSnapshot extends ConnectionInfo {
  readonly state: ConnectionState;
  /** Frames in its send buffer. */
  readonly queued: number;
}

/** What a {@link Comm} is made of. */
export interface CommInit {
  /** Our identity and the trust rules for everyone else's. */
  readonly crypto: CryptoService;
  /** Opens outbound streams (the client dialer, `gossip-connect/client`). */
  readonly dialer: Dialer;
  /** Tuning; every field defaults to Fabric's value (see `CommOptions`). */
  readonly options?: CommOptions;
  /** Where to count (Prometheus through `gossip-connect/metrics`); counts nothing by default. */
  readonly metrics?: CommMetrics;
  /** Where to log (Fastify's `app.log` fits); silent by default. */
  readonly logger?: Logger;
  /** Time source; the system clock by default. */
  readonly clock?: Clock;
}

const resolved = Promise.resolve();

interface PendingDial {
  readonly frames: Uint8Array[];
  readonly blocked: { readonly frame: Uint8Array; readonly resolve: () => void }[];
}

/**
 * Fabric's gossip comm: authenticated, per-peer ordered messaging over one
 * long-lived GossipStream per remote peer.
 *
 * - Outbound: `send`, `sendWithAck`, `probe`, `handshake` dial as needed
 *   (through the {@link Dialer}) and reuse the connection to each peer.
 * - Inbound: transports hand every accepted GossipStream to
 *   {@link Comm.handleStream}; authenticated messages reach the subscriptions
 *   of {@link Comm.accept}.
 * - Nothing unauthenticated reaches a subscriber, no queue is unbounded, and
 *   every accepted message is written or counted as dropped.
 */
export class Comm {
  /** Our PKI-ID. */
  readonly pkiId: PkiId;
  /** Peers presumed dead. */
  readonly presumedDead: EventStream<PresumedDeadEvent>;
  /** Peers that changed their PKI-ID within their organization. */
  readonly identitySwitch: EventStream<IdentitySwitchEvent>;
  /** Connections registered and closed. */
  readonly connectionEvents: EventStream<ConnectionEvent>;
  /** The effective configuration. */
  readonly config: CommConfig;

  private readonly crypto: CryptoService;
  private readonly dialer: Dialer;
  private readonly metrics: CommMetrics;
  private readonly counts: MutableStats;
  private readonly log: Logger;
  private readonly clock: Clock;
  private readonly limiter: LogLimiter;
  private readonly identities: IdentityStore;
  private readonly admission: Admission;
  private readonly store: ConnectionStore;
  private readonly acks: AckRegistry;
  private readonly demux: Demux<ReceivedMessage>;
  private readonly pendingDials = new Map<string, PendingDial>();
  private readonly handshaking = new Set<WireStream>();
  /** Per connection, what to run when it closes: one reaction on `closed` per connection, not one per call. */
  private readonly closeWatchers = new WeakMap<Connection, { readonly fns: Set<() => void>; fired: boolean }>();
  private stopping = false;
  private stopped: Promise<void> | undefined;

  constructor(init: CommInit) {
    this.config = resolveCommConfig(init.options);
    this.crypto = init.crypto;
    this.dialer = init.dialer;
    this.clock = init.clock ?? systemClock;
    this.log = (init.logger ?? silentLogger).child({ component: "gossip.comm" });
    this.counts = new MutableStats();
    this.metrics = countingMetrics(init.metrics ?? noopMetrics, this.counts);
    this.limiter = new LogLimiter(() => this.clock.now());
    this.pkiId = this.crypto.pkiIdOf(this.crypto.identity);
    this.identities = new IdentityStore(this.clock);
    this.identities.put(this.pkiId, this.crypto.identity, this.crypto.expiresAt(this.crypto.identity));
    this.admission = new Admission(
      this.clock,
      this.config.maxUnauthenticatedStreams,
      this.config.maxHandshakesPerSecondPerAddress,
      this.config.maxUnauthenticatedStreamsPerAddress,
    );
    this.acks = new AckRegistry(this.clock);
    this.demux = new Demux<ReceivedMessage>(this.config.acceptBuffSize);
    const onEventDrop = () => this.log.debug({}, "event subscriber fell behind; oldest event dropped");
    this.presumedDead = new EventStream(this.config.eventBuffSize, onEventDrop);
    this.identitySwitch = new EventStream(this.config.eventBuffSize, onEventDrop);
    this.connectionEvents = new EventStream(this.config.eventBuffSize, onEventDrop);
    this.store = new ConnectionStore({
      dial: (peer, signal) => this.dial(peer, signal),
      maxConnectionsPerPeer: this.config.maxConnectionsPerPeer,
      selfPkiHex: pkiIdHex(this.pkiId),
      simultaneousWindowMs: this.config.dialTimeoutMs + this.config.connTimeoutMs,
      clock: this.clock,
      onRegistered: (conn) => {
        this.counts.connections[conn.info.direction]++;
        this.metrics.connectionOpened(conn.info.direction);
        this.connectionEvents.emit({ type: "connected", connection: conn.info });
      },
      onUnregistered: (conn) => {
        this.counts.connections[conn.info.direction]--;
        this.metrics.connectionClosed(conn.info.direction);
        this.connectionEvents.emit({ type: "disconnected", connection: conn.info, error: conn.error });
      },
    });
  }

  /** Signs `message` with our identity (Fabric's `SignMessage`), ready for {@link Comm.send}. */
  sign(message: GossipMessage): Envelope {
    return signMessage(this.crypto, message);
  }

  /**
   * Sends `message` to each peer, fire-and-forget, in order per peer. A
   * GossipMessage goes out unsigned; pass an Envelope (see {@link Comm.sign})
   * to send it as built. The message is encoded once for all peers.
   *
   * When a peer's send buffer is full the `overflowPolicy` applies: `drop`
   * (count it), `disconnect` (presumed dead), or `block` (the returned promise
   * settles when every peer took the message; await it for back-pressure).
   * Failures are reported through {@link Comm.presumedDead} and metrics, never
   * by rejecting. A no-op when stopping or without peers.
   *
   * Throws `MessageTooLarge` when the encoded message exceeds `maxMessageBytes`.
   */
  send(message: GossipMessage | Envelope, ...peers: RemotePeer[]): Promise<void> {
    if (this.stopping || peers.length === 0) return resolved;
    const frame = this.encode(message);
    let blocked: Promise<void>[] | undefined;
    for (const peer of peers) {
      const r = this.sendTo(peer, frame);
      if (r !== undefined) (blocked ??= []).push(r);
    }
    return blocked === undefined ? resolved : Promise.all(blocked).then(() => undefined);
  }

  /**
   * Sends `message` with a fresh random nonce (unsigned, as Fabric does) to
   * each peer, waiting for room in send buffers, and collects their
   * acknowledgements. Resolves as soon as `minAck` peers acknowledged without
   * error or every peer answered; a peer that does not answer within
   * `timeoutMs` counts as failed ("timed out"). Never rejects.
   */
  async sendWithAck(
    message: GossipMessage,
    timeoutMs: number,
    minAck: number,
    ...peers: RemotePeer[]
  ): Promise<AggregatedSendResult> {
    if (peers.length === 0) return new AggregatedSendResult([]);
    if (this.stopping) {
      const error = new GossipError(ErrorCode.Stopping, "comm is stopping");
      return new AggregatedSendResult(peers.map((peer) => ({ peer, error })));
    }
    const nonce = randomBytes(8).readBigUInt64BE();
    let frame: Uint8Array;
    try {
      frame = this.encode({ ...message, nonce });
    } catch (e) {
      const error = GossipError.from(e);
      return new AggregatedSendResult(peers.map((peer) => ({ peer, error })));
    }
    const deadline = this.clock.now() + timeoutMs;
    return new Promise((resolve) => {
      const results: SendResult[] = [];
      let successes = 0;
      let finished = false;
      for (const peer of peers) {
        void this.sendOneWithAck(peer, frame, nonce, deadline).then((error) => {
          if (finished) return;
          results.push(error ? { peer, error } : { peer });
          if (!error) successes++;
          // Fabric's rule, edge cases included: stop at exactly minAck successes, or when all answered.
          if (successes === minAck || results.length === peers.length) {
            finished = true;
            resolve(new AggregatedSendResult(results));
          }
        });
      }
    });
  }

  /**
   * Fabric's shallow liveness check: a fresh connection to `peer.endpoint`
   * and one Ping (within `dialTimeoutMs` + `connTimeoutMs`), no handshake.
   * Rejects with a {@link GossipError}.
   */
  async probe(peer: RemotePeer): Promise<void> {
    if (this.stopping) throw new GossipError(ErrorCode.Stopping, "stopping");
    await this.dialer.ping(peer.endpoint, { signal: AbortSignal.timeout(this.config.dialTimeoutMs + this.config.connTimeoutMs) });
  }

  /**
   * Fabric's deep probe: dials `peer`, runs an authenticated handshake with
   * `probe = true` (the remote answers but registers nothing), closes, and
   * returns the remote's identity. Rejects with `UnexpectedPeer` when
   * `peer.pkiId` is given and another PKI-ID answered.
   */
  async handshake(peer: RemotePeer): Promise<{ pkiId: PkiId; identity: PeerIdentity }> {
    const signal = AbortSignal.timeout(this.config.dialTimeoutMs + this.config.handshakeTimeoutMs);
    const stream = await this.dialer.openStream(peer.endpoint, {
      signal,
      streamTimeoutMs: this.config.handshakeTimeoutMs,
    });
    let result;
    try {
      result = await handshake(stream, this.handshakeOptions(true));
      this.metrics.handshake("outbound", "probe");
    } catch (e) {
      const error = GossipError.from(e);
      this.metrics.handshake("outbound", error.code);
      throw error;
    } finally {
      stream.abort();
    }
    this.identities.put(result.pkiId, result.identity, this.crypto.expiresAt(result.identity));
    if (peer.pkiId !== undefined && peer.pkiId.length > 0 && !bytesEqual(peer.pkiId, result.pkiId)) {
      throw new GossipError(ErrorCode.UnexpectedPeer, "PKI-ID of remote peer doesn't match expected PKI-ID");
    }
    return { pkiId: result.pkiId, identity: result.identity };
  }

  /**
   * Subscribes to received messages that `predicate` accepts (all by
   * default). Each matching message is delivered to every matching
   * subscription, in order, never dropped: a subscription that is not read
   * holds back the connections that deliver to it. Close the subscription (or
   * break out of `for await`) when done; `stop()` ends it.
   */
  accept(predicate: Predicate<ReceivedMessage> = () => true): Subscription<ReceivedMessage> {
    return this.demux.subscribe(predicate);
  }

  /**
   * Drains and closes the connection to `peer`: by PKI-ID when given,
   * otherwise the connection dialed to its endpoint. Emits no presumed-dead.
   */
  closeConn(peer: RemotePeer): void {
    if (peer.pkiId !== undefined && peer.pkiId.length > 0) this.store.closeByPki(pkiIdHex(peer.pkiId));
    else this.store.closeByEndpoint(peer.endpoint);
  }

  /**
   * Stops: refuses new work, fails pending acknowledgements with "comm is
   * stopping", drains every connection (within `drainTimeoutMs`), ends every
   * subscription and event stream. Idempotent; resolves when all is closed.
   */
  stop(): Promise<void> {
    this.stopped ??= this.doStop();
    return this.stopped;
  }

  /** True once {@link Comm.stop} was called. */
  get isStopping(): boolean {
    return this.stopping;
  }

  /**
   * Serves one inbound GossipStream (called by transports): admission limits,
   * handshake, registration, then reading until it ends. Resolves when the
   * stream is done; never rejects (refusals end the stream with their status).
   */
  handleStream(stream: WireStream): Promise<void> {
    return this.serveInbound(stream);
  }

  /** Current counters and gauges. */
  stats(): CommStats {
    let sendBuffered = 0;
    for (const c of this.store.connections()) sendBuffered += c.queued;
    for (const p of this.pendingDials.values()) sendBuffered += p.frames.length;
    const c = this.counts;
    return {
      connections: { ...c.connections },
      messagesSent: c.messagesSent,
      messagesReceived: c.messagesReceived,
      bytesSent: c.bytesSent,
      bytesReceived: c.bytesReceived,
      overflow: c.overflow,
      dropped: c.dropped,
      presumedDead: c.presumedDead,
      handshakeFailures: c.handshakeFailures,
      sendBuffered,
      unauthenticatedStreams: this.admission.inHandshake,
      pendingAcks: this.acks.pending,
    };
  }

  /** The registered connections. */
  connections(): ConnectionSnapshot[] {
    return this.store.connections().map((c) => ({ ...c.info, state: c.state, queued: c.queued }));
  }

  // --- send path -----------------------------------------------------------

  private encode(message: GossipMessage | Envelope): Uint8Array {
    const frame = message.$typeName === "gossip.Envelope" ? encodeEnvelope(message) : encodeUnsignedEnvelope(message);
    if (frame.length > this.config.maxMessageBytes) {
      throw new GossipError(
        ErrorCode.MessageTooLarge,
        `message size ${frame.length} is larger than configured maxMessageBytes ${this.config.maxMessageBytes}`,
      );
    }
    return frame;
  }

  private sendTo(peer: RemotePeer, frame: Uint8Array): Promise<void> | undefined {
    const conn = this.store.lookup(peer);
    if (conn === undefined) return this.queueForDial(peer, frame);
    if (conn.offer(frame)) return undefined;
    return this.overflow(conn, frame);
  }

  private overflow(conn: Connection, frame: Uint8Array): Promise<void> | undefined {
    switch (this.config.overflowPolicy) {
      case "block":
        return conn.put(frame).catch(() => this.metrics.dropped("connection_closed", 1));
      case "disconnect": {
        this.metrics.overflow();
        const error = new GossipError(ErrorCode.Overflow, `send buffer to ${conn.info.endpoint} is full; peer is unresponsive`);
        this.peerLog(conn.info).warn({ code: error.code }, "send buffer overflowed; closing the connection");
        conn.abort(error);
        this.emitPresumedDead(conn.info.pkiId, conn.info.endpoint, error);
        return undefined;
      }
      case "drop":
        this.metrics.overflow();
        this.limiter.maybe(`overflow ${conn.pkiHex}`, (suppressed) =>
          this.peerLog(conn.info).debug({ suppressed }, "send buffer overflowed; dropping message"),
        );
        return undefined;
    }
  }

  /** Queues a frame behind the dial of a peer that has no connection yet (bounded like a send buffer). */
  private queueForDial(peer: RemotePeer, frame: Uint8Array): Promise<void> | undefined {
    const key = peer.pkiId !== undefined && peer.pkiId.length > 0 ? pkiIdHex(peer.pkiId) : `@${peer.endpoint}`;
    let pending = this.pendingDials.get(key);
    if (pending === undefined) {
      pending = { frames: [], blocked: [] };
      this.pendingDials.set(key, pending);
      this.flushAfterDial(peer, key, pending);
    }
    if (pending.frames.length < this.config.sendBuffSize) {
      pending.frames.push(frame);
      return undefined;
    }
    if (this.config.overflowPolicy === "block") {
      return new Promise((resolve) => pending.blocked.push({ frame, resolve }));
    }
    this.metrics.overflow();
    return undefined;
  }

  private flushAfterDial(peer: RemotePeer, key: string, pending: PendingDial): void {
    this.store.getOrDial(peer).then(
      (conn) => {
        this.pendingDials.delete(key);
        for (const frame of pending.frames) {
          if (!conn.offer(frame)) void this.overflow(conn, frame);
        }
        for (const b of pending.blocked) {
          conn.put(b.frame).then(b.resolve, () => {
            this.metrics.dropped("connection_closed", 1);
            b.resolve();
          });
        }
      },
      (e: unknown) => {
        this.pendingDials.delete(key);
        const error = GossipError.from(e);
        this.metrics.dropped("dial_failed", pending.frames.length + pending.blocked.length);
        for (const b of pending.blocked) b.resolve();
        if (error.code !== ErrorCode.Stopping) this.emitPresumedDead(peer.pkiId ?? new Uint8Array(0), peer.endpoint, error);
      },
    );
  }

  private async sendOneWithAck(
    peer: RemotePeer,
    frame: Uint8Array,
    nonce: bigint,
    deadline: number,
  ): Promise<GossipError | undefined> {
    let timer: unknown;
    const timedOut = new Promise<never>((_, reject) => {
      timer = this.clock.setTimeout(
        () => reject(new GossipError(ErrorCode.AckTimeout, "timed out")),
        Math.max(0, deadline - this.clock.now()),
      );
    });
    let graceTimer: unknown;
    let done = false;
    let unwatch = () => {};
    try {
      const conn = await Promise.race([this.store.getOrDial(peer), timedOut]);
      const ack = this.acks.expect(nonce, conn.pkiHex, deadline - this.clock.now());
      ack.catch(() => {});
      await Promise.race([conn.put(frame), timedOut]);
      // After the connection closes, the ack can still come on a connection
      // that replaced it (the loser of a simultaneous dial flushes before it
      // closes, and the remote answers on the winner). Wait connTimeoutMs for
      // that, then report the close instead of waiting for the deadline.
      // Not conn.closed.then(...): a reaction per call on a promise that lives
      // as long as the connection kept every call's closure until it closed.
      const cut = new Promise<never>((_, reject) => {
        unwatch = this.watchClose(conn, () => {
          if (done) return; // answered already: no timer to leak
          const reason = conn.error;
          graceTimer = this.clock.setTimeout(
            () =>
              reject(
                new GossipError(
                  ErrorCode.Closed,
                  `connection to ${peer.endpoint} closed before the ack${reason ? `: ${reason.message}` : ""}`,
                  { cause: reason, remoteCode: reason?.remoteCode },
                ),
              ),
            this.config.connTimeoutMs,
          );
        });
      });
      cut.catch(() => {});
      const text = await Promise.race([ack, cut]);
      return text === "" ? undefined : new GossipError(ErrorCode.Nack, text);
    } catch (e) {
      const error = GossipError.from(e);
      if (error.code === ErrorCode.DialFailed || error.code === ErrorCode.DialTimeout || error.code === ErrorCode.TlsFailed || error.code === ErrorCode.PingFailed) {
        this.emitPresumedDead(peer.pkiId ?? new Uint8Array(0), peer.endpoint, error);
      }
      return error;
    } finally {
      done = true;
      unwatch();
      this.clock.clearTimeout(timer);
      this.clock.clearTimeout(graceTimer);
      timedOut.catch(() => {});
    }
  }

  /** Runs `fn` once `conn` has closed (soon, if it has already); returns the unsubscribe. */
  private watchClose(conn: Connection, fn: () => void): () => void {
    let w = this.closeWatchers.get(conn);
    if (w === undefined) {
      const watch = { fns: new Set<() => void>(), fired: false };
      w = watch;
      this.closeWatchers.set(conn, watch);
      void conn.closed.then(() => {
        watch.fired = true;
        for (const f of [...watch.fns]) f();
        watch.fns.clear();
      });
    }
    if (w.fired) {
      queueMicrotask(fn);
      return () => {};
    }
    const fns = w.fns;
    fns.add(fn);
    return () => fns.delete(fn);
  }

  private emitPresumedDead(pkiId: PkiId, endpoint: string, error: GossipError): void {
    if (this.stopping) return;
    this.metrics.presumedDead();
    this.limiter.maybe(`dead ${endpoint} ${error.code}`, (suppressed) =>
      this.log.warn({ pkiId: pkiIdHex(pkiId), address: endpoint, code: error.code, err: error.message, suppressed }, "peer presumed dead"),
    );
    this.presumedDead.emit({ pkiId, endpoint, error });
  }

  // --- connections ---------------------------------------------------------

  private handshakeOptions(probe: boolean) {
    return { crypto: this.crypto, pkiId: this.pkiId, probe, connTimeoutMs: this.config.connTimeoutMs, clock: this.clock };
  }

  /** Dials `peer` for the store: open stream, handshake, expected-PKI-ID rule. */
  private async dial(peer: RemotePeer, signal: AbortSignal): Promise<Connection> {
    const stream = await this.dialer.openStream(peer.endpoint, { signal });
    let hs;
    try {
      hs = await handshake(stream, this.handshakeOptions(false));
    } catch (e) {
      const error = GossipError.from(e);
      stream.abort(error);
      this.handshakeFailed("outbound", stream.remoteAddress, error);
      throw error;
    }
    if (peer.pkiId !== undefined && peer.pkiId.length > 0 && !bytesEqual(peer.pkiId, hs.pkiId)) {
      const expected = this.identities.get(peer.pkiId);
      const sameOrg =
        expected !== undefined && this.crypto.organizationOf(expected) === this.crypto.organizationOf(hs.identity);
      if (!sameOrg) {
        const error = new GossipError(ErrorCode.UnexpectedPeer, "authentication failure");
        this.log.warn(
          { address: peer.endpoint, expected: pkiIdHex(peer.pkiId), pkiId: pkiIdHex(hs.pkiId) },
          "remote endpoint claims to be a different peer",
        );
        stream.abort(error);
        this.handshakeFailed("outbound", peer.endpoint, error);
        throw error;
      }
      this.log.info(
        { address: peer.endpoint, oldPkiId: pkiIdHex(peer.pkiId), pkiId: pkiIdHex(hs.pkiId) },
        "peer changed its PKI-ID",
      );
      this.metrics.identitySwitch();
      this.identitySwitch.emit({ oldPkiId: peer.pkiId, newPkiId: hs.pkiId, endpoint: peer.endpoint });
    }
    this.metrics.handshake("outbound", "ok");
    this.identities.put(hs.pkiId, hs.identity, this.crypto.expiresAt(hs.identity));
    return this.newConnection(stream, hs, "outbound");
  }

  private async serveInbound(stream: WireStream): Promise<void> {
    if (this.stopping) {
      stream.abort(new GossipError(ErrorCode.Stopping, "shutting down"));
      return stream.closed;
    }
    const address = hostOf(stream.remoteAddress);
    const denied = this.admission.admit(address);
    if (denied) {
      this.metrics.refused(denied.code);
      this.limiter.maybe(`refused ${address}`, (suppressed) =>
        this.log.warn({ address: stream.remoteAddress, code: denied.code, err: denied.message, suppressed }, "inbound stream refused"),
      );
      stream.abort(denied);
      return stream.closed;
    }
    let hs;
    this.handshaking.add(stream);
    try {
      hs = await handshake(stream, this.handshakeOptions(false));
    } catch (e) {
      const error = GossipError.from(e);
      stream.abort(error);
      this.handshakeFailed("inbound", stream.remoteAddress, error);
      return stream.closed;
    } finally {
      this.handshaking.delete(stream);
      this.admission.release(address);
    }
    if (this.stopping) {
      stream.abort(new GossipError(ErrorCode.Stopping, "shutting down"));
      return stream.closed;
    }
    if (hs.probe) {
      this.metrics.handshake("inbound", "probe");
      this.identities.put(hs.pkiId, hs.identity, this.crypto.expiresAt(hs.identity));
      this.log.debug({ pkiId: pkiIdHex(hs.pkiId), address: stream.remoteAddress }, "peer probed us");
      stream.end();
      // The prober closes; do not keep a stream open for it.
      await Promise.race([stream.closed, new Promise((r) => this.clock.setTimeout(() => r(undefined), this.config.connTimeoutMs))]);
      stream.abort();
      return stream.closed;
    }
    this.metrics.handshake("inbound", "ok");
    this.identities.put(hs.pkiId, hs.identity, this.crypto.expiresAt(hs.identity));
    const conn = this.newConnection(stream, hs, "inbound");
    try {
      this.store.register(conn);
    } catch (e) {
      const error = GossipError.from(e);
      this.metrics.refused(error.code);
      this.limiter.maybe(`register ${conn.pkiHex} ${error.code}`, (suppressed) =>
        this.peerLog(conn.info).warn({ code: error.code, err: error.message, suppressed }, "inbound connection refused"),
      );
      conn.abort(error);
    }
    return conn.closed;
  }

  private newConnection(
    stream: WireStream,
    hs: Awaited<ReturnType<typeof handshake>>,
    direction: Direction,
  ): Connection {
    return new Connection(
      stream,
      hs,
      {
        pkiId: hs.pkiId,
        identity: hs.identity,
        endpoint: stream.remoteAddress,
        auth: { signedData: hs.signedData, signature: hs.signature },
        direction,
      },
      {
        config: this.config,
        metrics: this.metrics,
        clock: this.clock,
        hooks: {
          onMessage: (message, envelope, conn) => {
            if (message.content.case === "ack") {
              this.acks.publish(message.nonce, conn.pkiHex, message.content.value.error);
              return undefined;
            }
            return this.demux.publish(
              new ReceivedMessageImpl(message, envelope, conn, () => this.metrics.dropped("connection_closed", 1)),
            );
          },
          onWriteError: (conn, error) => {
            this.peerLog(conn.info).warn({ code: error.code, err: error.message }, "peer isn't responsive");
            this.emitPresumedDead(conn.info.pkiId, conn.info.endpoint, error);
          },
          onReadError: (conn, error) => {
            if (countedReadErrors.has(error.code)) this.metrics.refused(error.code);
            const level = error.code === ErrorCode.Canceled || error.code === ErrorCode.Closed ? "debug" : "warn";
            this.limiter.maybe(`read ${conn.pkiHex} ${error.code}`, (suppressed) =>
              this.peerLog(conn.info)[level]({ code: error.code, err: error.message, suppressed }, "connection failed"),
            );
          },
          onClosed: () => {},
        },
      },
    );
  }

  private handshakeFailed(direction: Direction, address: string, error: GossipError): void {
    if (authenticationCodes.has(error.code)) this.counts.handshakeFailures++;
    this.metrics.handshake(direction, error.code);
    this.limiter.maybe(`handshake ${direction} ${hostOf(address)} ${error.code}`, (suppressed) =>
      this.log.warn({ direction, address, code: error.code, err: error.message, suppressed }, "handshake failed"),
    );
  }

  private peerLog(info: ConnectionInfo): Logger {
    return this.log.child({ pkiId: pkiIdHex(info.pkiId), address: info.endpoint, direction: info.direction });
  }

  private async doStop(): Promise<void> {
    this.stopping = true;
    this.acks.rejectAll(new GossipError(ErrorCode.Stopping, "comm is stopping"));
    // Streams still in the handshake are refused; registered connections drain below.
    for (const s of this.handshaking) s.abort(new GossipError(ErrorCode.Stopping, "shutting down"));
    await this.store.shutdown();
    this.demux.close();
    this.presumedDead.end();
    this.identitySwitch.end();
    this.connectionEvents.end();
  }
}

/** Read errors of an authenticated connection that are the remote's fault, counted in `refused`. */
const countedReadErrors: ReadonlySet<ErrorCode> = new Set([
  ErrorCode.MalformedMessage,
  ErrorCode.MalformedFrame,
  ErrorCode.MessageTooLarge,
]);

/** The host part of `host:port` (IPv6 in brackets or bare). */
function hostOf(address: string): string {
  if (address.startsWith("[")) return address.slice(1, address.indexOf("]"));
  const i = address.lastIndexOf(":");
  return i > 0 && address.indexOf(":") === i ? address.slice(0, i) : address;
}

class MutableStats {
  connections = { inbound: 0, outbound: 0 };
  messagesSent = 0;
  messagesReceived = 0;
  bytesSent = 0;
  bytesReceived = 0;
  overflow = 0;
  dropped = 0;
  presumedDead = 0;
  handshakeFailures = 0;
}

/** Wraps `inner` so that the comm keeps its own totals for {@link Comm.stats}. */
function countingMetrics(inner: CommMetrics, c: MutableStats): CommMetrics {
  return {
    messagesSent(count, bytes) {
      c.messagesSent += count;
      c.bytesSent += bytes;
      inner.messagesSent(count, bytes);
    },
    messagesReceived(count, bytes) {
      c.messagesReceived += count;
      c.bytesReceived += bytes;
      inner.messagesReceived(count, bytes);
    },
    overflow() {
      c.overflow++;
      inner.overflow();
    },
    dropped(reason, count) {
      c.dropped += count;
      inner.dropped(reason, count);
    },
    presumedDead() {
      c.presumedDead++;
      inner.presumedDead();
    },
    handshake: (d, o) => inner.handshake(d, o),
    connectionOpened: (d) => inner.connectionOpened(d),
    connectionClosed: (d) => inner.connectionClosed(d),
    refused: (r) => inner.refused(r),
    identitySwitch: () => inner.identitySwitch(),
  };
}
