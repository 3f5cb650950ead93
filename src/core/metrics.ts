import type { ErrorCode } from "./errors.js";

/** Which side opened a connection. */
export type Direction = "inbound" | "outbound";

/** Why messages that a send buffer had accepted were not written. */
export type DropReason =
  /** The connection closed (write error, remote gone, replaced, stop) before they were written. */
  | "connection_closed"
  /** The dial they were waiting for failed. */
  | "dial_failed";

/**
 * What core counts. The server plugin supplies a Prometheus implementation
 * (`gossip-connect/metrics`); the default counts nothing. Calls on the message
 * path carry counts per batch, not per message.
 */
export interface CommMetrics {
  /** Envelopes written to streams (Fabric `gossip_comm_messages_sent`; handshakes not counted). */
  messagesSent(count: number, bytes: number): void;
  /** Envelopes read from streams, before parsing (Fabric `gossip_comm_messages_received`). */
  messagesReceived(count: number, bytes: number): void;
  /** A non-blocking send found a full buffer (Fabric `gossip_comm_overflow_count`). */
  overflow(): void;
  /** Accepted messages that were not written, and why. */
  dropped(reason: DropReason, count: number): void;
  /** A handshake finished: `"ok"`, `"probe"`, or the code it failed with. */
  handshake(direction: Direction, outcome: "ok" | "probe" | ErrorCode): void;
  /** A connection was registered in the connection store. */
  connectionOpened(direction: Direction): void;
  /** A registered connection closed. */
  connectionClosed(direction: Direction): void;
  /** A presumed-dead event was emitted. */
  presumedDead(): void;
  /**
   * An inbound stream or request was refused before or outside the handshake
   * (limits, bad framing, bad payload). `reason` is an {@link ErrorCode}, or a
   * reason of the transport's own (the HTTP/2 server's `headers_too_large`,
   * `too_many_resets`).
   */
  refused(reason: ErrorCode | (string & {})): void;
  /** An identity-switch event was emitted. */
  identitySwitch(): void;
}

/** Metrics that count nothing. */
export const noopMetrics: CommMetrics = {
  messagesSent() {},
  messagesReceived() {},
  overflow() {},
  dropped() {},
  handshake() {},
  connectionOpened() {},
  connectionClosed() {},
  presumedDead() {},
  refused() {},
  identitySwitch() {},
};
