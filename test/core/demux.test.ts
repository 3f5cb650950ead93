// Fabric's demux_test.go scenarios, plus the guarantees our Demux adds.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { Demux } from "../../src/core/demux.js";

async function drain<T>(it: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const v of it) out.push(v);
  return out;
}

const within = <T>(p: Promise<T>, ms: number, what: string): Promise<T> =>
  Promise.race([p, new Promise<never>((_, rej) => setTimeout(() => rej(new Error(`${what} did not finish within ${ms}ms`)), ms))]);

describe("Demux (Fabric ChannelDeMultiplexer)", () => {
  it("EvenOddChannels: each subscriber gets only its matches, close is idempotent, channels end", async () => {
    const d = new Demux<unknown>(10);
    const even = d.subscribe((m) => typeof m === "number" && m % 2 === 0);
    const odd = d.subscribe((m) => typeof m === "number" && m % 2 === 1);
    assert.equal(d.publish("msg"), undefined); // matches neither
    for (let i = 0; i < 20; i++) assert.equal(d.publish(i), undefined); // 10 each fit the buffers
    d.close();
    d.close();
    assert.deepEqual(await drain(even), [0, 2, 4, 6, 8, 10, 12, 14, 16, 18]);
    assert.deepEqual(await drain(odd), [1, 3, 5, 7, 9, 11, 13, 15, 17, 19]);
  });

  it("OperationsAfterClose: subscribe returns an ended subscription, publish calls no predicate", async () => {
    const d = new Demux<number>(10);
    d.close();
    const sub = d.subscribe(() => true);
    assert.deepEqual(await drain(sub), []);
    let called = false;
    const d2 = new Demux<number>(10);
    d2.subscribe(() => {
      called = true;
      return true;
    });
    d2.close();
    assert.equal(d2.publish(1), undefined);
    assert.equal(called, false);
  });

  it("ShouldCloseWithFullChannel: a publisher blocked on a full subscriber is released by close", async () => {
    const d = new Demux<number>(10);
    d.subscribe(() => true);
    for (let i = 0; i < 10; i++) assert.equal(d.publish(i), undefined);
    const blocked = d.publish(10);
    assert.ok(blocked instanceof Promise, "the 11th publish blocks");
    let done = false;
    void blocked.then(() => (done = true));
    await new Promise((r) => setTimeout(r, 20));
    assert.equal(done, false);
    d.close();
    await within(blocked, 1000, "blocked publish");
  });

  it("InterleaveOperations: arbitrary interleaving of subscribe/publish/close finishes without deadlock", async () => {
    const d = new Demux<number>(10);
    const pending: Promise<void>[] = [];
    for (let i = 0; i < 300; i++) {
      switch (i % 7) {
        case 0:
        case 3:
          d.subscribe((m) => m % 3 === i % 3);
          break;
        case 6:
          if (i > 200) d.close();
          break;
        default: {
          const p = d.publish(i);
          if (p) pending.push(p);
        }
      }
    }
    d.close();
    d.close();
    await within(Promise.all(pending), 1000, "interleaved operations");
  });

  it("never drops: a slow subscriber back-pressures and receives everything in order", async () => {
    const d = new Demux<number>(4);
    const sub = d.subscribe(() => true);
    const got: number[] = [];
    const reader = (async () => {
      for await (const m of sub) {
        got.push(m);
        await new Promise((r) => setTimeout(r, 1));
        if (got.length === 100) break;
      }
    })();
    for (let i = 0; i < 100; i++) {
      const p = d.publish(i);
      if (p) await p;
    }
    await within(reader, 5000, "reader");
    assert.deepEqual(
      got,
      Array.from({ length: 100 }, (_, i) => i),
    );
  });

  it("a publisher blocked on a full subscriber resumes once the subscriber read everything buffered, then refills it", async () => {
    const d = new Demux<number>(4);
    const sub = d.subscribe(() => true);
    const reader = sub[Symbol.asyncIterator]();
    for (let i = 0; i < 4; i++) assert.equal(d.publish(i), undefined);
    let resumed = false;
    const blocked = d.publish(4)?.then(() => (resumed = true));
    assert.ok(blocked, "full: the publisher waits");
    const settle = () => new Promise((r) => setImmediate(r));
    for (let i = 0; i < 3; i++) assert.deepEqual(await reader.next(), { value: i, done: false });
    await settle();
    assert.equal(resumed, false, "one message still buffered: still waiting");
    assert.deepEqual(await reader.next(), { value: 3, done: false });
    await within(blocked, 1000, "blocked publish");
    assert.equal(resumed, true);
    assert.deepEqual(await reader.next(), { value: 4, done: false }, "its message entered in order");
    d.close();
  });

  it("a message matching several predicates reaches each, in subscription order", async () => {
    const d = new Demux<number>(10);
    const a = d.subscribe(() => true);
    const b = d.subscribe((m) => m > 1);
    for (const m of [1, 2, 3]) d.publish(m);
    d.close();
    assert.deepEqual(await drain(a), [1, 2, 3]);
    assert.deepEqual(await drain(b), [2, 3]);
  });

  it("closing a subscription releases a publisher blocked on it and detaches it", async () => {
    const d = new Demux<number>(1);
    const slow = d.subscribe(() => true);
    const other = d.subscribe(() => true, 10);
    d.publish(1);
    const blocked = d.publish(2);
    assert.ok(blocked instanceof Promise);
    slow.close();
    await within(blocked, 1000, "publish blocked on a closed subscription");
    assert.equal(d.size, 1);
    d.close();
    assert.deepEqual(await drain(other), [1, 2]);
  });

  it("a throwing predicate counts as no match and does not break delivery to others", async () => {
    const d = new Demux<number>(10);
    d.subscribe(() => {
      throw new Error("bad predicate");
    });
    const ok = d.subscribe(() => true);
    d.publish(1);
    d.close();
    assert.deepEqual(await drain(ok), [1]);
  });

  it("breaking out of for-await unsubscribes", async () => {
    const d = new Demux<number>(10);
    const sub = d.subscribe(() => true);
    d.publish(1);
    for await (const _ of sub) break;
    assert.equal(d.size, 0);
    assert.equal(sub.closed, true);
  });

  it("poll takes what is buffered without waiting, in the order next gives, and frees a blocked publisher as next does", async () => {
    const d = new Demux<number>(3);
    const sub = d.subscribe(() => true);
    const reader = sub[Symbol.asyncIterator]();
    assert.equal(sub.poll(), undefined, "nothing buffered");
    for (let i = 0; i < 3; i++) d.publish(i);
    let resumed = false;
    const blocked = d.publish(3)?.then(() => (resumed = true));
    assert.ok(blocked);
    assert.deepEqual(await reader.next(), { value: 0, done: false });
    assert.deepEqual(sub.poll(), { value: 1, done: false });
    assert.deepEqual(sub.poll(), { value: 2, done: false });
    await within(blocked, 1000, "blocked publish");
    assert.equal(resumed, true);
    assert.deepEqual(sub.poll(), { value: 3, done: false }, "its message entered in order");
    assert.equal(sub.poll(), undefined);
    d.publish(4);
    d.close();
    assert.deepEqual(sub.poll(), { value: 4, done: false }, "what was buffered before the end");
    assert.deepEqual(sub.poll(), { value: undefined, done: true });
  });

  it("publish skips the subscriptions it is told to, on the fast path and when a full subscriber makes it wait", async () => {
    const d = new Demux<number>(1);
    const full = d.subscribe(() => true);
    const skipped = d.subscribe(() => true);
    const other = d.subscribe(() => true, 10);
    assert.equal(d.publish(0, [skipped]), undefined);
    const reader = full[Symbol.asyncIterator]();
    const waiting = d.publish(1, [skipped]); // `full` holds 0: the slow path
    assert.ok(waiting);
    assert.deepEqual(await reader.next(), { value: 0, done: false });
    await within(waiting, 1000, "blocked publish");
    d.close();
    assert.deepEqual(await drain(skipped), []);
    assert.deepEqual(await drain(other), [0, 1]);
    assert.deepEqual(await drain({ [Symbol.asyncIterator]: () => reader }), [1]);
  });
});
