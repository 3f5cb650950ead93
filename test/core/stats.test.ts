// The comm's own totals: every count passes through countingMetrics on its
// way to the configured metrics, and stats() adds the gauges.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { type CommMetrics, noopMetrics } from "../../src/core/metrics.js";
import { countingMetrics, MutableStats } from "../../src/core/stats.js";

describe("countingMetrics", () => {
  it("keeps the comm's totals and forwards every call unchanged", () => {
    const calls: string[] = [];
    const inner: CommMetrics = Object.fromEntries(
      Object.keys(noopMetrics).map((k) => [k, (...args: unknown[]) => calls.push(`${k}(${args.join(",")})`)]),
    ) as unknown as CommMetrics;
    const stats = new MutableStats();
    const m = countingMetrics(inner, stats);
    m.messagesSent(3, 30);
    m.messagesReceived(2, 20);
    m.overflow();
    m.dropped("dial_failed", 4);
    m.presumedDead();
    m.connectionOpened("inbound");
    m.connectionOpened("outbound");
    m.connectionClosed("inbound");
    m.handshake("inbound", "ok");
    m.refused("rate_limited" as never);
    m.identitySwitch();
    assert.equal(calls.length, 11, "each call forwarded once");
    assert.ok(calls.includes("dropped(dial_failed,4)"));
    const s = stats.snapshot({ sendBuffered: 5, unauthenticatedStreams: 1, pendingAcks: 2 });
    assert.deepEqual(s, {
      connections: { inbound: 0, outbound: 1 },
      messagesSent: 3,
      messagesReceived: 2,
      bytesSent: 30,
      bytesReceived: 20,
      overflow: 1,
      dropped: 4,
      presumedDead: 1,
      handshakeFailures: 0,
      sendBuffered: 5,
      unauthenticatedStreams: 1,
      pendingAcks: 2,
    });
    m.connectionOpened("inbound"); // a snapshot is a copy: it does not move with later counts
    assert.equal(s.connections.inbound, 0);
  });
});
