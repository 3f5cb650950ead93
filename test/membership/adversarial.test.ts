// Adversarial input beyond bad-input.test.ts: fields that are each valid but
// combined oddly, floods that dodge the per-peer budgets, and what a refused
// message may keep alive in memory. Each case: refused with a typed
// ErrorCode and counted, bounded in CPU and memory, the view unpolluted.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { decodeEnvelope, encodeEnvelope } from "../../src/core/envelope.js";
import { ErrorCode } from "../../src/core/errors.js";
import { aliveMessage, parseAlive, signAlive } from "../../src/membership/alive-message.js";
import { AwaitingIdentity } from "../../src/membership/awaiting-identity.js";
import { hex } from "../../src/membership/hex.js";
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

describe("alive messages held for their identity are bounded in bytes, not only in count", () => {
  const big = (c: FakeCrypto, metadataBytes: number, seq = 1n) => {
    const m = aliveMessage({
      endpoint: "s:1",
      pkiId: c.pkiId,
      metadata: new Uint8Array(metadataBytes),
      timestamp: { incNum: 1n, seqNum: seq },
    });
    return signAlive(c, m, "");
  };

  it("holding evicts the oldest beyond maxBytes, and a message larger than maxBytes is not held", () => {
    const held = new AwaitingIdentity(10_000, 25_000, 1024 * 1024);
    const cs = Array.from({ length: 8 }, () => new FakeCrypto("Org1MSP"));
    cs.forEach((c, i) => held.hold(parseAlive(big(c, 256 * 1024)), "gossip", "x", i));
    assert.ok(held.bytes <= 1024 * 1024, `${held.bytes} bytes held`);
    assert.equal(held.size, 3, "three of 256 KiB (and a bit) fit in 1 MiB");
    assert.equal(held.take(hex(cs[0]?.pkiId ?? new Uint8Array()), 10), undefined, "the oldest went first");
    assert.notEqual(held.take(hex(cs[7]?.pkiId ?? new Uint8Array()), 10), undefined);
    held.hold(parseAlive(big(new FakeCrypto("Org1MSP"), 2 * 1024 * 1024)), "gossip", "x", 11);
    assert.equal(held.size, 2, "too large to hold at all");
    held.clear();
    assert.equal(held.bytes, 0);
  });

  it("a held message keeps no view into the buffer it arrived in (a whole response or frame)", () => {
    const env = big(new FakeCrypto("Org1MSP"), 100);
    const frame = encodeEnvelope(env);
    const arrival = new Uint8Array(1024 * 1024); // the received response around it
    arrival.set(frame, 4096);
    const received = decodeEnvelope(arrival.subarray(4096, 4096 + frame.length));
    assert.equal(received.payload.buffer, arrival.buffer);
    const held = new AwaitingIdentity(10, 25_000);
    const a = parseAlive(received);
    held.hold(a, "alive_entry", "x", 0);
    const got = held.take(a.pkiHex, 1);
    assert.ok(got !== undefined);
    for (const b of [got.alive.envelope.payload, got.alive.envelope.signature, got.alive.pkiId, got.alive.metadata]) {
      assert.notEqual(b.buffer, arrival.buffer, "a view into the arrival buffer");
      assert.ok(b.buffer.byteLength < 4096, `kept a buffer of ${b.buffer.byteLength} bytes`);
    }
    assert.deepEqual(encodeEnvelope(got.alive.envelope), frame, "the same message");
  });
});
