// The soak: 32 peers in a full mesh across 4 processes for SOAK_SECONDS
// (default 300; see test/chaos/soak.ts). `npm run test:soak`, not in CI.
import { after, describe, it } from "node:test";
import { runSoak } from "../chaos/soak.js";
import { killAllWorkers } from "../chaos/workers.js";

const seconds = Number(process.env.SOAK_SECONDS ?? 300);
if (!Number.isFinite(seconds) || seconds < 20) throw new Error(`SOAK_SECONDS must be a number >= 20, got ${process.env.SOAK_SECONDS}`);

after(killAllWorkers);

describe(`soak (${seconds} s)`, () => {
  it("32 peers, 4 processes, full mesh: resources flat after warm-up, no unexpected error, nothing lost", {
    timeout: (seconds + 180) * 1000,
  }, async () => {
    const r = await runSoak(seconds);
    console.log(JSON.stringify({ test: "soak", ...r }));
  });
});
