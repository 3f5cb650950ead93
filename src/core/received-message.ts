import { create } from "@bufbuild/protobuf";
import { AcknowledgementSchema, type Envelope, type GossipMessage, GossipMessageSchema } from "../gen/gossip/message_pb.js";
import type { Connection, ConnectionInfo } from "./connection.js";
import { encodeUnsignedEnvelope, envelopeBytes } from "./envelope.js";

/**
 * A message a subscriber received (Fabric's ReceivedMessage): the parsed
 * message, the envelope it came in, who sent it, and a way to answer on the
 * same connection.
 */
export interface ReceivedMessage {
  /** The parsed GossipMessage. */
  readonly message: GossipMessage;
  /** The Envelope as received: `payload` holds the exact bytes that were signed, if signed. */
  readonly envelope: Envelope;
  /** The authenticated sender and its connection. */
  readonly connection: ConnectionInfo;
  /**
   * Sends `message` (a GossipMessage unsigned, an Envelope as built) back on
   * the connection this one came from, waiting for room in its send buffer.
   * Resolves once queued, or when the connection is gone (the reply is then
   * dropped and counted).
   */
  respond(message: GossipMessage | Envelope): Promise<void>;
  /**
   * Acknowledges this message to a `sendWithAck` sender: success without
   * argument, failure with an error or its text.
   */
  ack(error?: Error | string): Promise<void>;
}

/** @private Created by the comm for each delivered message. */
export class ReceivedMessageImpl implements ReceivedMessage {
  constructor(
    readonly message: GossipMessage,
    readonly envelope: Envelope,
    private readonly conn: Connection,
    private readonly onDropped: () => void,
  ) {}

  get connection(): ConnectionInfo {
    return this.conn.info;
  }

  respond(message: GossipMessage | Envelope): Promise<void> {
    const frame = message.$typeName === "gossip.Envelope" ? envelopeBytes(message) : encodeUnsignedEnvelope(message);
    return this.conn.put(frame, this.onDropped);
  }

  ack(error?: Error | string): Promise<void> {
    const text = error === undefined ? "" : typeof error === "string" ? error : error.message;
    return this.respond(
      create(GossipMessageSchema, {
        nonce: this.message.nonce,
        content: { case: "ack", value: create(AcknowledgementSchema, { error: text }) },
      }),
    );
  }
}
