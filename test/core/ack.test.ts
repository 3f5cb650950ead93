// Fabric's ack_test.go on the in-memory transport: ack interception by
// (nonce, authenticated PKI-ID), sendWithAck's aggregation rules, its
// deadline, and the watch on the connection a message went out on.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { create } from "@bufbuild/protobuf";
import { AckRegistry, AggregatedSendResult } from "../../src/core/ack.js";
import { ErrorCode, GossipError } from "../../src/core/errors.js";
import { VirtualClock } from "../../src/core/virtual-clock.js";
import { AcknowledgementSchema, type GossipMessage, GossipMessageSchema } from "../../src/gen/gossip/message_pb.js";
import { type MemCluster, memTest, target } from "../helpers/memory-peers.js";
import { dataMessage } from "../helpers/messages.js";

/** An acknowledgement of `nonce`, as ReceivedMessage.ack() builds it. */
const ackOf = (nonce: bigint): GossipMessage =>
  create(GossipMessageSchema, { nonce, content: { case: "ack", value: create(AcknowledgementSchema, { error: "" }) } });

describe("AckRegistry (Fabric's interceptAcks)", () => {
  it("an ack is delivered only to the waiter of its (nonce, PKI-ID) topic", async () => {
    const clock = new VirtualClock();
    const acks = new AckRegistry(clock);
    const w = acks.expect(1n, "aa", 1000);
    acks.publish(1n, "bb", ""); // another peer: ignored
    acks.publish(2n, "aa", ""); // another nonce: ignored
    assert.equal(acks.pending, 1);
    acks.publish(1n, "aa", "");
    assert.equal(await w, "");
    assert.equal(acks.pending, 0);
    assert.equal(clock.pending, 0, "its timer is cleared");
  });

  it("times out with 'timed out' exactly at its deadline, and rejectAll fails every waiter", async () => {
    const clock = new VirtualClock();
    const acks = new AckRegistry(clock);
    const box: { outcome?: unknown } = {};
    acks.expect(3n, "aa", 20).catch((e: unknown) => (box.outcome = e));
    await clock.advance(19);
    assert.equal(typeof box.outcome, "undefined");
    await clock.advance(1);
    const e = box.outcome;
    assert.ok(e instanceof GossipError && e.code === ErrorCode.AckTimeout && e.message === "timed out");
    const w = acks.expect(4n, "aa", 10_000);
    acks.rejectAll(new GossipError(ErrorCode.Stopping, "comm is stopping"));
    await assert.rejects(w, (e: unknown) => e instanceof GossipError && e.code === ErrorCode.Stopping);
    assert.equal(acks.pending, 0);
    assert.equal(clock.pending, 0);
  });

  it("AggregatedSendResult: counts and Fabric's JSON summary, keys sorted", () => {
    const peer = { endpoint: "x" };
    const r = new AggregatedSendResult([
      { peer },
      { peer, error: new GossipError(ErrorCode.Nack, "Failed processing message because reasons") },
      { peer, error: new GossipError(ErrorCode.AckTimeout, "timed out") },
    ]);
    assert.equal(r.ackCount, 1);
    assert.equal(r.nackCount, 2);
    assert.equal(r.toString(), '{"failures":{"Failed processing message because reasons":1,"timed out":1},"successes":1}');
    assert.equal(new AggregatedSendResult([{ peer }]).toString(), '{"successes":1}');
    assert.equal(new AggregatedSendResult([]).toString(), "{}");
  });
});

/** Four peers as in Fabric's TestAck: c1 sends; c2 acks; c3 acks or nacks; c4 never answers. */
function fabricAckPeers(c: MemCluster) {
  const state = { c3Nacks: false };
  const c1 = c.peer();
  const c2 = c.peer({ ack: true });
  const c3 = c.peer({ ack: () => (state.c3Nacks ? new Error("Failed processing message because reasons") : undefined) });
  const c4 = c.peer(); // subscribed, never acks
  return { c1, c2, c3, c4, state };
}

describe("sendWithAck (Fabric's TestAck, in memory)", () => {
  memTest("2 of 2 acking: two successes", async (c) => {
    const { c1, c2, c3 } = fabricAckPeers(c);
    const r = await c1.comm.sendWithAck(dataMessage(1), 3000, 2, target(c2), target(c3));
    assert.equal(r.results.length, 2);
    assert.equal(r.ackCount, 2);
    assert.equal(c.clock.now(), 0, "no time passed");
  });

  memTest("2 of 3 with two acking: returns after exactly two successes, without waiting for the silent peer", async (c) => {
    const { c1, c2, c3, c4 } = fabricAckPeers(c);
    const r = await c1.comm.sendWithAck(dataMessage(2), 10_000, 2, target(c2), target(c3), target(c4));
    assert.equal(r.results.length, 2);
    assert.equal(r.ackCount, 2);
    assert.equal(c.clock.now(), 0);
    await c.until(() => c4.received.length === 1);
    // The silent peer's wait ends at its own deadline; nothing is kept after it.
    await c.advance(10_000);
    assert.equal(c1.comm.stats().pendingAcks, 0);
  });

  memTest("2 of 3 with ack, nack, silent: three results at the deadline, and Fabric's summary", async (c) => {
    const { c1, c2, c3, c4, state } = fabricAckPeers(c);
    state.c3Nacks = true;
    const box: { r?: AggregatedSendResult } = {};
    void c1.comm.sendWithAck(dataMessage(3), 1500, 2, target(c2), target(c3), target(c4)).then((x) => (box.r = x));
    await c.advance(1499);
    assert.equal(typeof box.r, "undefined", "still waiting for the silent peer");
    await c.advance(1);
    const r = box.r;
    assert.ok(r);
    assert.equal(r.results.length, 3);
    assert.equal(r.ackCount, 1);
    assert.equal(r.toString(), '{"failures":{"Failed processing message because reasons":1,"timed out":1},"successes":1}');
    assert.deepEqual(r.results.map((x) => x.error?.code ?? "ok").sort(), [ErrorCode.AckTimeout, ErrorCode.Nack, "ok"].sort());
  });

  memTest("2 of 2 with nobody acking: two 'timed out'; no peers: no results", async (c) => {
    const { c1, c4 } = fabricAckPeers(c);
    const pending = c1.comm.sendWithAck(dataMessage(4), 500, 2, target(c4), target(c4));
    await c.advance(500);
    const r = await pending;
    assert.equal(r.results.length, 2);
    assert.ok(r.results.every((x) => x.error?.message === "timed out"));
    assert.equal((await c1.comm.sendWithAck(dataMessage(5), 500, 1)).results.length, 0);
  });

  memTest("a peer given by endpoint only is acknowledged under its authenticated PKI-ID (Fabric would time out)", async (c) => {
    const { c1, c2 } = fabricAckPeers(c);
    const r = await c1.comm.sendWithAck(dataMessage(6), 2000, 1, { endpoint: c2.endpoint });
    assert.equal(r.ackCount, 1);
  });

  memTest("an ack from another peer with the same nonce does not count", async (c) => {
    const a = c.peer();
    const b = c.peer({ collect: false });
    const m = c.peer({ collect: false });
    // b forwards every message's nonce to m, which acks it to a: the right nonce, the wrong peer.
    const sub = b.comm.accept();
    void (async () => {
      for await (const msg of sub) await m.comm.send(ackOf(msg.message.nonce), target(a));
    })();
    const pending = a.comm.sendWithAck(dataMessage(7), 1000, 1, target(b));
    await c.until(() => m.comm.connections().length === 1);
    await c.advance(1000);
    const r = await pending;
    assert.equal(r.results[0]?.error?.code, ErrorCode.AckTimeout);
  });

  memTest("a dial that fails fails the peer at once and presumes it dead; the others still count", async (c) => {
    const { c1, c2 } = fabricAckPeers(c);
    const r = await c1.comm.sendWithAck(dataMessage(8), 5000, 2, target(c2), { endpoint: "nobody:1" });
    assert.equal(r.ackCount, 1);
    assert.equal(r.results.find((x) => x.error)?.error?.code, ErrorCode.DialFailed);
    await c.advance(0);
    assert.equal(c1.dead.length, 1);
  });
});

describe("sendWithAck and the connection's close", () => {
  memTest("a connection cut before the ack fails with 'closed' connTimeout after the cut, not at the deadline", async (c) => {
    const a = c.peer({ options: { connTimeoutMs: 2000 } });
    const b = c.peer(); // receives, never acks
    let r: AggregatedSendResult | undefined;
    void a.comm.sendWithAck(dataMessage(1), 60_000, 1, target(b)).then((x) => (r = x));
    await c.until(() => b.received.length === 1);
    await c.advance(500);
    c.net.disconnect(b.host); // the link dies under the stream
    const cutAt = c.clock.now();
    await c.until(() => r !== undefined, 60_000, 100);
    assert.equal(c.clock.now() - cutAt, 2000, "within the grace, not at the deadline");
    assert.equal(r?.ackCount, 0);
    assert.equal(r?.results[0]?.error?.code, ErrorCode.Closed, String(r?.results[0]?.error));
    assert.match(r?.results[0]?.error?.message ?? "", /closed before the ack/);
  });

  memTest("an ack that comes on the replacement connection within the grace counts", async (c) => {
    const a = c.peer({ options: { connTimeoutMs: 2000 } });
    const b = c.peer(); // receives, answers by hand
    const box: { r?: AggregatedSendResult } = {};
    void a.comm.sendWithAck(dataMessage(1), 60_000, 1, target(b)).then((x) => (box.r = x));
    await c.until(() => b.received.length === 1);
    const nonce = b.received[0]?.message.nonce ?? 0n;
    // The message's connection closes (b lets it go), and b comes back on a new one.
    b.comm.closeConn(target(a));
    await c.until(() => a.comm.connections().length === 0, 30_000, 1);
    const closedAt = c.clock.now();
    void b.comm.send(dataMessage(2), target(a));
    await c.until(() => a.comm.connections().length === 1 && a.comm.connections()[0]?.direction === "inbound", 30_000, 1);
    await c.advance(1500 - (c.clock.now() - closedAt));
    assert.equal(typeof box.r, "undefined", "waiting in the grace");
    await b.comm.send(ackOf(nonce), target(a)); // the ack, on the replacement
    await c.advance(0);
    assert.equal(box.r?.ackCount, 1, String(box.r));
  });

  memTest("a silent peer on an open connection times out at the deadline and leaves no watcher or timer", async (c) => {
    const a = c.peer();
    const b = c.peer();
    const results = Array.from({ length: 50 }, (_, i) => a.comm.sendWithAck(dataMessage(i), 5000, 1, target(b)));
    await c.advance(4999);
    assert.equal(a.comm.stats().pendingAcks, 50);
    await c.advance(1);
    for (const r of await Promise.all(results)) assert.equal(r.results[0]?.error?.code, ErrorCode.AckTimeout);
    assert.equal(a.comm.stats().pendingAcks, 0);
    assert.equal(a.comm.connections().length, 1);
  });

  memTest("a sendWithAck that timed out waiting for room in a full buffer is never sent later", async (c) => {
    const a = c.peer({ options: { sendBuffSize: 2 } });
    const b = c.peer({ collect: false });
    const sub = b.comm.accept(); // not read yet: flow control holds a's writes back
    const payload = new Uint8Array(256 * 1024);
    const results = Array.from({ length: 40 }, (_, i) => a.comm.sendWithAck(dataMessage(i, payload), 1000, 1, target(b)));
    await c.advance(1000);
    const settled = await Promise.all(results);
    assert.ok(settled.every((r) => r.results[0]?.error?.code === ErrorCode.AckTimeout));
    // Now b reads: only what entered a's buffer before the deadlines may arrive.
    const got: bigint[] = [];
    void (async () => {
      // (sendWithAck gives each message a fresh nonce: the sequence number tells them apart.)
      for await (const m of sub) got.push(m.message.content.case === "dataMsg" ? (m.message.content.value.payload?.seqNum ?? -1n) : -1n);
    })();
    await c.until(() => a.comm.stats().sendBuffered === 0, 30_000);
    await c.advance(100);
    // (The in-memory transport's window takes a good part at once; before the
    // fix all 40 arrived.)
    assert.ok(got.length > 0 && got.length < 40, `only the frames taken before the timeout are sent (${got.length} of 40)`);
    assert.ok(
      got.every((n, i) => n === BigInt(i)),
      `those in order, from the first: ${got.join(",")}`,
    );
    sub.close();
  });
});
