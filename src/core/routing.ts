/**
 * Where a received message goes, in one place: every authenticated
 * connection is created here with its hooks, and each Envelope it reads is
 * shown to the subscriptions' screens (see screen.ts), then, unless every
 * subscription declined it, decoded and routed either to the ack registry
 * (acknowledgements, matched by nonce and the connection's authenticated
 * PKI-ID) or to the demultiplexer (everything else, for `Comm.accept`
 * subscribers, but those that declined it).
 *
 * @private Internal code, not part of the public API.
 */
import type { Envelope } from "../gen/gossip/message_pb.js";
import type { AckRegistry } from "./ack.js";
import { Connection, type ConnectionDeps, type ConnectionHooks, HandshakeInfo } from "./connection.js";
import type { CommContext } from "./context.js";
import type { Demux, Subscription } from "./demux.js";
import { parseGossipMessage } from "./envelope.js";
import { ErrorCode, type GossipError } from "./errors.js";
import type { HandshakeResult } from "./handshake.js";
import { pkiIdHex } from "./identity.js";
import type { Direction } from "./metrics.js";
import { type ReceivedMessage, ReceivedMessageImpl } from "./received-message.js";
import { type EnvelopeScreen, Screens } from "./screen.js";
import type { WireStream } from "./transport.js";

/** Read errors of an authenticated connection that are the remote's fault, counted in `refused`. */
const countedReadErrors: ReadonlySet<ErrorCode> = new Set([
  ErrorCode.MalformedMessage,
  ErrorCode.MalformedFrame,
  ErrorCode.MessageTooLarge,
]);

/** Creates a comm's connections and routes what they receive. */
export class Router {
  private readonly hooks: ConnectionHooks;
  /** What a reply that can no longer be queued counts as (one function for every received message). */
  private readonly replyDropped: () => void;
  /** What every connection gets: one object for all (an idle connection keeps it for its whole life). */
  private readonly deps: ConnectionDeps;
  private readonly screens = new Screens<ReceivedMessage>();

  /** `onClosed`: every registered connection's close ({@link ConnectionHooks.onClosed}), for the connection store. */
  constructor(
    private readonly ctx: CommContext,
    private readonly acks: AckRegistry,
    private readonly demux: Demux<ReceivedMessage>,
    onClosed?: (conn: Connection) => void,
  ) {
    this.replyDropped = () => ctx.metrics.dropped("connection_closed", 1);
    this.hooks = {
      onMessage: (envelope, conn) => this.route(envelope, conn),
      onWriteError: (conn, error) => {
        ctx.peerLog(conn.info).warn({ code: error.code, err: error.message }, "peer isn't responsive");
        ctx.presumedDead(conn.info.pkiId, conn.info.endpoint, error);
      },
      onReadError: (conn, error) => this.readFailed(conn, error),
      onClosed,
    };
    this.deps = { config: ctx.config, metrics: ctx.metrics, clock: ctx.clock, hooks: this.hooks };
  }

  /** An authenticated connection over `stream` (reading starts at once); not yet registered. */
  connection(stream: WireStream, hs: HandshakeResult, direction: Direction): Connection {
    return new Connection(
      stream,
      hs,
      new HandshakeInfo(hs.pkiId, pkiIdHex(hs.pkiId), hs.identity, stream.remoteAddress, hs, direction),
      this.deps,
    );
  }

  /** Shows every message `sub` would receive to `screen` first (see {@link EnvelopeScreen}). */
  screen(sub: Subscription<ReceivedMessage>, screen: EnvelopeScreen): void {
    this.screens.add(sub, screen);
  }

  /**
   * One received Envelope: unless every subscription's screen declined it,
   * its payload is decoded (throws `MalformedMessage`); an ack settles the
   * `sendWithAck` waiting for it (or is discarded), anything else goes to the
   * subscribers that did not decline it. A returned promise (a subscriber is
   * full) holds the connection's reading back.
   */
  route(envelope: Envelope, conn: Connection): Promise<void> | undefined {
    const declined = this.screens.empty ? undefined : this.screens.declined(envelope, conn.info);
    if (declined !== undefined && declined.length >= this.demux.size) return undefined;
    const message = parseGossipMessage(envelope.payload);
    if (message.content.case === "ack") {
      this.acks.publish(message.nonce, conn.pkiHex, message.content.value.error);
      return undefined;
    }
    return this.demux.publish(new ReceivedMessageImpl(message, envelope, conn, this.replyDropped), declined);
  }

  private readFailed(conn: Connection, error: GossipError): void {
    const { ctx } = this;
    if (countedReadErrors.has(error.code)) ctx.metrics.refused(error.code);
    const level = error.code === ErrorCode.Canceled || error.code === ErrorCode.Closed ? "debug" : "warn";
    ctx.limiter.maybe(`read ${conn.pkiHex} ${error.code}`, (suppressed) =>
      ctx.peerLog(conn.info)[level]({ code: error.code, err: error.message, suppressed }, "connection failed"),
    );
  }
}
