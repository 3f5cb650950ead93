// The send path: Fabric's TestMetrics, the overflow policies, and bounded
// memory when a remote stops reading.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { Registry } from "prom-client";
import { ErrorCode } from "../../src/core/errors.js";
import { bytesEqual } from "../../src/core/identity.js";
import { cleanupAfter, collect, dataMessage, eventually, toPeer } from "../helpers/peers.js";

const { peer } = cleanupAfter();
const to = toPeer;

async function counter(registry: Registry | undefined, name: string): Promise<number> {
  const m = registry?.getSingleMetric(name);
  assert.ok(m, `metric ${name} exists`);
  const v = await m.get();
  return v.values.reduce((s, x) => s + x.value, 0);
}

describe("send path", () => {
  it("Fabric's TestMetrics: messages_sent, messages_received and overflow_count move (Prometheus names)", async () => {
    const a = await peer({ plugin: { metrics: true } });
    const b = await peer({ plugin: { metrics: true } });
    const sub = b.comm.accept();
    await a.comm.send(dataMessage(0), to(b));
    await collect(sub, 1, 5000);
    const slowReader = (async () => {
      for await (const _ of sub) await new Promise((r) => setTimeout(r, 1));
    })();
    const payload = new Uint8Array(32 * 1024);
    for (let i = 1; i < 50_000 && (await counter(a.app.gossipMetrics?.registry, "gossip_comm_overflow_count")) === 0; i++) {
      await a.comm.send(dataMessage(i, payload), to(b));
      if (i % 50 === 0) await new Promise((r) => setImmediate(r));
    }
    assert.ok((await counter(a.app.gossipMetrics?.registry, "gossip_comm_overflow_count")) >= 1);
    assert.ok((await counter(a.app.gossipMetrics?.registry, "gossip_comm_messages_sent")) >= 1);
    assert.ok((await counter(b.app.gossipMetrics?.registry, "gossip_comm_messages_received")) >= 1);
    const text = await (a.app.gossipMetrics?.registry as Registry).metrics();
    assert.match(text, /^gossip_comm_overflow_count \d+/m, "Fabric's exact metric name");
    sub.close();
    await slowReader;
  });

  it("policy 'disconnect': a full send buffer presumes the peer dead and closes the connection", async () => {
    const a = await peer({ options: { overflowPolicy: "disconnect", sendBuffSize: 4 } });
    const b = await peer();
    b.comm.accept(); // never read: b stops reading, flow control holds a back
    const dead = a.comm.presumedDead[Symbol.asyncIterator]();
    const payload = new Uint8Array(256 * 1024);
    let closed = false;
    void dead.next().then(() => (closed = true));
    for (let i = 0; i < 2000 && !closed; i++) {
      await a.comm.send(dataMessage(i, payload), to(b));
      if (i % 4 === 0) await new Promise((r) => setTimeout(r, 1));
    }
    await eventually(() => closed, 5000, "presumed-dead");
    assert.ok(a.comm.stats().overflow >= 1);
    await eventually(() => a.comm.connections().length === 0, 5000, "the connection to close");
    await dead.return?.();
  });

  it("policy 'block': send() waits for room and nothing is dropped", async () => {
    const a = await peer({ options: { overflowPolicy: "block", sendBuffSize: 2 } });
    const b = await peer({ options: { acceptBuffSize: 2 } });
    const sub = b.comm.accept();
    const got: bigint[] = [];
    const reader = (async () => {
      for await (const m of sub) {
        got.push(m.message.nonce);
        await new Promise((r) => setTimeout(r, 1));
        if (got.length === 300) break;
      }
    })();
    const payload = new Uint8Array(64 * 1024);
    for (let i = 0; i < 300; i++) await a.comm.send(dataMessage(i, payload), to(b));
    await reader;
    assert.deepEqual(got, Array.from({ length: 300 }, (_, i) => BigInt(i)));
    assert.equal(a.comm.stats().overflow, 0);
    assert.equal(a.comm.stats().dropped, 0);
  });

  it("memory stays bounded while a remote stops reading (sends are dropped and counted, not queued)", async () => {
    const a = await peer();
    const b = await peer();
    b.comm.accept(); // never read
    const payload = new Uint8Array(1024);
    await a.comm.send(dataMessage(0, payload), to(b));
    await eventually(() => a.comm.connections().length === 1, 5000, "connection");
    const heapBefore = process.memoryUsage().heapUsed;
    const deadline = Date.now() + 3000;
    let sent = 0;
    while (Date.now() < deadline && sent < 2_000_000) {
      for (let i = 0; i < 500; i++) void a.comm.send(dataMessage(sent++, payload), to(b));
      await new Promise((r) => setImmediate(r));
    }
    const stats = a.comm.stats();
    // At most a full buffer plus the one batch the transport holds back.
    assert.ok(stats.sendBuffered <= 2 * a.comm.config.sendBuffSize, `send buffer bounded: ${stats.sendBuffered}`);
    assert.ok(stats.overflow > sent / 2, `most sends overflowed (${stats.overflow} of ${sent})`);
    // Accounting: every send either went out (possibly still held by flow control), overflowed, or waits in the buffer.
    assert.equal(stats.messagesSent + stats.overflow + stats.sendBuffered + stats.dropped, sent + 1);
    if (global.gc) global.gc();
    const grownMb = (process.memoryUsage().heapUsed - heapBefore) / 2 ** 20;
    assert.ok(grownMb < 64, `heap grew by ${grownMb.toFixed(1)} MiB for ${sent} sends`);
  });

  it("a message larger than maxMessageBytes is refused with MessageTooLarge, synchronously", async () => {
    const a = await peer({ options: { maxMessageBytes: 1024 } });
    const b = await peer();
    assert.throws(
      () => a.comm.send(dataMessage(1, new Uint8Array(2048)), to(b)),
      (e: unknown) => (e as { code?: string }).code === ErrorCode.MessageTooLarge,
    );
    const r = await a.comm.sendWithAck(dataMessage(1, new Uint8Array(2048)), 100, 1, to(b));
    assert.equal(r.results[0]?.error?.code, ErrorCode.MessageTooLarge);
  });

  it("a remote's oversized message ends its stream with RESOURCE_EXHAUSTED and is not delivered", async () => {
    const a = await peer();
    const b = await peer({ options: { maxMessageBytes: 4096 } });
    const sub = b.comm.accept();
    await a.comm.send(dataMessage(1), to(b));
    await collect(sub, 1, 5000);
    await a.comm.send(dataMessage(2, new Uint8Array(10_000)), to(b));
    assert.equal((await collect(sub, 1, 500)).length, 0);
    await eventually(() => b.comm.connections().length === 0, 5000, "b to drop the connection");
    await a.comm.send(dataMessage(3), to(b)); // a reconnects; small messages flow again
    const [m] = await collect(sub, 1, 5000);
    assert.ok(m && bytesEqual(m.connection.pkiId, a.comm.pkiId));
    sub.close();
  });
});
