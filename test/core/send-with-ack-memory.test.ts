// sendWithAck on a long-lived connection keeps no memory per call: the soak
// (test/chaos/soak.ts) saw the heap climb linearly, ~0.9 KB per sendWithAck,
// for as long as the connection stayed open. Core logic: run in memory.
import assert from "node:assert/strict";
import { describe } from "node:test";
import { heapAfterGc } from "../helpers/heap.js";
import { memTest, target } from "../helpers/memory-peers.js";
import { dataMessage } from "../helpers/messages.js";

describe("sendWithAck memory", () => {
  memTest("retains no memory per call on a connection that stays open", async (c) => {
    const a = c.peer({ collect: false });
    const b = c.peer({ collect: false });
    const sub = b.comm.accept();
    void (async () => {
      for await (const m of sub) void m.ack();
    })();
    const round = async (n: number) => {
      for (let i = 0; i < n; i++) {
        const r = await a.comm.sendWithAck(dataMessage(i), 5000, 1, target(b));
        assert.equal(r.ackCount, 1, r.toString());
        // The virtual clock keeps cleared timers until their time comes: let
        // it come, so that only what the comm keeps is measured.
        if (i % 500 === 499) await c.advance(5001);
      }
    };
    const n = 3000;
    await round(n); // warm-up as long as a measure: connection, JIT, pools, table sizes
    // One heap reading moves by a few hundred KB with what the collector
    // happens to keep (±50-100 bytes a call over one round of 3000), so the
    // slope is taken over three rounds: a leak grows in every round, noise
    // does not add up.
    const rounds = 3;
    const readings = [heapAfterGc()];
    for (let r = 0; r < rounds; r++) {
      await round(n);
      readings.push(heapAfterGc());
    }
    const perRound = readings.slice(1).map((h, i) => Math.round((h - (readings[i] ?? h)) / n));
    const perCall = ((readings.at(-1) ?? 0) - (readings[0] ?? 0)) / (rounds * n);
    console.log(JSON.stringify({ test: "sendWithAck-memory", calls: rounds * n, heapBytesPerCall: Math.round(perCall), perRound }));
    assert.equal(a.comm.connections().length, 1, "one connection throughout");
    assert.equal(a.dials.count, 1);
    assert.ok(perCall < 200, `heap grew ${Math.round(perCall)} bytes per sendWithAck`);
  });
});
