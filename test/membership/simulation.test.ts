// Large simulations on the virtual clock with the fake crypto. Most of their
// CPU is Fabric's gossip volume itself (each alive message reaches every peer
// about three times, and the random targets make a full mesh of connections:
// ~4,950 for 100 peers), so the 100-peer test stops at convergence.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { Sim } from "./sim.js";

describe("simulation", () => {
  it("100 peers bootstrapping to 3 seeds converge within 3 alive intervals", async () => {
    const sim = new Sim(100);
    const n = 100;
    const started = performance.now();
    const cpu = process.cpuUsage();
    for (let i = 0; i < 3; i++)
      sim.add(`p${i}`, {
        bootstrap: [0, 1, 2].filter((j) => j !== i).map((j) => `p${j}:7051`),
      });
    await sim.clock.advance(10);
    for (let i = 3; i < n; i++) sim.add(`p${i}`, { bootstrap: [`p${i % 3}:7051`] });
    const took = await sim.converge(() => n - 1, 15_000, 250);
    console.log(
      JSON.stringify({
        test: "sim-100",
        convergedVirtualMs: took,
        realMs: Math.round(performance.now() - started),
        cpuMs: Math.round(process.cpuUsage(cpu).user / 1000),
      }),
    );
    assert.ok(took <= 15_000);
    for (const p of sim.running()) {
      assert.equal(p.membership.dead().length, 0);
      assert.ok(
        p.membership.alive().every((m) => m.internalEndpoint === `${m.endpoint}`),
        "same org: internal endpoints known",
      );
    }
    await sim.close();
  });

  it("20 peers: 5 crash and everyone sees 14 within the expiration timeout; they restart and are seen again at once", async () => {
    const sim = new Sim(30);
    const n = 20;
    for (let i = 0; i < n; i++) sim.add(`p${i}`, { bootstrap: i === 0 ? [] : [`p${(i - 1) % 3}:7051`] });
    await sim.converge(() => n - 1, 60_000, 500);
    const victims = sim.peers.slice(10, 15);
    for (const p of victims) await p.kill();
    const took = await sim.converge(() => n - 6, 40_000, 500);
    assert.ok(took <= 25_000 + 2_500 + 500, `expired after ${took} ms`);
    for (const p of victims) sim.add(p.name, { crypto: p.crypto, bootstrap: ["p0:7051"] });
    const back = await sim.converge(() => n - 1, 40_000, 500);
    assert.ok(back <= 30_000, `seen again after ${back} ms`);
    await sim.close();
  });
});
