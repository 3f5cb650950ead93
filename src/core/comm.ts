import type { Envelope, GossipMessage } from "../gen/gossip/message_pb.js";
import { AckRegistry, AckSender, AggregatedSendResult } from "./ack.js";
import { type Clock, systemClock } from "./clock.js";
import { type CommConfig, type CommOptions, resolveCommConfig } from "./config.js";
import type { ConnectionInfo, ConnectionState } from "./connection.js";
import { ConnectionStore } from "./connection-store.js";
import { CommContext, type PresumedDeadEvent } from "./context.js";
import type { CryptoService } from "./crypto.js";
import { Demux, type Predicate, type Subscription } from "./demux.js";
import { encodeUnsignedEnvelope, envelopeBytes, signMessage } from "./envelope.js";
import { ErrorCode, GossipError } from "./errors.js";
import { EventStream } from "./event-stream.js";
import { type PeerIdentity, type PkiId, pkiIdHex, type RemotePeer } from "./identity.js";
import { IdentityStore, type KnownIdentities } from "./identity-store.js";
import { Inbound } from "./inbound.js";
import { type Logger, LogLimiter, silentLogger } from "./logger.js";
import { type CommMetrics, noopMetrics } from "./metrics.js";
import { type IdentitySwitchEvent, Outbound } from "./outbound.js";
import type { ReceivedMessage } from "./received-message.js";
import { Router } from "./routing.js";
import type { EnvelopeScreen } from "./screen.js";
import { type CommStats, countingMetrics, MutableStats } from "./stats.js";
import type { Dialer, WireStream } from "./transport.js";

export type { PresumedDeadEvent } from "./context.js";
export type { IdentitySwitchEvent } from "./outbound.js";
export type { EnvelopeScreen } from "./screen.js";
export type { CommStats } from "./stats.js";

/** A connection was registered (`connected`) or closed (`disconnected`). */
export interface ConnectionEvent {
  readonly type: "connected" | "disconnected";
  readonly connection: ConnectionInfo;
  /** For `disconnected`: the error it closed with, if any. */
  readonly error?: GossipError;
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
 *
 * A facade over its parts, one file each: `inbound.ts` (admission, handshake,
 * registration of accepted streams), `outbound.ts` (dialing, probes, the send
 * queues and their overflow policy), `ack.ts` (`sendWithAck`), `routing.ts`
 * (where a received message goes), `connection-store.ts` (one connection per
 * peer), `stats.ts` (its own totals), `context.ts` (what the parts share).
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

  private readonly ctx: CommContext;
  private readonly counts = new MutableStats();
  private readonly store: ConnectionStore;
  private readonly acks: AckRegistry;
  private readonly ackSender: AckSender;
  private readonly demux: Demux<ReceivedMessage>;
  private readonly router: Router;
  private readonly inbound: Inbound;
  private readonly outbound: Outbound;
  private stopped: Promise<void> | undefined;

  constructor(init: CommInit) {
    const config = resolveCommConfig(init.options);
    const clock = init.clock ?? systemClock;
    const log = (init.logger ?? silentLogger).child({ component: "gossip.comm" });
    const onEventDrop = () => log.debug({}, "event subscriber fell behind; oldest event dropped");
    this.config = config;
    this.presumedDead = new EventStream(config.eventBuffSize, onEventDrop);
    this.identitySwitch = new EventStream(config.eventBuffSize, onEventDrop);
    this.connectionEvents = new EventStream(config.eventBuffSize, onEventDrop);
    const ctx = new CommContext({
      config,
      crypto: init.crypto,
      clock,
      log,
      limiter: new LogLimiter(() => clock.now()),
      metrics: countingMetrics(init.metrics ?? noopMetrics, this.counts),
      counts: this.counts,
      identities: new IdentityStore(clock),
      presumedDead: this.presumedDead,
    });
    this.ctx = ctx;
    this.pkiId = ctx.pkiId;
    this.acks = new AckRegistry(clock);
    this.demux = new Demux<ReceivedMessage>(config.acceptBuffSize);
    const router = new Router(ctx, this.acks, this.demux, (conn) => this.store.connectionClosed(conn));
    this.router = router;
    this.store = new ConnectionStore({
      dial: (peer, signal) => this.outbound.dial(peer, signal),
      maxConnectionsPerPeer: config.maxConnectionsPerPeer,
      selfPkiHex: pkiIdHex(this.pkiId),
      simultaneousWindowMs: config.dialTimeoutMs + config.connTimeoutMs,
      clock,
      onRegistered: (conn) => {
        ctx.metrics.connectionOpened(conn.info.direction);
        this.connectionEvents.emit({ type: "connected", connection: conn.info });
      },
      onUnregistered: (conn) => {
        ctx.metrics.connectionClosed(conn.info.direction);
        this.connectionEvents.emit({ type: "disconnected", connection: conn.info, error: conn.error });
      },
    });
    this.inbound = new Inbound(ctx, this.store, router);
    this.outbound = new Outbound(ctx, this.store, router, init.dialer, this.identitySwitch);
    this.ackSender = new AckSender(this.acks, {
      clock,
      connTimeoutMs: config.connTimeoutMs,
      getOrDial: (peer) => this.store.getOrDial(peer),
      current: (conn) => this.store.current(conn),
      dialFailed: (peer, error) => ctx.presumedDead(peer.pkiId ?? new Uint8Array(0), peer.endpoint, error),
    });
  }

  /**
   * Lets the comm key the connections of peers that dial us on strings its
   * user holds already: `names(hex)` returns the user's string equal to
   * `hex` (a lower-case hex PKI-ID), or undefined. The process then holds one
   * string per such peer, not two (~80 bytes each). Dials key on the caller's
   * string anyway (see `rememberPkiIdHex`). `undefined` stops it; one user
   * at a time (a Membership sets it and clears it on stop).
   */
  useHexNames(names: ((pkiHex: string) => string | undefined) | undefined): void {
    this.ctx.hexNames = names;
  }

  /**
   * Lets the comm take the identities of known peers from its user instead
   * of keeping a copy of its own, as Fabric's comm and discovery share one
   * identity mapper. While set, the comm's identity store takes no new
   * identity (each connection keeps its own, and the user learns it from the
   * `connected` event); the identity-switch check of a dial asks the user
   * first, then the store; and a handshake presenting an identity the user
   * holds a verifier for is checked with it (validated and unexpired while
   * held, see {@link KnownIdentities}). The user must keep the identity of
   * every peer it stays connected to. `undefined` stops it; one user at a
   * time (a Membership sets it and clears it on stop).
   */
  useIdentities(identities: KnownIdentities | undefined): void {
    this.ctx.userIdentities = identities;
  }

  /** Signs `message` with our identity (Fabric's `SignMessage`), ready for {@link Comm.send}. */
  sign(message: GossipMessage): Envelope {
    return signMessage(this.ctx.crypto, message);
  }

  /**
   * Sends `message` to each peer, fire-and-forget, in order per peer. A
   * GossipMessage goes out unsigned; pass an Envelope (see {@link Comm.sign})
   * to send it as built. The message is encoded once for all peers; a
   * received Envelope left as it arrived is not encoded at all: its exact
   * bytes go out again, unknown fields included (see {@link Comm.forward}).
   *
   * When a peer's send buffer is full (or, while it is being dialed, the
   * queue in front of the dial) the `overflowPolicy` applies: `drop` (count
   * it), `disconnect` (presumed dead), or `block` (the returned promise
   * settles when every peer took the message; await it for back-pressure:
   * beyond `maxBlockedSends` waiting sends per peer, a send is dropped and
   * counted as an overflow, as `drop` does).
   * Failures are reported through {@link Comm.presumedDead} and metrics, never
   * by rejecting. A no-op when stopping or without peers.
   *
   * Throws `MessageTooLarge` when the encoded message exceeds `maxMessageBytes`.
   */
  send(message: GossipMessage | Envelope, ...peers: RemotePeer[]): Promise<void> {
    return this.sendTo(message, peers);
  }

  /** {@link Comm.send} to `peers` (an array, not spread again: {@link Comm.forward} is on a relay's hot path). */
  private sendTo(message: GossipMessage | Envelope, peers: readonly RemotePeer[]): Promise<void> {
    if (this.ctx.stopping || peers.length === 0) return resolved;
    const frame = this.encode(message);
    if (peers.length === 1) return this.outbound.send(peers[0] as RemotePeer, frame) ?? resolved;
    let blocked: Promise<void>[] | undefined;
    for (const peer of peers) {
      const r = this.outbound.send(peer, frame);
      if (r === undefined) continue;
      blocked ??= [];
      blocked.push(r);
    }
    return blocked === undefined ? resolved : Promise.all(blocked).then(() => undefined);
  }

  /**
   * Forwards a received message to each peer as the exact bytes it arrived
   * in (Fabric re-sends the signed Envelope as it got it): nothing is decoded
   * again nor encoded, and what this peer does not know (unknown fields, a
   * newer sender's additions) passes through untouched. When the Envelope was
   * changed since (a field replaced), it is encoded anew. Otherwise exactly
   * {@link Comm.send} (same policy, same promise).
   */
  forward(received: ReceivedMessage, ...peers: RemotePeer[]): Promise<void> {
    return this.sendTo(received.envelope, peers);
  }

  /**
   * Sends `message` with a fresh random nonce (unsigned, as Fabric does) to
   * each peer, waiting for room in send buffers, and collects their
   * acknowledgements. Resolves as soon as `minAck` peers acknowledged without
   * error or every peer answered; a peer that does not answer within
   * `timeoutMs` counts as failed ("timed out"). Never rejects.
   */
  async sendWithAck(message: GossipMessage, timeoutMs: number, minAck: number, ...peers: RemotePeer[]): Promise<AggregatedSendResult> {
    if (this.ctx.stopping && peers.length > 0) {
      const error = new GossipError(ErrorCode.Stopping, "comm is stopping");
      return new AggregatedSendResult(peers.map((peer) => ({ peer, error })));
    }
    return this.ackSender.send((nonce) => this.encode({ ...message, nonce }), timeoutMs, minAck, peers);
  }

  /**
   * Fabric's shallow liveness check: a fresh connection to `peer.endpoint`
   * and one Ping (within `dialTimeoutMs` + `connTimeoutMs`), no handshake.
   * Rejects with a {@link GossipError}.
   */
  async probe(peer: RemotePeer): Promise<void> {
    if (this.ctx.stopping) throw new GossipError(ErrorCode.Stopping, "stopping");
    return this.outbound.probe(peer);
  }

  /**
   * Fabric's deep probe: dials `peer`, runs an authenticated handshake with
   * `probe = true` (the remote answers but registers nothing), closes, and
   * returns the remote's identity. Rejects with `UnexpectedPeer` when
   * `peer.pkiId` is given and another PKI-ID answered.
   */
  handshake(peer: RemotePeer): Promise<{ pkiId: PkiId; identity: PeerIdentity }> {
    return this.outbound.handshake(peer);
  }

  /**
   * Subscribes to received messages that `predicate` accepts (all by
   * default). Each matching message is delivered to every matching
   * subscription, in order, never dropped: a subscription that is not read
   * holds back the connections that deliver to it. Close the subscription (or
   * break out of `for await`) when done; `stop()` ends it.
   *
   * `screen`, when given, sees each received Envelope first, before its
   * payload is decoded, and may decline it: the subscription then does not
   * receive it, and a message every subscription declined is not decoded at
   * all (see {@link EnvelopeScreen} for what a screen must guarantee).
   */
  accept(predicate: Predicate<ReceivedMessage> = () => true, screen?: EnvelopeScreen): Subscription<ReceivedMessage> {
    const sub = this.demux.subscribe(predicate);
    if (screen !== undefined) this.router.screen(sub, screen);
    return sub;
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
    return this.ctx.stopping;
  }

  /**
   * Serves one inbound GossipStream (called by transports): admission limits,
   * handshake, registration, then reading until it ends (by itself: the
   * connection reads on). Resolves once the stream is a registered connection
   * ({@link Comm.connectionEvents} reports its end), or once it closed when it
   * was refused or only probed us; never rejects (refusals end the stream with
   * their status).
   */
  handleStream(stream: WireStream): Promise<void> {
    return this.inbound.serve(stream);
  }

  /** Current counters and gauges. */
  stats(): CommStats {
    let sendBuffered = this.outbound.queued;
    for (const c of this.store.connections()) sendBuffered += c.queued;
    return this.counts.snapshot({
      sendBuffered,
      unauthenticatedStreams: this.inbound.inHandshake,
      pendingAcks: this.acks.pending,
    });
  }

  /** The registered connections. */
  connections(): ConnectionSnapshot[] {
    return this.store.connections().map((c) => {
      // Field by field: a connection's info reads `auth` and `direction` through getters, which a spread would miss.
      const { pkiId, pkiIdHex, identity, endpoint, auth, direction } = c.info;
      return { pkiId, pkiIdHex, identity, endpoint, auth, direction, state: c.state, queued: c.queued };
    });
  }

  private encode(message: GossipMessage | Envelope): Uint8Array {
    const frame = message.$typeName === "gossip.Envelope" ? envelopeBytes(message) : encodeUnsignedEnvelope(message);
    if (frame.length > this.config.maxMessageBytes) {
      throw new GossipError(
        ErrorCode.MessageTooLarge,
        `message size ${frame.length} is larger than configured maxMessageBytes ${this.config.maxMessageBytes}`,
      );
    }
    return frame;
  }

  private async doStop(): Promise<void> {
    this.ctx.stop();
    this.acks.rejectAll(new GossipError(ErrorCode.Stopping, "comm is stopping"));
    this.inbound.refuseHandshaking();
    this.outbound.close();
    await this.store.shutdown();
    this.demux.close();
    this.presumedDead.end();
    this.identitySwitch.end();
    this.connectionEvents.end();
  }
}
