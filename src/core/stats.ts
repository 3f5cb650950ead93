/**
 * A comm's own totals for {@link CommStats}: every count flows through the
 * metrics interface once, and {@link countingMetrics} keeps a copy here on the
 * way to the configured metrics.
 *
 * @private Internal code, not part of the public API.
 */
import type { CommMetrics } from "./metrics.js";

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
  /** Frames queued in send buffers now (including those waiting for a dial). */
  readonly sendBuffered: number;
  /** Inbound streams in the handshake now. */
  readonly unauthenticatedStreams: number;
  /** `sendWithAck` acknowledgements being waited for. */
  readonly pendingAcks: number;
}

/** The counters of {@link CommStats}; the gauges are read where they live. */
export class MutableStats {
  connections = { inbound: 0, outbound: 0 };
  messagesSent = 0;
  messagesReceived = 0;
  bytesSent = 0;
  bytesReceived = 0;
  overflow = 0;
  dropped = 0;
  presumedDead = 0;
  handshakeFailures = 0;

  /** The counters with the gauges added. */
  snapshot(gauges: Pick<CommStats, "sendBuffered" | "unauthenticatedStreams" | "pendingAcks">): CommStats {
    return {
      connections: { ...this.connections },
      messagesSent: this.messagesSent,
      messagesReceived: this.messagesReceived,
      bytesSent: this.bytesSent,
      bytesReceived: this.bytesReceived,
      overflow: this.overflow,
      dropped: this.dropped,
      presumedDead: this.presumedDead,
      handshakeFailures: this.handshakeFailures,
      ...gauges,
    };
  }
}

/** Wraps `inner` so that `c` keeps the comm's own totals. */
export function countingMetrics(inner: CommMetrics, c: MutableStats): CommMetrics {
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
    connectionOpened(d) {
      c.connections[d]++;
      inner.connectionOpened(d);
    },
    connectionClosed(d) {
      c.connections[d]--;
      inner.connectionClosed(d);
    },
    handshake: (d, o) => inner.handshake(d, o),
    refused: (r) => inner.refused(r),
    identitySwitch: () => inner.identitySwitch(),
  };
}
