/**
 * Answers on the connection a message came on (membership responses, identity
 * digests and updates), with a bound on answers waiting for room per
 * connection: a peer that keeps asking and never reads gets its further
 * answers dropped, instead of having them queue without bound behind its full
 * send buffer. (Fabric blocks one goroutine per answer there.)
 */
import type { ConnectionInfo } from "../core/connection.js";
import type { ReceivedMessage } from "../core/received-message.js";
import type { Envelope, GossipMessage } from "../gen/gossip/message_pb.js";

/** Answers waiting for room on one connection, at most (each holds one message). */
export const maxPendingRepliesPerConnection = 8;

/** Replies with a per-connection bound on those waiting for room. */
export class Replies {
  private readonly pending = new WeakMap<ConnectionInfo, number>();

  /** Sends `message` (an Envelope as built) back on `rm`'s connection; false (nothing sent) while too many earlier answers still wait for room. */
  send(rm: ReceivedMessage, message: GossipMessage | Envelope): boolean {
    const conn = rm.connection;
    const n = this.pending.get(conn) ?? 0;
    if (n >= maxPendingRepliesPerConnection) return false;
    this.pending.set(conn, n + 1);
    void rm.respond(message).finally(() => {
      const left = (this.pending.get(conn) ?? 1) - 1;
      if (left > 0) this.pending.set(conn, left);
      else this.pending.delete(conn);
    });
    return true;
  }
}
