// The soak for CI: 32 peers in a full mesh across 4 processes for 30 s (see soak.ts).
import { after, describe, it } from "node:test";
import { runSoak } from "./soak.js";
import { killAllWorkers } from "./workers.js";

after(killAllWorkers);

describe("soak (30 s)", () => {
  it("32 peers, 4 processes, full mesh: resources flat after warm-up, no unexpected error, nothing lost", async () => {
    const r = await runSoak(30);
    console.log(JSON.stringify({ test: "soak-short", ...r }));
  });
});
