// The connection store's rules, over real peers: one connection per PKI-ID,
// dial coalescing, the simultaneous-dial tie-break, newest replaces oldest, and
// the absence of Fabric's quirks Q1 and Q2.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { ConnectionEvent } from "../../src/core/comm.js";
import { bytesEqual } from "../../src/core/identity.js";
import type { Dialer } from "../../src/core/transport.js";
import { cleanupAfter, collect, dataMessage, eventually, type TestPeer, toPeer } from "../helpers/peers.js";

const { peer } = cleanupAfter();
const to = toPeer;
const hex = (p: TestPeer) => Buffer.from(p.comm.pkiId).toString("hex");

function recordEvents(p: TestPeer): ConnectionEvent[] {
  const events: ConnectionEvent[] = [];
  void (async () => {
    for await (const e of p.comm.connectionEvents) events.push(e);
  })();
  return events;
}

/** Counts dials and can hold them for a while. */
function countingDialer(delayMs = 0) {
  const counter = { dials: 0 };
  const wrap = (d: Dialer): Dialer => ({
    async openStream(endpoint, options) {
      counter.dials++;
      if (delayMs > 0) await new Promise((r) => setTimeout(r, delayMs));
      return d.openStream(endpoint, options);
    },
    ping: (endpoint, options) => d.ping(endpoint, options),
  });
  return { counter, wrap };
}

describe("connection store", () => {
  it("no quirk Q1: sends with an unknown PKI-ID reuse the connection dialed to that endpoint", async () => {
    const { counter, wrap } = countingDialer();
    const a = await peer({ wrapDialer: wrap });
    const b = await peer();
    const sub = b.comm.accept();
    for (let i = 0; i < 10; i++) {
      await a.comm.send(dataMessage(i), { endpoint: b.endpoint });
      await new Promise((r) => setTimeout(r, 10));
    }
    const got = await collect(sub, 10, 5000);
    assert.deepEqual(got.map((m) => m.message.nonce), Array.from({ length: 10 }, (_, i) => BigInt(i)), "all delivered, in order");
    assert.equal(counter.dials, 1, "one dial for ten sends");
    assert.equal(b.comm.connections().length, 1);
    // ...and a send that does name the PKI-ID finds the same connection.
    await a.comm.send(dataMessage(10), to(b));
    assert.equal((await collect(sub, 1, 5000)).length, 1);
    assert.equal(counter.dials, 1);
    sub.close();
  });

  it("no quirk Q2: a newer inbound connection for a PKI-ID replaces the older one and survives its clean-up", async () => {
    const b = await peer();
    const a1 = await peer();
    const a2 = await peer({ material: a1.material }); // same identity, same PKI-ID
    const events2 = recordEvents(a2);
    const sub = b.comm.accept();
    await a1.comm.send(dataMessage(1), to(b));
    await collect(sub, 1, 5000);
    await a2.comm.send(dataMessage(2), to(b));
    await collect(sub, 1, 5000);
    // The older connection (from a1) is drained; a2's keeps working without a redial.
    await eventually(() => a1.comm.connections().length === 0, 5000, "a1's replaced connection to close");
    for (let i = 3; i < 23; i++) await a2.comm.send(dataMessage(i), to(b));
    const got = await collect(sub, 20, 5000);
    assert.equal(got.length, 20);
    assert.deepEqual(events2.map((e) => e.type), ["connected"], "a2 never lost its connection");
    assert.equal(b.comm.connections().filter((c) => c.state === "open").length, 1);
    sub.close();
  });

  it("coalesces concurrent dials to one destination into one dial", async () => {
    const { counter, wrap } = countingDialer(100);
    const a = await peer({ wrapDialer: wrap });
    const b = await peer();
    const sub = b.comm.accept();
    const results = await Promise.all(Array.from({ length: 10 }, (_, i) => a.comm.sendWithAck(dataMessage(i), 200, 1, to(b))));
    assert.equal(results.length, 10);
    assert.equal(counter.dials, 1);
    assert.equal((await collect(sub, 10, 5000)).length, 10, "blocking sends waiting for the dial all arrive");
    sub.close();
  });

  it("simultaneous dial: both sides keep the one connection dialed by the smaller PKI-ID", async () => {
    const { counter, wrap } = countingDialer(400);
    const a = await peer({ wrapDialer: wrap }); // a's dials take 400 ms
    const b = await peer();
    const eventsA = recordEvents(a);
    const subA = a.comm.accept();
    const subB = b.comm.accept();
    const sending = a.comm.send(dataMessage(1), to(b)); // starts a's slow dial
    await new Promise((r) => setTimeout(r, 50));
    await b.comm.send(dataMessage(2), to(a)); // b dials a and is registered first
    assert.equal((await collect(subA, 1, 5000)).length, 1);
    await sending;
    assert.equal((await collect(subB, 1, 5000)).length, 1, "a's message arrived");
    assert.equal(counter.dials, 1, "a's concurrent sends shared one dial");
    // Both sides agree on one connection: the one dialed by the smaller PKI-ID.
    const aDialsWinner = hex(a) < hex(b);
    await eventually(
      () => a.comm.connections().length === 1 && b.comm.connections().length === 1,
      5000,
      "each side to keep exactly one connection",
    );
    await new Promise((r) => setTimeout(r, 300));
    assert.deepEqual(a.comm.connections().map((c) => c.direction), [aDialsWinner ? "outbound" : "inbound"]);
    assert.deepEqual(b.comm.connections().map((c) => c.direction), [aDialsWinner ? "inbound" : "outbound"]);
    // ...and it carries traffic both ways without another dial.
    await a.comm.send(dataMessage(3), to(b));
    await b.comm.send(dataMessage(4), to(a));
    assert.equal((await collect(subB, 1, 5000)).length, 1);
    assert.equal((await collect(subA, 1, 5000)).length, 1);
    assert.equal(counter.dials, 1);
    assert.equal(eventsA.filter((e) => e.type === "connected").length, aDialsWinner ? 2 : 1);
    subA.close();
    subB.close();
  });

  it("peers that send to each other in step converge to one connection (no endless redial, unlike Fabric)", async () => {
    const peers = [await peer(), await peer(), await peer()];
    const events = peers.map(recordEvents);
    const subs = peers.map((p) => p.comm.accept());
    const rounds = 10;
    for (let r = 0; r < rounds; r++) {
      const sends: Promise<void>[] = [];
      for (const [i, p] of peers.entries()) for (const [j, q] of peers.entries()) if (i !== j) sends.push(p.comm.send(dataMessage(r), to(q)));
      await Promise.all(sends);
      await new Promise((res) => setTimeout(res, 50));
    }
    for (const sub of subs) assert.equal((await collect(sub, rounds * 2, 5000)).length, rounds * 2, "every message delivered");
    await eventually(() => peers.every((p) => p.comm.connections().length === 2), 5000, "one connection per pair");
    for (const [i, e] of events.entries()) {
      const connected = e.filter((x) => x.type === "connected").length;
      assert.ok(connected <= 4, `peer ${i} registered ${connected} connections for 2 neighbours over ${rounds} rounds`);
    }
    for (const sub of subs) sub.close();
  });

  it("first contact by sendWithAck from both sides at once (a simultaneous dial): both acknowledged", async () => {
    for (let pair = 0; pair < 3; pair++) {
      const a = await peer();
      const b = await peer();
      const ackAll = (p: TestPeer) => {
        const sub = p.comm.accept();
        void (async () => {
          for await (const m of sub) m.ack();
        })();
        return sub;
      };
      const subs = [ackAll(a), ackAll(b)];
      // First contact from both sides at once: both dial, one connection loses.
      const [ra, rb] = await Promise.all([
        a.comm.sendWithAck(dataMessage(1), 5000, 1, to(b)),
        b.comm.sendWithAck(dataMessage(2), 5000, 1, to(a)),
      ]);
      assert.equal(ra.ackCount, 1, `pair ${pair}, a→b: ${ra.toString()}`);
      assert.equal(rb.ackCount, 1, `pair ${pair}, b→a: ${rb.toString()}`);
      for (const sub of subs) sub.close();
    }
  });

  it("newest wins: a peer that reconnects under the same PKI-ID replaces its connection", async () => {
    const b = await peer();
    const a = await peer();
    const sub = b.comm.accept();
    await a.comm.send(dataMessage(1), to(b));
    await collect(sub, 1, 5000);
    a.comm.closeConn(to(b));
    await eventually(() => b.comm.connections().length === 0, 5000, "b to see the close");
    await a.comm.send(dataMessage(2), to(b));
    const [m] = await collect(sub, 1, 5000);
    assert.ok(m && bytesEqual(m.connection.pkiId, a.comm.pkiId));
    assert.equal(b.comm.connections().length, 1);
    sub.close();
  });

  it("limits connections per remote PKI-ID", async () => {
    const b = await peer({ options: { maxConnectionsPerPeer: 1, drainTimeoutMs: 3000 } });
    const a1 = await peer();
    const a2 = await peer({ material: a1.material });
    const sub = b.comm.accept();
    await a1.comm.send(dataMessage(1), to(b));
    await collect(sub, 1, 5000);
    // A second connection under the same PKI-ID while the first is registered: refused.
    const dead = a2.comm.presumedDead[Symbol.asyncIterator]();
    await a2.comm.send(dataMessage(2), to(b));
    assert.equal((await collect(sub, 1, 500)).length, 0);
    assert.equal(b.comm.connections().length, 1);
    await dead.return?.();
    sub.close();
  });

  it("stop() drains every connection and refuses new ones", async () => {
    const a = await peer();
    const b = await peer();
    await a.comm.send(dataMessage(1), to(b));
    await eventually(() => b.comm.connections().length === 1, 5000, "connection");
    await b.comm.stop();
    assert.equal(b.comm.connections().length, 0);
    await eventually(() => a.comm.connections().length === 0, 5000, "a to see b's connection end");
    await b.comm.stop(); // idempotent
  });
});
