/**
 * Where a received message goes, in one place: every authenticated
 * connection is created here with its hooks, and each message it reads is
 * routed either to the ack registry (acknowledgements, matched by nonce and
 * the connection's authenticated PKI-ID) or to the demultiplexer (everything
 * else, for `Comm.accept` subscribers).
 *
 * @private Internal code, not part of the public API.
 */
import type { Envelope, GossipMessage } from "../gen/gossip/message_pb.js";
import type { AckRegistry } from "./ack.js";
import { Connection, type ConnectionDeps, type ConnectionHooks, HandshakeInfo } from "./connection.js";
import type { CommContext } from "./context.js";
import type { Demux } from "./demux.js";
import { ErrorCode, type GossipError } from "./errors.js";
import type { HandshakeResult } from "./handshake.js";
import type { Direction } from "./metrics.js";
import { type ReceivedMessage, ReceivedMessageImpl } from "./received-message.js";
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

  constructor(
    private readonly ctx: CommContext,
    private readonly acks: AckRegistry,
    private readonly demux: Demux<ReceivedMessage>,
  ) {
    this.replyDropped = () => ctx.metrics.dropped("connection_closed", 1);
    this.hooks = {
      onMessage: (message, envelope, conn) => this.route(message, envelope, conn),
      onWriteError: (conn, error) => {
        ctx.peerLog(conn.info).warn({ code: error.code, err: error.message }, "peer isn't responsive");
        ctx.presumedDead(conn.info.pkiId, conn.info.endpoint, error);
      },
      onReadError: (conn, error) => this.readFailed(conn, error),
    };
    this.deps = { config: ctx.config, metrics: ctx.metrics, clock: ctx.clock, hooks: this.hooks };
  }

  /** An authenticated connection over `stream` (reading starts at once); not yet registered. */
  connection(stream: WireStream, hs: HandshakeResult, direction: Direction): Connection {
    return new Connection(stream, hs, new HandshakeInfo(hs.pkiId, hs.identity, stream.remoteAddress, hs, direction), this.deps);
  }

  /**
   * One received message: an ack settles the `sendWithAck` waiting for it
   * (or is discarded), anything else goes to the subscribers. A returned
   * promise (a subscriber is full) holds the connection's reading back.
   */
  route(message: GossipMessage, envelope: Envelope, conn: Connection): Promise<void> | undefined {
    if (message.content.case === "ack") {
      this.acks.publish(message.nonce, conn.pkiHex, message.content.value.error);
      return undefined;
    }
    return this.demux.publish(new ReceivedMessageImpl(message, envelope, conn, this.replyDropped));
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
