// The send buffer: bounded, ordered, one writer, coalescing, nothing lost silently.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { ErrorCode, GossipError } from "../../src/core/errors.js";
import { SendBuffer } from "../../src/core/send-buffer.js";
import { writeTaken } from "../../src/core/transport.js";

const frame = (n: number) => new Uint8Array([n]);

function sink(opts: { slow?: boolean; taken?: boolean } = {}) {
  const batches: number[][] = [];
  const events = { written: 0, dropped: 0, failed: undefined as GossipError | undefined };
  let release: (() => void) | undefined;
  let fail: ((e: unknown) => void) | undefined;
  return {
    batches,
    events,
    release: () => release?.(),
    fail: (e: unknown) => fail?.(e),
    sink: {
      writeFrames(frames: readonly Uint8Array[]) {
        batches.push(frames.map((f) => f[0] as number));
        if (opts.taken) return writeTaken;
        if (!opts.slow) return Promise.resolve();
        return new Promise<void>((res, rej) => {
          release = res;
          fail = rej;
        });
      },
      framesWritten(count: number) {
        events.written += count;
      },
      framesDropped(count: number) {
        events.dropped += count;
      },
      writeFailed(e: GossipError) {
        events.failed = e;
      },
    },
  };
}

const tick = () => new Promise((r) => setImmediate(r));
/** The end of the current task: after its promise jobs, before the next turn of the event loop. */
const endOfTask = () => new Promise((r) => process.nextTick(r));

describe("SendBuffer", () => {
  it("keeps its owner's four bits apart from its own state and next-turn ids (a connection's flags live there)", async () => {
    class Owned extends SendBuffer {
      get bits(): number {
        return this.ownerBits;
      }
      set bits(b: number) {
        this.ownerBits = b;
      }
    }
    const s = sink({ taken: true });
    const b = new Owned(2, s.sink);
    b.bits = 15;
    // Full queues with the transport taking every write at once: writes on next turns, ids in the same word.
    for (let i = 0; i < 12; i++) {
      await b.put(frame(i));
      assert.equal(b.bits, 15);
    }
    await tick();
    await tick();
    assert.deepEqual(s.batches.flat(), [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]);
    b.bits = 5;
    assert.equal(b.bits, 5);
    assert.equal(b.isClosed, false, "owner bits are not the queue's closed flag");
    b.close();
    assert.equal(b.bits, 5, "closing leaves the owner's bits");
    assert.equal(b.isClosed, true);
  });

  it("coalesces frames offered in one tick into one write, in order", async () => {
    const s = sink();
    const b = new SendBuffer(20, s.sink);
    for (let i = 0; i < 5; i++) assert.equal(b.offer(frame(i)), true);
    await tick();
    assert.deepEqual(s.batches, [[0, 1, 2, 3, 4]]);
    assert.equal(s.events.written, 5);
  });

  it("refuses beyond capacity; put waits for room and keeps call order", async () => {
    const s = sink({ slow: true });
    const b = new SendBuffer(2, s.sink);
    assert.equal(b.offer(frame(0)), true);
    await tick(); // 0 is being written (slow)
    assert.equal(b.offer(frame(1)), true);
    assert.equal(b.offer(frame(2)), true);
    assert.equal(b.offer(frame(3)), false, "full");
    const order: number[] = [];
    const p4 = b.put(frame(4)).then(() => order.push(4));
    const p5 = b.put(frame(5)).then(() => order.push(5));
    assert.equal(b.offer(frame(6)), false, "a waiting put is not overtaken by offer");
    s.release();
    await tick();
    s.release();
    await Promise.all([p4, p5]);
    s.release();
    await tick();
    s.release();
    await tick();
    assert.deepEqual(order, [4, 5]);
    assert.deepEqual(s.batches.flat(), [0, 1, 2, 4, 5]);
  });

  it("close drops queued frames (counted) and rejects waiting puts with Closed", async () => {
    const s = sink({ slow: true });
    const b = new SendBuffer(2, s.sink);
    b.offer(frame(0));
    await tick();
    b.offer(frame(1));
    b.offer(frame(2));
    const waiting = b.put(frame(3));
    b.close();
    await assert.rejects(waiting, (e: unknown) => e instanceof GossipError && e.code === ErrorCode.Closed);
    assert.equal(s.events.dropped, 2);
    assert.equal(b.offer(frame(9)), false);
    await assert.rejects(b.put(frame(9)));
  });

  it("at most maxWaiters puts wait: one more is refused at once (Overflow, or reported to dropped), and what waits is written, in order", async () => {
    const s = sink({ slow: true });
    const b = new SendBuffer(2, s.sink, 3);
    b.offer(frame(0));
    await tick(); // 0 is being written (slow)
    b.offer(frame(1));
    b.offer(frame(2));
    const waiting = [3, 4, 5].map((n) => b.put(frame(n)));
    assert.equal(b.waiting, 3);
    await assert.rejects(b.put(frame(6)), (e: unknown) => e instanceof GossipError && e.code === ErrorCode.Overflow);
    const why: string[] = [];
    await b.put(frame(7), (w) => why.push(w)); // resolves at once
    assert.deepEqual(why, ["overflow"]);
    assert.equal(b.waiting, 3, "refused puts did not wait");
    const handedOver = b.put(frame(8), (w) => why.push(w), true); // uncapped: a frame accepted elsewhere
    assert.equal(b.waiting, 4);
    for (let i = 0; i < 10 && s.batches.flat().length < 7; i++) {
      s.release();
      await tick();
    }
    await Promise.all([...waiting, handedOver]);
    assert.deepEqual(s.batches.flat(), [0, 1, 2, 3, 4, 5, 8], "every frame that entered or waited, in order; none refused");
    assert.deepEqual(why, ["overflow"]);
    assert.equal(s.events.dropped, 0);
    // Room again: puts wait again.
    b.offer(frame(9));
    b.offer(frame(10));
    const again = b.put(frame(11), (w) => why.push(w));
    assert.equal(b.waiting, 1);
    b.close();
    await again;
    assert.deepEqual(why, ["overflow", "closed"]);
  });

  it("a failed write reports the error once and every frame that will never be written", async () => {
    const s = sink({ slow: true });
    const b = new SendBuffer(10, s.sink);
    b.offer(frame(0));
    await tick();
    b.offer(frame(1));
    b.offer(frame(2));
    s.fail(new Error("boom"));
    await tick();
    assert.equal(s.events.failed?.code, ErrorCode.Closed);
    assert.equal(s.events.dropped, 3, "the failed batch and the two queued frames");
    assert.equal(b.isClosed, true);
  });

  it("flushed() resolves once everything queued was handed to the transport", async () => {
    const s = sink({ slow: true });
    const b = new SendBuffer(10, s.sink);
    b.offer(frame(0));
    b.offer(frame(1));
    let flushed = false;
    const f = b.flushed().then(() => (flushed = true));
    await tick();
    assert.equal(flushed, false);
    s.release();
    await f;
    assert.equal(s.events.written, 2);
  });

  describe("a transport that takes writes at once (writeTaken, as HTTP/2 does with window room)", () => {
    it("reports the batch written in the same task, and coalesces what follows into the next turn's write", async () => {
      const s = sink({ taken: true });
      const b = new SendBuffer(20, s.sink);
      for (let i = 0; i < 5; i++) b.offer(frame(i));
      await endOfTask(); // the idle buffer writes at the end of this task
      assert.deepEqual(s.batches, [[0, 1, 2, 3, 4]]);
      assert.equal(s.events.written, 5, "counted without waiting for a promise");
      assert.equal(b.pending, 0);
      b.offer(frame(5));
      b.offer(frame(6));
      for (let i = 0; i < 5; i++) await Promise.resolve();
      assert.equal(s.batches.length, 1, "busy: not one write per microtask");
      await tick();
      assert.deepEqual(s.batches, [
        [0, 1, 2, 3, 4],
        [5, 6],
      ]);
    });

    it("a put that finds the queue full writes it at once instead of waiting for the next turn", async () => {
      const s = sink({ taken: true });
      const b = new SendBuffer(2, s.sink);
      b.offer(frame(0));
      await endOfTask();
      assert.deepEqual(s.batches, [[0]]);
      assert.equal(b.offer(frame(1)), true);
      assert.equal(b.offer(frame(2)), true);
      assert.equal(b.offer(frame(3)), false, "full");
      const put = b.put(frame(3));
      assert.deepEqual(s.batches, [[0], [1, 2]], "written synchronously by the put");
      let resolved = false;
      void put.then(() => (resolved = true));
      await Promise.resolve();
      assert.equal(resolved, true, "resolved without a turn of the event loop");
      assert.equal(b.size, 1);
      await tick();
      await tick();
      assert.deepEqual(s.batches.flat(), [0, 1, 2, 3]);
      assert.equal(s.events.written, 4);
    });
  });
});

describe("SendBuffer under a promise-driven producer", () => {
  it("an idle buffer writes once for everything a chain of promise jobs offered (a relay's for-await + forward)", async () => {
    const s = sink({ taken: true });
    const b = new SendBuffer(20, s.sink);
    // As a consumer of one read's batch: woken by a promise (the reader's),
    // each message offered after an await.
    await new Promise<void>((done) => {
      setImmediate(() => {
        void Promise.resolve().then(async () => {
          for (let i = 0; i < 10; i++) {
            b.offer(frame(i));
            await Promise.resolve();
          }
          done();
        });
      });
    });
    await endOfTask();
    assert.deepEqual(s.batches, [[0, 1, 2, 3, 4, 5, 6, 7, 8, 9]]);
  });
});
