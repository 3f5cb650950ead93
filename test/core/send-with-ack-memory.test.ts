// sendWithAck on a long-lived connection keeps no memory per call: the soak
// (test/chaos/soak.ts) saw the heap climb linearly, ~0.9 KB per sendWithAck,
// for as long as the connection stayed open.
import assert from "node:assert/strict";
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import { describe, it } from "node:test";
import { cleanupAfter, dataMessage, startPeer, type TestPeer } from "../helpers/peers.js";

setFlagsFromString("--expose-gc");
const gc = runInNewContext("gc") as () => void;

const { closers } = cleanupAfter();

function heapAfterGc(): number {
  gc();
  gc();
  return process.memoryUsage().heapUsed;
}

describe("sendWithAck memory", () => {
  it("retains no memory per call on a connection that stays open", async () => {
    const peers: TestPeer[] = await Promise.all([startPeer({ tls: false }), startPeer({ tls: false })]);
    const [a, b] = peers as [TestPeer, TestPeer];
    closers.push(() => a.close(), () => b.close());
    const sub = b.comm.accept();
    void (async () => {
      for await (const m of sub) void m.ack();
    })();
    const to = { endpoint: b.endpoint, pkiId: b.comm.pkiId };
    const round = async (n: number) => {
      for (let i = 0; i < n; i++) {
        const r = await a.comm.sendWithAck(dataMessage(i), 5000, 1, to);
        assert.equal(r.ackCount, 1, r.toString());
      }
    };
    await round(5000); // warm-up: connection, JIT, pools (the heap settles after a few thousand calls)
    const n = 5000;
    const before = heapAfterGc();
    await round(n);
    const perCall = (heapAfterGc() - before) / n;
    console.log(JSON.stringify({ test: "sendWithAck-memory", calls: n, heapBytesPerCall: Math.round(perCall) }));
    assert.equal(a.comm.connections().length, 1, "one connection throughout");
    assert.ok(perCall < 200, `heap grew ${Math.round(perCall)} bytes per sendWithAck`);
    sub.close();
  });
});
