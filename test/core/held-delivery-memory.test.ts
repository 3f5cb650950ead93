// A connection whose subscriber is often full keeps no memory per held
// delivery: each one raced a promise that settles only on abort, and every
// race left a reaction on it (~310 B) until the connection closed. W2's
// receiver holds a delivery every `acceptBuffSize` messages. Core logic: run
// in memory.
import assert from "node:assert/strict";
import { describe } from "node:test";
import { heapAfterGc } from "../helpers/heap.js";
import { memTest, target } from "../helpers/memory-peers.js";
import { dataMessage } from "../helpers/messages.js";

describe("held delivery memory", () => {
  memTest("a subscription that fills again and again retains nothing per held delivery", async (c) => {
    const a = c.peer({ collect: false, options: { overflowPolicy: "block" } });
    // A buffer of one: nearly every delivery of a batch finds the subscription full and is held.
    const b = c.peer({ collect: false, options: { acceptBuffSize: 1 } });
    const sub = b.comm.accept();
    let received = 0;
    void (async () => {
      for await (const _ of sub) received++;
    })();
    const round = async (n: number) => {
      const want = received + n;
      for (let i = 0; i < n; i++) await a.comm.send(dataMessage(i), target(b));
      while (received < want) await c.advance(0);
    };
    const n = 4000;
    await round(n); // warm-up as long as a measure
    const inbound = b.comm.stats().connections.inbound;
    const rounds = 3;
    const readings = [heapAfterGc()];
    for (let r = 0; r < rounds; r++) {
      await round(n);
      readings.push(heapAfterGc());
    }
    const perMessage = ((readings.at(-1) ?? 0) - (readings[0] ?? 0)) / (rounds * n);
    const perRound = readings.slice(1).map((h, i) => Math.round((h - (readings[i] ?? h)) / n));
    console.log(
      JSON.stringify({ test: "held-delivery-memory", messages: rounds * n, heapBytesPerMessage: Math.round(perMessage), perRound }),
    );
    assert.equal(inbound, 1, "one connection throughout");
    assert.equal(b.comm.connections().length, 1);
    assert.ok(perMessage < 60, `heap grew ${Math.round(perMessage)} bytes per message`);
  });
});
