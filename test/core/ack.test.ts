// Fabric's ack_test.go: ack interception by (nonce, authenticated PKI-ID), and
// sendWithAck's aggregation rules over real peers.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { AckRegistry, AggregatedSendResult } from "../../src/core/ack.js";
import { systemClock } from "../../src/core/clock.js";
import { ErrorCode, GossipError } from "../../src/core/errors.js";
import { dataMessage, startPeer, type TestPeer } from "../helpers/peers.js";

describe("AckRegistry (Fabric's interceptAcks)", () => {
  it("an ack is delivered only to the waiter of its (nonce, PKI-ID) topic", async () => {
    const acks = new AckRegistry(systemClock);
    const w = acks.expect(1n, "aa", 1000);
    acks.publish(1n, "bb", ""); // another peer: ignored
    acks.publish(2n, "aa", ""); // another nonce: ignored
    acks.publish(1n, "aa", "");
    assert.equal(await w, "");
    assert.equal(acks.pending, 0);
  });

  it("times out with 'timed out' and rejectAll fails every waiter", async () => {
    const acks = new AckRegistry(systemClock);
    await assert.rejects(acks.expect(3n, "aa", 20), (e: unknown) => e instanceof GossipError && e.code === ErrorCode.AckTimeout && e.message === "timed out");
    const w = acks.expect(4n, "aa", 10_000);
    acks.rejectAll(new GossipError(ErrorCode.Stopping, "comm is stopping"));
    await assert.rejects(w, (e: unknown) => e instanceof GossipError && e.code === ErrorCode.Stopping);
    assert.equal(acks.pending, 0);
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

describe("sendWithAck (Fabric's TestAck)", () => {
  let c1: TestPeer;
  let c2: TestPeer;
  let c3: TestPeer;
  let c4: TestPeer;
  let c3Nacks = false;
  const stopAckers: (() => void)[] = [];

  before(async () => {
    [c1, c2, c3, c4] = await Promise.all([startPeer(), startPeer(), startPeer(), startPeer()]);
    const acker = (p: TestPeer, nack: () => boolean) => {
      const sub = p.comm.accept((m) => m.message.content.case === "dataMsg");
      stopAckers.push(() => sub.close());
      void (async () => {
        for await (const m of sub) await m.ack(nack() ? new Error("Failed processing message because reasons") : undefined);
      })();
    };
    acker(c2, () => false);
    acker(c3, () => c3Nacks);
    const silent = c4.comm.accept(); // subscribed, never acks
    stopAckers.push(() => silent.close());
  });
  after(async () => {
    for (const s of stopAckers) s();
    await Promise.all([c2.close(), c3.close(), c4.close()]);
    await c1.close();
  });

  const to = (p: TestPeer) => ({ endpoint: p.endpoint, pkiId: p.comm.pkiId });

  it("2 of 2 acking: two successes", async () => {
    const r = await c1.comm.sendWithAck(dataMessage(1), 3000, 2, to(c2), to(c3));
    assert.equal(r.results.length, 2);
    assert.equal(r.ackCount, 2);
  });

  it("2 of 3 with two acking: returns after exactly two successes, without waiting for the silent peer", async () => {
    const t0 = Date.now();
    const r = await c1.comm.sendWithAck(dataMessage(2), 10_000, 2, to(c2), to(c3), to(c4));
    assert.equal(r.results.length, 2);
    assert.equal(r.ackCount, 2);
    assert.ok(Date.now() - t0 < 5000);
  });

  it("2 of 3 with ack, nack, silent: three results, and Fabric's summary", async () => {
    c3Nacks = true;
    try {
      const r = await c1.comm.sendWithAck(dataMessage(3), 1500, 2, to(c2), to(c3), to(c4));
      assert.equal(r.results.length, 3);
      assert.equal(r.ackCount, 1);
      assert.equal(r.nackCount, 2);
      const s = r.toString();
      assert.ok(s.includes('"Failed processing message because reasons":1'), s);
      assert.ok(s.includes('"timed out":1'), s);
      assert.ok(s.includes('"successes":1'), s);
      assert.deepEqual(r.results.map((x) => x.error?.code ?? "ok").sort(), [ErrorCode.AckTimeout, ErrorCode.Nack, "ok"].sort());
    } finally {
      c3Nacks = false;
    }
  });

  it("2 of 2 with nobody acking: two 'timed out'", async () => {
    const r = await c1.comm.sendWithAck(dataMessage(4), 500, 2, to(c4), to(c4));
    assert.equal(r.results.length, 2);
    assert.ok(r.results.every((x) => x.error?.message === "timed out"));
  });

  it("no peers: no results", async () => {
    assert.equal((await c1.comm.sendWithAck(dataMessage(5), 500, 1)).results.length, 0);
  });

  it("a peer given by endpoint only is acknowledged under its authenticated PKI-ID (Fabric would time out)", async () => {
    const r = await c1.comm.sendWithAck(dataMessage(6), 2000, 1, { endpoint: c2.endpoint });
    assert.equal(r.ackCount, 1, "a peer given by endpoint only is matched by its authenticated PKI-ID");
  });

  it("a connection cut before the ack fails with 'closed' within connTimeout, not at the deadline", async () => {
    const b = await startPeer();
    const a = await startPeer();
    const sessions: { destroy(): void }[] = [];
    b.app.server.on("session", (session: { destroy(): void }) => sessions.push(session));
    const sub = b.comm.accept(); // receives, never acks
    try {
      const t0 = Date.now();
      const pending = a.comm.sendWithAck(dataMessage(8), 20_000, 1, { endpoint: b.endpoint, pkiId: b.comm.pkiId });
      const it = sub[Symbol.asyncIterator]();
      assert.equal((await it.next()).done, false, "b received the message");
      for (const s of sessions) s.destroy(); // the TCP connection dies under the stream
      const r = await pending;
      assert.equal(r.ackCount, 0);
      assert.equal(r.results[0]?.error?.code, ErrorCode.Closed, String(r.results[0]?.error));
      assert.ok(Date.now() - t0 < 5000, `took ${Date.now() - t0} ms`);
    } finally {
      sub.close();
      await Promise.all([a.close(), b.close()]);
    }
  });

  it("after stop: 'comm is stopping' for every peer", async () => {
    await c1.comm.stop();
    const r = await c1.comm.sendWithAck(dataMessage(7), 500, 1, to(c2), to(c3), to(c4));
    assert.equal(r.results.length, 3);
    assert.ok(r.results.every((x) => x.error?.code === ErrorCode.Stopping && x.error.message === "comm is stopping"));
  });
});
