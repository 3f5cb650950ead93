import assert from "node:assert/strict";
import { describe, it } from "node:test";
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
