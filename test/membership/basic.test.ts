import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { noopMembershipMetrics } from "../../src/membership/index.js";
import { Sim } from "./sim.js";

describe("membership on the in-memory transport", () => {
  it("two peers find each other through a bootstrap peer", async () => {
    const sim = new Sim();
    const a = sim.add("a");
    const b = sim.add("b", { bootstrap: ["a:7051"] });
    const took = await sim.converge(() => 1, 10_000, 100);
    assert.ok(took < 10_000);
    const seen = a.membership.alive()[0];
    assert.equal(seen?.pkiIdHex, b.membership.self.pkiIdHex);
    assert.equal(seen?.internalEndpoint, "b:7051");
    await sim.close();
  });
});

describe("duplicates are not refusals", () => {
  it("a quiet 5-peer mesh refuses nothing over 12 alive intervals, yet sees duplicates (gossip's redundancy), counted apart", async () => {
    const sim = new Sim(7);
    const counted = ["p0", "p1", "p2", "p3", "p4"].map(() => ({ refused: 0, duplicates: 0 }));
    const peers = counted.map((c, i) =>
      sim.add(`p${i}`, {
        bootstrap: i === 0 ? [] : ["p0:7051"],
        metrics: { ...noopMembershipMetrics, refused: () => void c.refused++, duplicate: () => void c.duplicates++ },
      }),
    );
    await sim.converge(() => 4, 30_000, 100);
    const before = counted.map((c) => ({ ...c }));
    const refusedBefore = peers.map((p) => p.membership.stats().refused);
    await sim.clock.advance(12 * 5000);
    for (const [i, p] of peers.entries()) {
      assert.equal(counted[i]?.refused, before[i]?.refused, `${p.name} refused nothing once converged`);
      assert.deepEqual(p.membership.stats().refused, refusedBefore[i]);
      assert.ok((counted[i]?.duplicates ?? 0) > (before[i]?.duplicates ?? 0), `${p.name} counted duplicates`);
      assert.ok((p.membership.stats().duplicates.alive ?? 0) > 0, `${p.name}: duplicate alive messages in stats`);
      assert.equal(p.membership.alive().length, 4);
    }
    await sim.close();
  });
});
