// Adversarial input beyond bad-input.test.ts: fields that are each valid but
// combined oddly, floods that dodge the per-peer budgets, and what a refused
// message may keep alive in memory. Each case: refused with a typed
// ErrorCode and counted, bounded in CPU and memory, the view unpolluted.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { ErrorCode } from "../../src/core/errors.js";
import { FakeCrypto } from "../helpers/fake-crypto.js";
import { alive, countingVerify, setup } from "./bad-input-kit.js";

describe("membership under adversarial input", () => {
  it("a flood of alive messages claiming our own PKI-ID costs bounded signature checks (the sender's budget)", async () => {
    const counting = countingVerify(new FakeCrypto("Org1MSP"));
    const { sim, t, r, refused, healthy } = await setup(61, { targetCrypto: counting.crypto, rawSendBuffer: 10_000 });
    const to = { endpoint: t.endpoint, pkiId: t.comm.pkiId };
    const before = counting.count();
    // Each claims t's PKI-ID (no identity carried: t's own verifies it), fresh seq, signed by r.
    for (let i = 1; i <= 5000; i++)
      void r.comm.send(alive(r.crypto, { claim: t.crypto, identity: false, seq: BigInt(i), endpoint: "evil:1", internal: "evil:1" }), to);
    await sim.clock.advance(1000);
    const spent = counting.count() - before;
    assert.ok(spent <= 2 * (2 * 200 + 200 + 50), `verified ${spent} signatures for 5000 forged own alive messages`);
    const own = refused(`alive/${ErrorCode.OwnPkiId}`);
    const limited = refused(`alive/${ErrorCode.RateLimited}`);
    assert.equal(own + limited, 5000, "every one refused and counted");
    assert.ok(limited > 4000, `rate-limited ${limited}`);
    assert.equal(t.membership.self.endpoint, "t:7051");
    healthy();
    await sim.close();
  });
});
