// Membership's screen: a gossiped alive message that the msgStore holds as
// new or newer (most of those a peer receives) is taken from its bytes, never
// decoded nor handed to the inbox's handler, and counted or refused exactly
// as the handler would; everything else still goes the full way.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import fc from "fast-check";
import { Comm } from "../../src/core/comm.js";
import type { CryptoService } from "../../src/core/crypto.js";
import { ErrorCode } from "../../src/core/errors.js";
import { pkiIdHex } from "../../src/core/identity.js";
import type { ReceivedMessage } from "../../src/core/received-message.js";
import { type Envelope, GossipMessage_Tag } from "../../src/gen/gossip/message_pb.js";
import { Inbox } from "../../src/membership/inbox.js";
import { FakeCrypto } from "../helpers/fake-crypto.js";
import { type AliveOpts, alive, countingVerify } from "./bad-input-kit.js";
import { Sim, type SimPeer } from "./sim.js";

/** Alive messages the inboxes' handlers were given, by the receiver's PKI-ID (hex), then by the member's they are about. */
const handledBy = new Map<string, Map<string, number>>();
const originalHandle = Inbox.prototype.handle;

before(() => {
  Inbox.prototype.handle = function (this: Inbox, rm: ReceivedMessage) {
    const c = rm.message.content;
    if (c.case === "aliveMsg") {
      const self = (this as unknown as { readonly init: { readonly selfHex: string } }).init.selfHex;
      const hex = pkiIdHex(c.value.membership?.pkiId ?? new Uint8Array(0));
      const m = handledBy.get(self) ?? new Map<string, number>();
      handledBy.set(self, m);
      m.set(hex, (m.get(hex) ?? 0) + 1);
    }
    originalHandle.call(this, rm);
  };
});

/** What `p`'s handler was given so far, by the member's PKI-ID (hex); cleared by `handled(p).clear()`. */
function handled(p: SimPeer): Map<string, number> {
  const self = pkiIdHex(p.comm.pkiId);
  const m = handledBy.get(self) ?? new Map<string, number>();
  handledBy.set(self, m);
  return m;
}

after(() => {
  Inbox.prototype.handle = originalHandle;
});

/** `make()`, with every Comm.accept made meanwhile given no screen: a membership that handles everything the full way. */
function unscreened<T>(make: () => T): T {
  const accept = Comm.prototype.accept;
  Comm.prototype.accept = function (this: Comm, predicate) {
    return accept.call(this, predicate);
  };
  try {
    return make();
  } finally {
    Comm.prototype.accept = accept;
  }
}

/** A target `t` (screened) and `u` (unscreened), an honest peer `n` that joined both, and a raw attacker `r`. */
async function setup(seed: number, o: { targetCrypto?: CryptoService; ttlFactor?: number } = {}) {
  const sim = new Sim(seed);
  const options = o.ttlFactor === undefined ? undefined : { msgExpirationFactor: o.ttlFactor };
  const t = sim.add("t", { crypto: o.targetCrypto, options });
  const u = unscreened(() => sim.add("u", { options }));
  const n = sim.add("n", { bootstrap: ["t:7051", "u:7051"] });
  const r = sim.add("r", { raw: true });
  await sim.converge((p) => (p === n ? 2 : 1), 20_000, 100);
  const sendTo = async (p: SimPeer, m: Envelope) => {
    await r.comm.send(m, { endpoint: p.endpoint, pkiId: p.comm.pkiId });
    await sim.clock.advance(50);
  };
  const refused = (p: SimPeer, key: string) => p.membership.stats().refused[key] ?? 0;
  const duplicates = (p: SimPeer) => p.membership.stats().duplicates.alive ?? 0;
  return { sim, t, u, n, r, sendTo, send: (m: Envelope) => sendTo(t, m), refused, duplicates };
}

describe("membership's alive screen", () => {
  it("a duplicate is not decoded nor handled, but counted; a newer one from the same PKI-ID is decoded, verified and handled", async () => {
    const counting = countingVerify(new FakeCrypto("Org1MSP"));
    const { sim, t, r, send, duplicates } = await setup(41, { targetCrypto: counting.crypto });
    counting.crypto.trust.msps.clear();
    const rHex = pkiIdHex(r.comm.pkiId);
    handled(t).clear();
    await send(alive(r.crypto, { seq: 5n, endpoint: "r:7051" }));
    assert.equal(handled(t).get(rHex), 1, "the first one is handled");
    assert.equal(t.membership.lookup(r.comm.pkiId)?.timestamp.seqNum, 5n);
    const verified = counting.count();
    const dups = duplicates(t);
    await send(alive(r.crypto, { seq: 5n, endpoint: "r:7051" }));
    await send(alive(r.crypto, { seq: 4n, endpoint: "r:7051" }));
    assert.equal(handled(t).get(rHex), 1, "duplicates never reach the handler (nor the decoder before it)");
    assert.equal(duplicates(t), dups + 2, "but they are counted as duplicates");
    assert.equal(counting.count(), verified, "and not verified");
    await send(alive(r.crypto, { seq: 6n, endpoint: "r:7051" }));
    assert.equal(handled(t).get(rHex), 2, "a newer one is handled");
    assert.equal(counting.count(), verified + 1, "and verified");
    assert.equal(t.membership.lookup(r.comm.pkiId)?.timestamp.seqNum, 6n);
    await sim.close();
  });

  it("a forged newer one is decoded and refused (BadSignature); a forged duplicate dies at the msgStore unverified, as in Fabric", async () => {
    const { sim, t, r, send, refused, duplicates } = await setup(42);
    const victim = new FakeCrypto("Org1MSP", sim.trust);
    const vHex = pkiIdHex(victim.pkiId);
    await send(alive(victim, { seq: 5n, endpoint: "v:1" }));
    assert.equal(t.membership.lookup(victim.pkiId)?.timestamp.seqNum, 5n);
    handled(t).clear();
    await send(alive(r.crypto, { claim: victim, seq: 9n, endpoint: "evil:1" }));
    assert.equal(handled(t).get(vHex), 1);
    assert.equal(refused(t, `alive/${ErrorCode.BadSignature}`), 1);
    const dups = duplicates(t);
    await send(alive(r.crypto, { claim: victim, seq: 5n, endpoint: "evil:1" }));
    assert.equal(handled(t).get(vHex), 1, "not decoded");
    assert.equal(duplicates(t), dups + 1);
    assert.equal(refused(t, `alive/${ErrorCode.BadSignature}`), 1);
    assert.equal(t.membership.lookup(victim.pkiId)?.endpoint, "v:1");
    await sim.close();
  });

  it("an older incarnation is refused from its bytes (StaleMessage), and so is anything as old as a tombstone", async () => {
    const { sim, t, r, send, refused } = await setup(43, { ttlFactor: 1 });
    const rHex = pkiIdHex(r.comm.pkiId);
    await send(alive(r.crypto, { inc: 2_000n, seq: 5n, endpoint: "r:7051" }));
    handled(t).clear();
    await send(alive(r.crypto, { inc: 1_000n, seq: 99n, endpoint: "r:7051" }));
    assert.equal(refused(t, `alive/${ErrorCode.StaleMessage}`), 1);
    // The msgStore's TTL (1 × 25 s here) passes: r's entry becomes a tombstone.
    await sim.clock.advance(30_000);
    await send(alive(r.crypto, { inc: 2_000n, seq: 5n, endpoint: "r:7051" }));
    assert.equal(refused(t, `alive/${ErrorCode.StaleMessage}`), 2);
    assert.equal(handled(t).get(rHex) ?? 0, 0, "neither was decoded");
    await sim.close();
  });

  it("a duplicate with an illegal tag, too large or unsigned still goes the full way and gets the handler's typed refusal", async () => {
    const { sim, t, r, send, refused } = await setup(44);
    const rHex = pkiIdHex(r.comm.pkiId);
    await send(alive(r.crypto, { seq: 5n, endpoint: "r:7051" }));
    handled(t).clear();
    await send(alive(r.crypto, { seq: 5n, endpoint: "r:7051", tag: GossipMessage_Tag.ORG_ONLY }));
    assert.equal(refused(t, `alive/${ErrorCode.IllegalTag}`), 1);
    await send(alive(r.crypto, { seq: 5n, endpoint: "r:7051", metadata: new Uint8Array(70_000) }));
    assert.equal(refused(t, `alive/${ErrorCode.MessageTooLarge}`), 1);
    const unsigned = { ...alive(r.crypto, { seq: 5n, endpoint: "r:7051" }), signature: new Uint8Array(0) };
    await send(unsigned);
    assert.equal(refused(t, `alive/${ErrorCode.MalformedMessage}`), 1);
    assert.equal(handled(t).get(rHex), 3, "each one decoded and handled");
    await sim.close();
  });

  it("property: a screened and an unscreened peer given the same alive messages end in the same state with the same counts", async () => {
    const event = fc.record({
      who: fc.integer({ min: 0, max: 2 }),
      forged: fc.integer({ min: 0, max: 3 }).map((n) => n === 0),
      inc: fc.integer({ min: 1, max: 2 }),
      seq: fc.integer({ min: 0, max: 3 }),
      tag: fc.constantFrom(GossipMessage_Tag.EMPTY, GossipMessage_Tag.EMPTY, GossipMessage_Tag.EMPTY, GossipMessage_Tag.ORG_ONLY),
      identity: fc.integer({ min: 0, max: 3 }).map((n) => n > 0),
      /** The same bytes as the last message sent (a gossiped copy). */
      again: fc.integer({ min: 0, max: 2 }).map((n) => n === 0),
      unsigned: fc.integer({ min: 0, max: 9 }).map((n) => n === 0),
      waitMs: fc.constantFrom(0, 0, 0, 10_000, 30_000),
    });
    // One network each, alike but for the screen: the same seed, the same sender and members.
    const world = (seed: number, attacker: CryptoService, screen: boolean) => {
      const sim = new Sim(seed);
      const options = { msgExpirationFactor: 1 };
      const t = screen ? sim.add("t", { options }) : unscreened(() => sim.add("t", { options }));
      const r = sim.add("r", { raw: true, crypto: attacker });
      return { sim, t, r };
    };
    let seed = 100;
    let duplicates = 0;
    await fc.assert(
      fc.asyncProperty(fc.array(event, { minLength: 1, maxLength: 14 }), async (events) => {
        const attacker = new FakeCrypto("Org1MSP");
        const members = [attacker, new FakeCrypto("Org1MSP"), new FakeCrypto("Org1MSP")];
        const worlds = [world(seed, attacker, true), world(seed, attacker, false)];
        seed++;
        try {
          let last: Envelope | undefined;
          for (const e of events) {
            const who = members[e.who] as CryptoService;
            const o: AliveOpts = {
              inc: BigInt(e.inc) * 1_000n,
              seq: BigInt(e.seq),
              endpoint: `m${e.who}:7051`,
              tag: e.tag,
              identity: e.identity,
              ...(e.forged && who !== attacker ? { claim: who } : {}),
            };
            let env = alive(e.forged ? attacker : who, o);
            if (e.unsigned) env = { ...env, signature: new Uint8Array(0) };
            if (e.again && last !== undefined) env = last;
            last = env;
            for (const { sim, t, r } of worlds) {
              await r.comm.send(env, { endpoint: t.endpoint, pkiId: t.comm.pkiId });
              await sim.clock.advance(50 + e.waitMs);
            }
          }
          const [a, b] = worlds as [(typeof worlds)[0], (typeof worlds)[0]];
          const sa = a.t.membership.stats();
          const sb = b.t.membership.stats();
          assert.deepEqual(sa.refused, sb.refused);
          assert.deepEqual(sa.duplicates, sb.duplicates);
          duplicates += sa.duplicates.alive ?? 0;
          for (const m of members) {
            const ma = a.t.membership.lookup(m.pkiIdOf(m.identity));
            const mb = b.t.membership.lookup(m.pkiIdOf(m.identity));
            assert.deepEqual(
              ma && { state: ma.state, endpoint: ma.endpoint, timestamp: ma.timestamp },
              mb && { state: mb.state, endpoint: mb.endpoint, timestamp: mb.timestamp },
            );
          }
        } finally {
          for (const w of worlds) await w.sim.close();
        }
      }),
      { numRuns: 80, endOnFailure: true, includeErrorInReport: true },
    );
    assert.ok(duplicates > 15, `duplicates seen: ${duplicates}`); // ~50 expected: the property was exercised
  });
});
