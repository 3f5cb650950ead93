// The send path on the in-memory transport: the three overflow policies, for
// a connected peer and for one still being dialed (one queue, one policy),
// and the accounting that says where every accepted message went.
import assert from "node:assert/strict";
import { describe } from "node:test";
import { sleep } from "../../src/core/clock.js";
import { ErrorCode } from "../../src/core/errors.js";
import { bytesEqual } from "../../src/core/identity.js";
import { type MemCluster, type MemPeer, memTest, target } from "../helpers/memory-peers.js";
import { dataMessage } from "../helpers/messages.js";

/** A peer that subscribes and never reads: flow control holds its senders back. */
function deaf(c: MemCluster, options = {}): MemPeer {
  const p = c.peer({ collect: false, options });
  p.comm.accept();
  return p;
}

async function connect(c: MemCluster, a: MemPeer, b: MemPeer): Promise<void> {
  await a.comm.send(dataMessage(-1 >>> 0), target(b));
  await c.until(() => a.comm.connections().length === 1 && b.comm.connections().length === 1);
}

describe("overflow policy 'drop' (the default)", () => {
  memTest("a full send buffer drops and counts; the buffer stays bounded and every message is accounted for", async (c) => {
    const a = c.peer();
    const b = deaf(c);
    await connect(c, a, b);
    const payload = new Uint8Array(1024);
    let sent = 1;
    for (let round = 0; round < 20; round++) {
      for (let i = 0; i < 500; i++, sent++) void a.comm.send(dataMessage(sent, payload), target(b));
      await c.advance(10);
    }
    const s = a.comm.stats();
    assert.ok(s.sendBuffered <= 2 * a.comm.config.sendBuffSize, `send buffer bounded: ${s.sendBuffered}`);
    assert.ok(s.overflow > sent / 2, `most sends overflowed (${s.overflow} of ${sent})`);
    assert.equal(s.messagesSent + s.overflow + s.sendBuffered + s.dropped, sent);
    assert.equal(a.dead.length, 0, "dropping presumes nobody dead");
    assert.equal(a.comm.connections().length, 1);
  });

  memTest(
    "while the peer is being dialed: the same bound, the first sendBuffSize messages go out in order, the rest are counted",
    async (c) => {
      const a = c.peer({ options: { sendBuffSize: 20 } });
      const b = c.peer();
      for (let i = 0; i < 100; i++) void a.comm.send(dataMessage(i), target(b));
      assert.equal(a.comm.stats().sendBuffered, 20, "queued in front of the dial");
      assert.equal(a.comm.stats().overflow, 80);
      await c.until(() => b.received.length === 20);
      await c.advance(100);
      assert.deepEqual(
        b.received.map((m) => m.message.nonce),
        Array.from({ length: 20 }, (_, i) => BigInt(i)),
      );
      assert.equal(a.dials.count, 1);
      assert.equal(a.comm.stats().sendBuffered, 0);
    },
  );

  memTest("sends after the dial queue drained go straight to the connection, never ahead of queued ones", async (c) => {
    const a = c.peer({ options: { sendBuffSize: 50 } });
    const b = c.peer();
    for (let i = 0; i < 200; i++) {
      void a.comm.send(dataMessage(i), target(b));
      if (i % 10 === 9) await new Promise((r) => setImmediate(r));
    }
    await c.until(() => b.received.length === 200);
    assert.deepEqual(
      b.received.map((m) => m.message.nonce),
      Array.from({ length: 200 }, (_, i) => BigInt(i)),
    );
  });

  memTest("a dial that fails drops what waited for it (counted as dial_failed) and presumes the peer dead", async (c) => {
    const drops: Record<string, number> = {};
    const a = c.peer({
      metrics: {
        ...(await import("../../src/core/metrics.js")).noopMetrics,
        dropped: (reason, n) => (drops[reason] = (drops[reason] ?? 0) + n),
      },
    });
    for (let i = 0; i < 5; i++) void a.comm.send(dataMessage(i), { endpoint: "nobody:1" });
    await c.advance(0);
    assert.equal(drops.dial_failed, 5);
    assert.equal(a.dead.length, 1);
    assert.equal(a.dead[0]?.error.code, ErrorCode.DialFailed);
    assert.equal(a.comm.stats().sendBuffered, 0);
  });
});

describe("overflow policy 'disconnect'", () => {
  memTest("a full send buffer presumes the peer dead and closes the connection", async (c) => {
    const a = c.peer({ options: { overflowPolicy: "disconnect", sendBuffSize: 4 } });
    const b = deaf(c);
    await connect(c, a, b);
    const payload = new Uint8Array(16 * 1024);
    for (let i = 0; i < 100 && a.dead.length === 0; i++) {
      void a.comm.send(dataMessage(i, payload), target(b));
      if (i % 4 === 3) await c.advance(1);
    }
    assert.equal(a.dead.length, 1);
    assert.equal(a.dead[0]?.error.code, ErrorCode.Overflow);
    assert.ok(bytesEqual(a.dead[0]?.pkiId, b.comm.pkiId));
    assert.equal(a.comm.stats().overflow, 1);
    await c.until(() => a.events.some((e) => e.type === "disconnected"));
    const closed = a.events.find((e) => e.type === "disconnected");
    assert.equal(closed?.error?.code, ErrorCode.Overflow, "the connection closed with the overflow");
    // (Sends after it dial again.) b's side stays registered while its reader is parked on b's unread
    // subscription; it closes when b stops (see the cluster's close).
  });

  memTest("while the peer is being dialed: overflow presumes it dead and abandons the queue, and nothing of it is sent", async (c) => {
    const a = c.peer({ options: { overflowPolicy: "disconnect", sendBuffSize: 4 } });
    const b = c.peer();
    for (let i = 0; i < 5; i++) void a.comm.send(dataMessage(i), target(b));
    await new Promise((r) => setImmediate(r));
    assert.equal(a.dead.length, 1);
    assert.equal(a.dead[0]?.error.code, ErrorCode.Overflow);
    assert.ok(bytesEqual(a.dead[0]?.pkiId, b.comm.pkiId));
    await c.advance(100);
    assert.equal(b.received.length, 0);
    const s = a.comm.stats();
    assert.equal(s.overflow, 1);
    assert.equal(s.dropped, 4, "the four queued frames");
    assert.equal(s.sendBuffered, 0);
    // The peer is not banned: the next send dials again.
    void a.comm.send(dataMessage(9), target(b));
    await c.until(() => b.received.length === 1);
  });
});

describe("overflow policy 'block'", () => {
  memTest("send() waits for room and nothing is dropped, in order", async (c) => {
    const a = c.peer({ options: { overflowPolicy: "block", sendBuffSize: 2 } });
    const b = c.peer({ collect: false, options: { acceptBuffSize: 2 } });
    const sub = b.comm.accept();
    const got: bigint[] = [];
    const reader = (async () => {
      for await (const m of sub) {
        got.push(m.message.nonce);
        await sleep(c.clock, 1); // a slow reader
        if (got.length === 300) break;
      }
    })();
    const payload = new Uint8Array(16 * 1024);
    const sender = (async () => {
      for (let i = 0; i < 300; i++) await a.comm.send(dataMessage(i, payload), target(b));
    })();
    await c.until(() => got.length === 300, 60_000, 5);
    await Promise.all([sender, reader]);
    assert.deepEqual(
      got,
      Array.from({ length: 300 }, (_, i) => BigInt(i)),
    );
    assert.equal(a.comm.stats().overflow, 0);
    assert.equal(a.comm.stats().dropped, 0);
  });

  memTest("while the peer is being dialed: senders wait behind the dial, then everything arrives in order", async (c) => {
    const a = c.peer({ options: { overflowPolicy: "block", sendBuffSize: 4 } });
    const b = c.peer();
    let returned = 0;
    const sender = (async () => {
      for (let i = 0; i < 100; i++) {
        await a.comm.send(dataMessage(i), target(b));
        returned++;
      }
    })();
    await new Promise((r) => setImmediate(r));
    assert.ok(returned < 100, "the sender was held back");
    await c.until(() => b.received.length === 100);
    await sender;
    assert.deepEqual(
      b.received.map((m) => m.message.nonce),
      Array.from({ length: 100 }, (_, i) => BigInt(i)),
    );
    assert.equal(a.comm.stats().overflow, 0);
    assert.equal(a.comm.stats().dropped, 0);
  });

  memTest(
    "sends fired without awaiting to a peer that does not read: at most maxBlockedSends wait, the rest overflow (counted); every accepted message arrives, in order",
    async (c) => {
      const a = c.peer({ options: { overflowPolicy: "block", sendBuffSize: 4, maxBlockedSends: 8 } });
      const b = c.peer({ collect: false });
      const sub = b.comm.accept(); // not read yet: flow control holds a's writes back
      await connect(c, a, b);
      const payload = new Uint8Array(64 * 1024);
      let sent = 0;
      let pending = 0;
      let maxPending = 0;
      for (let round = 0; round < 20; round++) {
        for (let i = 0; i < 200; i++) {
          pending++;
          void a.comm.send(dataMessage(sent++, payload), target(b)).then(() => pending--);
        }
        await c.advance(10); // (the promises refused at once settle in this turn's microtasks)
        maxPending = Math.max(maxPending, pending);
      }
      assert.ok(maxPending <= 8, `at most maxBlockedSends sends wait (${maxPending})`);
      const { overflow } = a.comm.stats();
      assert.ok(overflow > sent / 2, `most sends overflowed (${overflow} of ${sent})`);
      const got: bigint[] = [];
      void (async () => {
        for await (const m of sub) got.push(m.message.nonce);
      })();
      // (`connect` sent one message before: 1 + the accepted ones.)
      await c.until(() => pending === 0 && a.comm.stats().sendBuffered === 0 && got.length === 1 + sent - overflow, 60_000);
      assert.equal(a.comm.stats().dropped, 0, "nothing accepted was dropped");
      assert.equal(a.comm.stats().messagesSent, 1 + sent - overflow);
      got.shift();
      assert.ok(
        got.every((n, i) => i === 0 || n > (got[i - 1] as bigint)),
        "in order",
      );
      sub.close();
    },
  );

  memTest(
    "while the peer is being dialed: at most maxBlockedSends wait behind the dial; the queued and waiting ones arrive, in order",
    async (c) => {
      const a = c.peer({ options: { overflowPolicy: "block", sendBuffSize: 4, maxBlockedSends: 8 } });
      const b = c.peer();
      const sends = Array.from({ length: 100 }, (_, i) => a.comm.send(dataMessage(i), target(b)));
      assert.equal(a.comm.stats().overflow, 100 - 4 - 8, "4 queued in front of the dial, 8 waiting, the rest refused at once");
      await c.until(() => b.received.length === 12);
      await Promise.all(sends);
      await c.advance(100);
      assert.deepEqual(
        b.received.map((m) => m.message.nonce),
        Array.from({ length: 12 }, (_, i) => BigInt(i)),
      );
      assert.equal(a.comm.stats().dropped, 0);
    },
  );

  memTest("a dial that fails releases every blocked sender and counts every message", async (c) => {
    const a = c.peer({ options: { overflowPolicy: "block", sendBuffSize: 4 } });
    const sends = Array.from({ length: 30 }, (_, i) => a.comm.send(dataMessage(i), { endpoint: "nobody:1" }));
    await c.advance(0);
    await Promise.all(sends);
    assert.equal(a.comm.stats().dropped, 30);
    assert.equal(a.dead.length, 1);
  });

  memTest("stop() releases senders blocked behind a dial", async (c) => {
    const a = c.peer({ options: { overflowPolicy: "block", sendBuffSize: 2 } });
    const b = c.peer();
    c.net.partition([a.host], [b.host]); // the dial hangs
    const sends = Array.from({ length: 10 }, (_, i) => a.comm.send(dataMessage(i), target(b)));
    await c.advance(100);
    await a.stop();
    await Promise.all(sends);
    assert.equal(a.comm.stats().dropped, 10);
    assert.equal(a.dead.length, 0, "stopping presumes nobody dead");
    c.net.heal();
  });
});

describe("message size", () => {
  memTest("a message larger than maxMessageBytes is refused with MessageTooLarge, synchronously", async (c) => {
    const a = c.peer({ options: { maxMessageBytes: 1024 } });
    const b = c.peer();
    assert.throws(
      () => a.comm.send(dataMessage(1, new Uint8Array(2048)), target(b)),
      (e: unknown) => (e as { code?: string }).code === ErrorCode.MessageTooLarge,
    );
    const r = await a.comm.sendWithAck(dataMessage(1, new Uint8Array(2048)), 100, 1, target(b));
    assert.equal(r.results[0]?.error?.code, ErrorCode.MessageTooLarge);
    assert.equal(a.dials.count, 0);
  });
});
