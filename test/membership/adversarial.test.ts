// Adversarial input beyond bad-input.test.ts: fields that are each valid but
// combined oddly, floods that dodge the per-peer budgets, and what a refused
// message may keep alive in memory. Each case: refused with a typed
// ErrorCode and counted, bounded in CPU and memory, the view unpolluted.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { create } from "@bufbuild/protobuf";
import fc from "fast-check";
import { decodeEnvelope, encodeEnvelope, parseGossipMessage, serializeGossipMessage } from "../../src/core/envelope.js";
import { ErrorCode } from "../../src/core/errors.js";
import { pkiIdHex } from "../../src/core/identity.js";
import type { Logger } from "../../src/core/logger.js";
import {
  DataDigestSchema,
  DataRequestSchema,
  DataUpdateSchema,
  type Envelope,
  GossipHelloSchema,
  type GossipMessage,
  GossipMessage_Tag,
  GossipMessageSchema,
  PeerIdentitySchema,
  PullMsgType,
  SecretEnvelopeSchema,
} from "../../src/gen/gossip/message_pb.js";
import { aliveMessage, parseAlive, signAlive } from "../../src/membership/alive-message.js";
import { AwaitingIdentity } from "../../src/membership/awaiting-identity.js";
import { hex } from "../../src/membership/hex.js";
import { FakeCrypto } from "../helpers/fake-crypto.js";
import { alive, countingVerify, request, response, setup } from "./bad-input-kit.js";
import { record, Sim } from "./sim.js";

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
    for (const [i, c] of cs.entries()) held.hold(parseAlive(big(c, 256 * 1024)), "gossip", "x", i);
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

describe("alive messages of odd but individually valid fields (property)", () => {
  const u64max = (1n << 64n) - 1n;
  const time = fc.oneof(fc.constantFrom(0n, 1n, 1n << 63n, u64max), fc.bigInt({ min: 0n, max: u64max }));
  const oddAlive = fc.record({
    endpoint: fc.oneof(
      fc.constant(""),
      fc.string({ maxLength: 20 }),
      fc.string({ unit: "binary", maxLength: 300 }),
      fc.constant("h".repeat(70_000)),
    ),
    metadata: fc.oneof(fc.constant(new Uint8Array(0)), fc.uint8Array({ maxLength: 3000 })),
    inc: time,
    seq: time,
    identity: fc.constantFrom("own", "none", "garbage", "other"),
    secret: fc.constantFrom("none", "garbage", "signedGarbage", "signedEndpoint", "emptySignature"),
    internal: fc.string({ maxLength: 30 }),
    tag: fc.constantFrom(GossipMessage_Tag.EMPTY, GossipMessage_Tag.EMPTY, GossipMessage_Tag.ORG_ONLY, GossipMessage_Tag.UNDEFINED, 99),
    pki: fc.constantFrom("own", "own", "own", "empty", "short", "long", "other"),
    wrap: fc.constantFrom("gossip", "gossip", "request", "alive_entry", "dead_entry"),
  });
  type Odd = typeof oddAlive extends fc.Arbitrary<infer T> ? T : never;

  it("never crash, never refused as Internal, and only a message validly signed by its member shapes the view", async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(oddAlive, { minLength: 1, maxLength: 6 }), fc.integer({ min: 1, max: 1 << 30 }), async (odds, seed) => {
        const { sim, t, n, r, send, healthy } = await setup(seed);
        const rc = r.crypto;
        const valid: Odd[] = [];
        try {
          for (const o of odds) {
            const pkiId =
              o.pki === "own"
                ? rc.pkiIdOf(rc.identity)
                : o.pki === "empty"
                  ? new Uint8Array(0)
                  : o.pki === "short"
                    ? new Uint8Array([7])
                    : o.pki === "long"
                      ? new Uint8Array(1000).fill(7)
                      : n.comm.pkiId;
            const identity =
              o.identity === "own"
                ? rc.identity
                : o.identity === "none"
                  ? undefined
                  : o.identity === "other"
                    ? n.crypto.identity
                    : new Uint8Array([1, 2, 3]);
            const m = aliveMessage({
              endpoint: o.endpoint,
              pkiId,
              metadata: o.metadata,
              timestamp: { incNum: o.inc, seqNum: o.seq },
              identity,
            });
            m.tag = o.tag;
            const env = signAlive(rc, m, o.secret === "signedEndpoint" ? o.internal : "");
            if (o.secret === "garbage")
              env.secretEnvelope = create(SecretEnvelopeSchema, { payload: new Uint8Array([9, 9]), signature: new Uint8Array([8]) });
            if (o.secret === "emptySignature") env.secretEnvelope = create(SecretEnvelopeSchema, { payload: new Uint8Array([9, 9]) });
            if (o.secret === "signedGarbage") {
              const p = new Uint8Array([0xff, 0x01, 0x02]);
              env.secretEnvelope = create(SecretEnvelopeSchema, { payload: p, signature: rc.sign(p) });
            }
            if (o.wrap === "gossip") await send(env);
            else if (o.wrap === "request") await send(request(env));
            else if (o.wrap === "alive_entry") await send(response([env]));
            else await send(response([], [env]));
            const signedByR = o.pki === "own" && (o.identity === "own" || o.identity === "none");
            const secretOk = o.secret === "none" || o.secret === "signedGarbage" || o.secret === "signedEndpoint";
            if (signedByR && secretOk && (o.wrap !== "gossip" || o.tag === GossipMessage_Tag.EMPTY)) valid.push(o);
          }
          const refused = t.membership.stats().refused;
          for (const key of Object.keys(refused)) assert.ok(!key.endsWith(`/${ErrorCode.Internal}`), `refused as ${key}`);
          const known = new Set([pkiIdHex(n.comm.pkiId), pkiIdHex(r.comm.pkiId)]);
          for (const m of [...t.membership.alive(), ...t.membership.dead()])
            assert.ok(known.has(m.pkiIdHex), `a stranger ${m.pkiIdHex.slice(0, 16)} in the view`);
          const nm = t.membership.lookup(n.comm.pkiId);
          assert.ok(nm !== undefined && nm.endpoint === "n:7051", "the honest member untouched");
          const rm = t.membership.lookup(r.comm.pkiId);
          if (rm !== undefined) {
            const from = valid.find((o) => o.inc === rm.timestamp.incNum && o.seq === rm.timestamp.seqNum && o.endpoint === rm.endpoint);
            assert.ok(from !== undefined, "r's entry comes from a message r validly signed");
            assert.deepEqual(rm.metadata, from.metadata);
          }
          healthy();
        } finally {
          await sim.close();
        }
      }),
      { numRuns: 40 },
    );
  });
});

describe("replays of a dead member's own signed alive message", () => {
  it("revive it by no path while its msgStore entry or tombstone lasts", async () => {
    const { sim, t, n, r, send, refused } = await setup(71);
    const responses = record(r.comm, (rm) => rm.message.content.case === "memRes");
    await sim.clock.advance(7_000); // n signed a few periodic alive messages since it joined
    await send(request(alive(r.crypto, { endpoint: "r:7051", internal: "r:7051" })));
    await sim.clock.advanceUntil(() => responses.got.length > 0, { stepMs: 50, maxMs: 2_000 });
    const res = responses.got[0]?.message.content;
    assert.ok(res?.case === "memRes");
    const nHex = pkiIdHex(n.comm.pkiId);
    const captured = res.value.alive.find((e) => parseAlive(e).pkiHex === nHex);
    assert.ok(captured !== undefined, "t's response carried n's latest alive message");
    await n.kill();
    await sim.clock.advanceUntil(() => t.membership.lookup(n.comm.pkiId)?.state === "dead", { stepMs: 500, maxMs: 60_000 });
    const replayAll = async () => {
      await send(captured);
      await send(request(captured));
      await send(response([captured]));
      await send(response([], [captured]));
    };
    await replayAll();
    assert.equal(t.membership.lookup(n.comm.pkiId)?.state, "dead", "dead stays dead");
    assert.equal(refused(`membership_request/${ErrorCode.SenderMismatch}`), 1);
    // Past the msgStore TTL (500 s): n is removed; its tombstone still refuses the replay.
    await sim.clock.advance(520_000);
    assert.equal(t.membership.lookup(n.comm.pkiId), undefined, "removed after the TTL");
    await replayAll();
    assert.equal(t.membership.lookup(n.comm.pkiId), undefined, "not learned again from a replay while the tombstone lasts");
    responses.stop();
    await sim.close();
  });
});

describe("endpoints claimed oddly", () => {
  it("a member claiming another member's (or our own) endpoint gets neither expired nor purged, however long it is probed there", async () => {
    const { sim, t, n, r, send, healthy } = await setup(81);
    const died: string[] = [];
    void (async () => {
      for await (const e of t.membership.events) if (e.type === "died" || e.type === "removed") died.push(e.member.pkiIdHex);
    })();
    await send(alive(r.crypto, { endpoint: "n:7051", internal: "n:7051" }));
    assert.equal(t.membership.lookup(r.comm.pkiId)?.endpoint, "n:7051");
    const r2 = sim.add("r2", { raw: true }); // and one claiming t's own endpoint
    await r2.comm.send(alive(r2.crypto, { endpoint: "t:7051", internal: "t:7051" }), { endpoint: t.endpoint, pkiId: t.comm.pkiId });
    for (let i = 0; i < 12; i++) {
      await sim.clock.advance(10_000);
      healthy();
      assert.equal(n.membership.lookup(t.comm.pkiId)?.state, "alive", "t stays alive at n");
    }
    assert.ok(!died.includes(pkiIdHex(n.comm.pkiId)), "n never died in t's view");
    assert.notEqual(t.membership.lookup(r.comm.pkiId)?.state, "alive");
    assert.notEqual(t.membership.lookup(r2.comm.pkiId)?.state, "alive");
    assert.deepEqual(t.membership.stats().refused[`alive/${ErrorCode.Internal}`], undefined);
    await sim.close();
  });
});

describe("bytes a forwarder adds to someone else's signed alive message", () => {
  it("are not kept, nor served in our membership responses (the signature covers only the payload)", async () => {
    const { sim, t, n, r, send } = await setup(91);
    const fresh = alive(n.crypto, { inc: 1n << 62n, seq: 1n, endpoint: "n:7051", internal: "n:7051", identity: false });
    const frame = encodeEnvelope(fresh);
    const pad = new Uint8Array(64 * 1024);
    const padded = new Uint8Array(frame.length + 4 + pad.length);
    padded.set(frame);
    padded.set([0x7a, 0x80, 0x80, 0x04], frame.length); // field 15, length-delimited, 65536 bytes: unknown to Envelope
    const relayed = decodeEnvelope(padded);
    await send(relayed);
    assert.equal(t.membership.lookup(n.comm.pkiId)?.timestamp.incNum, 1n << 62n, "the relayed message is n's, newer: taken");
    const responses = record(r.comm, (rm) => rm.message.content.case === "memRes");
    await send(request(alive(r.crypto, { endpoint: "r:7051", internal: "r:7051" })));
    await sim.clock.advanceUntil(() => responses.got.length > 0, { stepMs: 50, maxMs: 2_000 });
    const res = responses.got[0]?.message.content;
    assert.ok(res?.case === "memRes");
    const served = res.value.alive.find((e) => parseAlive(e).pkiHex === pkiIdHex(n.comm.pkiId));
    assert.ok(served !== undefined);
    assert.deepEqual(encodeEnvelope(served), frame, "n's message as n signed it, without the relay's padding");
    responses.stop();
    await sim.close();
  });
});

describe("membership responses of odd content", () => {
  it("ourselves, one member many times, and dead entries newer than what we hold of a live member change nothing they must not", async () => {
    const counting = countingVerify(new FakeCrypto("Org1MSP"));
    const { sim, t, n, send, refused, healthy } = await setup(95, { targetCrypto: counting.crypto });
    const s = new FakeCrypto("Org1MSP", sim.trust);
    const sAlive = alive(s, { endpoint: "s:1", seq: 3n });
    await send(response([])); // connects (the handshake verifies a signature)
    const before = counting.count();
    const nNow = t.membership.lookup(n.comm.pkiId);
    assert.ok(nNow !== undefined);
    const nNewer = alive(n.crypto, { inc: nNow.timestamp.incNum + 1n, endpoint: "elsewhere:1" });
    const usForged = alive(t.crypto, { inc: 1n << 63n, endpoint: "t-elsewhere:1" });
    await send(response([usForged, sAlive, sAlive, sAlive, sAlive], [usForged, nNewer, sAlive]));
    assert.equal(
      counting.count() - before,
      1,
      "one verification: s's message once; ourselves, copies and dead entries about known members are dropped first",
    );
    assert.equal(t.membership.lookup(s.pkiId)?.state, "alive");
    assert.equal(t.membership.stats().duplicates.membership_response, 7);
    const nAfter = t.membership.lookup(n.comm.pkiId);
    assert.equal(nAfter?.state, "alive", "a dead entry never kills a member we know");
    assert.equal(nAfter?.endpoint, "n:7051", "nor changes it");
    assert.equal(t.membership.self.endpoint, "t:7051");
    assert.deepEqual(
      Object.keys(t.membership.stats().refused).filter((k) => k.startsWith("membership_response/")),
      [],
      `refused: ${JSON.stringify(t.membership.stats().refused)}`,
    );
    assert.equal(refused(`membership_response/${ErrorCode.Internal}`), 0);
    healthy();
    await sim.close();
  });
});

describe("a solicited membership response", () => {
  it("whose entries fail their checks costs no more than the sender's budget, even about one member (each entry newer than the last)", async () => {
    const counting = countingVerify(new FakeCrypto("Org1MSP"));
    const { sim, t, n, r, send, healthy } = await setup(97, { targetCrypto: counting.crypto });
    const asked = record(r.comm, (rm) => rm.message.content.case === "memReq");
    await send(alive(r.crypto, { endpoint: "r:7051", internal: "r:7051" })); // r is a member: t's sync asks it
    await sim.clock.advanceUntil(() => asked.got.length > 0, { stepMs: 100, maxMs: 10_000 });
    const req = asked.got[0];
    assert.ok(req !== undefined);
    const nNow = t.membership.lookup(n.comm.pkiId);
    assert.ok(nNow !== undefined);
    // 5,000 entries about n, each newer than the last, signed by r: each looks fresh until verified.
    const forged = Array.from({ length: 5000 }, (_, i) =>
      alive(r.crypto, {
        claim: n.crypto,
        identity: false,
        inc: nNow.timestamp.incNum,
        seq: nNow.timestamp.seqNum + 1000n + BigInt(i),
        endpoint: "evil:1",
      }),
    );
    const before = counting.count();
    await req.respond(response(forged, [], req.message.nonce));
    await sim.clock.advance(100);
    const spent = counting.count() - before;
    const { maxVerificationsPerPeerPerSecond: budget } = t.membership.config;
    assert.ok(spent <= 1 + 2 * budget + 1, `verified ${spent} signatures for 5000 forged entries about one member`);
    assert.equal(
      t.membership.stats().refused[`membership_response/${ErrorCode.RateLimited}`],
      1,
      "the rest of the response ended on the budget",
    );
    assert.equal(t.membership.lookup(n.comm.pkiId)?.endpoint, "n:7051");
    asked.stop();
    healthy();
    await sim.close();
  });

  it("that fails a check is charged to the sender's budget from then on", async () => {
    const counting = countingVerify(new FakeCrypto("Org1MSP"));
    const { sim, t, r, send, healthy } = await setup(98, { targetCrypto: counting.crypto });
    const asked = record(r.comm, (rm) => rm.message.content.case === "memReq");
    await send(alive(r.crypto, { endpoint: "r:7051", internal: "r:7051" }));
    await sim.clock.advanceUntil(() => asked.got.length > 0, { stepMs: 100, maxMs: 10_000 });
    const req = asked.got[0];
    assert.ok(req !== undefined);
    // 3,000 distinct members (valid identities, carried), each entry forged by r.
    const strangers = Array.from({ length: 3000 }, () => new FakeCrypto("Org1MSP", sim.trust));
    const honest = new FakeCrypto("Org1MSP", sim.trust);
    const forged = [alive(honest, { endpoint: "h:1" }), ...strangers.map((s) => alive(r.crypto, { claim: s, endpoint: "evil:1" }))];
    const before = counting.count();
    await req.respond(response(forged, [], req.message.nonce));
    await sim.clock.advance(100);
    const spent = counting.count() - before;
    const { maxVerificationsPerPeerPerSecond: budget } = t.membership.config;
    assert.ok(spent <= 2 + 2 * budget + 1, `verified ${spent} signatures for 3000 forged entries`);
    assert.equal(
      t.membership.stats().refused[`membership_response/${ErrorCode.RateLimited}`],
      1,
      "the rest of the response ended on the budget",
    );
    assert.equal(t.membership.lookup(honest.pkiId)?.state, "alive", "the honest entry before them was taken");
    assert.ok(strangers.every((s) => t.membership.lookup(s.pkiId) === undefined));
    asked.stop();
    healthy();
    await sim.close();
  });
});

describe("membership responses mixing every kind of entry (property)", () => {
  const entry = fc.record({
    who: fc.integer({ min: 0, max: 3 }), // a stranger of four
    kind: fc.constantFrom("valid", "valid", "forged", "noIdentity", "unsigned", "notAlive", "garbage", "us", "n"),
    seq: fc.bigInt({ min: 1n, max: 5n }),
    dead: fc.boolean(),
  });

  it("only validly signed entries about others than us enter the view; nothing else changes, nothing is refused as Internal", async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(entry, { maxLength: 12 }), fc.integer({ min: 1, max: 1 << 30 }), async (entries, seed) => {
        const { sim, t, n, r, send, healthy } = await setup(seed);
        const strangers = [0, 1, 2, 3].map(() => new FakeCrypto("Org1MSP", sim.trust));
        const valid = new Set<string>();
        const maybe = new Set<string>();
        const alive_: Envelope[] = [];
        const dead: Envelope[] = [];
        try {
          for (const e of entries) {
            const s = strangers[e.who] as FakeCrypto;
            let env: Envelope;
            if (e.kind === "valid") env = alive(s, { seq: e.seq, endpoint: `s${e.who}:1` });
            else if (e.kind === "forged") env = alive(r.crypto, { claim: s, seq: e.seq, endpoint: "evil:1" });
            else if (e.kind === "noIdentity") env = alive(s, { identity: false, seq: e.seq, endpoint: `s${e.who}:1` });
            else if (e.kind === "unsigned") env = { ...alive(s, { seq: e.seq }), signature: new Uint8Array(0) };
            else if (e.kind === "notAlive") env = { ...alive(s, { seq: e.seq }), payload: serializeGossipMessage(request(alive(s))) };
            else if (e.kind === "garbage") env = { ...alive(s, { seq: e.seq }), payload: new Uint8Array([0xff, 0xff, 0xff]) };
            else if (e.kind === "us") env = alive(r.crypto, { claim: t.crypto, inc: 1n << 63n, endpoint: "evil:1" });
            else env = alive(r.crypto, { claim: n.crypto, inc: 1n << 63n, endpoint: "evil:1" });
            (e.dead ? dead : alive_).push(env);
          }
          // Entries Fabric takes: valid ones up to the first malformed entry of each list (which aborts the rest).
          const aborts = (k: string) => k === "notAlive" || k === "garbage";
          const aliveEs = entries.filter((e) => !e.dead);
          const deadEs = entries.filter((e) => e.dead);
          const cut = (es: typeof entries) => {
            const i = es.findIndex((e) => aborts(e.kind));
            return i < 0 ? es : es.slice(0, i);
          };
          const aliveAborted = aliveEs.some((e) => aborts(e.kind));
          for (const e of [...cut(aliveEs), ...(aliveAborted ? [] : cut(deadEs))]) {
            const h = pkiIdHex((strangers[e.who] as FakeCrypto).pkiId);
            if (e.kind === "valid") valid.add(h);
            // Signed by its member but without identity: verifiable if an earlier entry carried the identity (even a forged one, as Fabric).
            if (e.kind === "noIdentity") maybe.add(h);
          }
          await send(response(alive_, dead));
          const refused = t.membership.stats().refused;
          for (const key of Object.keys(refused)) assert.ok(!key.endsWith(`/${ErrorCode.Internal}`), `refused as ${key}`);
          for (const [i, s] of strangers.entries()) {
            const m = t.membership.lookup(s.pkiId);
            const hexS = pkiIdHex(s.pkiId);
            if (m !== undefined) {
              assert.ok(valid.has(hexS) || maybe.has(hexS), `stranger ${i} entered from an entry it did not sign`);
              assert.equal(m.endpoint, `s${i}:1`);
            } else {
              assert.ok(!valid.has(hexS), `stranger ${i}'s valid entry was lost`);
            }
          }
          assert.equal(t.membership.lookup(n.comm.pkiId)?.endpoint, "n:7051");
          assert.equal(t.membership.lookup(n.comm.pkiId)?.state, "alive");
          assert.equal(t.membership.self.endpoint, "t:7051");
          healthy();
        } finally {
          await sim.close();
        }
      }),
      { numRuns: 40 },
    );
  });
});

describe("identity pull digests", () => {
  it("items that cannot be PKI-IDs (longer than a hash) are neither kept for the round nor requested", async () => {
    const { sim, t, r, send, healthy } = await setup(99);
    const hellos = record(r.comm, (rm) => rm.message.content.case === "hello");
    const requests = record(r.comm, (rm) => rm.message.content.case === "dataReq");
    await send(alive(r.crypto, { endpoint: "r:7051", internal: "r:7051" })); // r is an alive member: t pulls from it
    await sim.clock.advanceUntil(() => hellos.got.length > 0, { stepMs: 100, maxMs: 10_000 });
    const hello = hellos.got[0];
    assert.ok(hello !== undefined && hello.message.content.case === "hello");
    const offered = new FakeCrypto("Org1MSP", sim.trust);
    const huge = Array.from({ length: 200 }, (_, i) => new Uint8Array(32 * 1024).fill(i));
    await hello.respond(
      create(GossipMessageSchema, {
        tag: GossipMessage_Tag.EMPTY,
        content: {
          case: "dataDig",
          value: create(DataDigestSchema, {
            nonce: hello.message.content.value.nonce,
            digests: [offered.pkiId, ...huge],
            msgType: PullMsgType.IDENTITY_MSG,
          }),
        },
      }),
    );
    await sim.clock.advanceUntil(() => requests.got.length > 0, { stepMs: 100, maxMs: 2_000 });
    const req = requests.got[0]?.message.content;
    assert.ok(req?.case === "dataReq");
    assert.equal(req.value.digests.length, 1, `${req.value.digests.length} digests requested`);
    assert.equal(pkiIdHex(req.value.digests[0]), pkiIdHex(offered.pkiId), "only the PKI-ID is requested");
    hellos.stop();
    requests.stop();
    healthy();
    assert.equal(t.membership.stats().refused[`identity/${ErrorCode.Internal}`], undefined);
    await sim.close();
  });
});

describe("a flood of distinct forged PKI-IDs", () => {
  it("by gossip, requests and responses grows nothing that outlives it", async () => {
    const { sim, t, r, refused, healthy } = await setup(101, { rawSendBuffer: 10_000 });
    const to = { endpoint: t.endpoint, pkiId: t.comm.pkiId };
    const before = t.membership.stats();
    const ghost = (i: number) => new Uint8Array(32).fill(0).map((_, j) => (j < 4 ? (i >> (8 * j)) & 0xff : 0xee));
    const forgedAbout = (i: number) =>
      signAlive(
        r.crypto,
        aliveMessage({ endpoint: `g${i}:1`, pkiId: ghost(i), metadata: new Uint8Array(0), timestamp: { incNum: 1n, seqNum: 1n } }),
        "g:1",
      );
    for (let round = 0; round < 10; round++) {
      for (let i = 0; i < 300; i++) {
        const k = round * 1000 + i;
        void r.comm.send(forgedAbout(k), to);
        void r.comm.send(request(forgedAbout(k + 300)), to);
      }
      void r.comm.send(response(Array.from({ length: 300 }, (_, i) => forgedAbout(round * 1000 + 600 + i))), to);
      await sim.clock.advance(1000);
    }
    const during = t.membership.stats();
    assert.equal(during.alive, before.alive + 0, "no ghost alive");
    assert.equal(during.dead, before.dead);
    assert.ok(during.identities <= before.identities + 1, "only r's own identity (its connection) may be new");
    assert.ok(during.storedAliveMessages <= during.alive + during.dead, "stored messages are members' only");
    for (const k of [0, 299, 300, 599, 600, 899, 9899]) assert.equal(t.membership.lookup(ghost(k)), undefined);
    assert.equal(refused(`membership_request/${ErrorCode.SenderMismatch}`), 3000);
    assert.ok(refused(`alive/${ErrorCode.UnknownIdentity}`) > 0);
    await sim.clock.advance(60_000); // past the hold of messages awaiting their identity
    const after = t.membership.stats();
    assert.ok(after.storedAliveMessages <= after.alive + after.dead);
    assert.ok(after.identities <= before.identities + 1);
    healthy();
    await sim.close();
  });
});

describe("identity pull items padded by the peer that served them", () => {
  it("are stored and served again without the padding, byte for byte as signed, and no longer once the identity expired", async () => {
    const { sim, t, n, r, send, healthy } = await setup(103);
    const hellos = record(r.comm, (rm) => rm.message.content.case === "hello");
    const requests = record(r.comm, (rm) => rm.message.content.case === "dataReq");
    await send(alive(r.crypto, { endpoint: "r:7051", internal: "r:7051" }));
    await sim.clock.advanceUntil(() => hellos.got.length > 0, { stepMs: 100, maxMs: 10_000 });
    const hello = hellos.got[0];
    assert.ok(hello !== undefined && hello.message.content.case === "hello");
    const nonce = hello.message.content.value.nonce;
    const s = new FakeCrypto("Org1MSP", sim.trust);
    // t's mapper forgets s's identity when it expires (1 minute from now), and its pull item with it.
    sim.trust.expiry.set(pkiIdHex(s.pkiId), sim.wall() + 60_000);
    const pull = (content: GossipMessage["content"]) => create(GossipMessageSchema, { tag: GossipMessage_Tag.EMPTY, content });
    await hello.respond(
      pull({ case: "dataDig", value: create(DataDigestSchema, { nonce, digests: [s.pkiId], msgType: PullMsgType.IDENTITY_MSG }) }),
    );
    await sim.clock.advanceUntil(() => requests.got.length > 0, { stepMs: 100, maxMs: 2_000 });
    const req = requests.got[0];
    assert.ok(req !== undefined);
    const payload = serializeGossipMessage(
      pull({ case: "peerIdentity", value: create(PeerIdentitySchema, { pkiId: s.pkiId, cert: s.identity }) }),
    );
    const clean = encodeEnvelope({ payload, signature: s.sign(payload) });
    const padded = new Uint8Array(clean.length + 4 + 65536);
    padded.set(clean);
    padded.set([0x7a, 0x80, 0x80, 0x04], clean.length); // an unknown field of 64 KiB
    await req.respond(
      pull({
        case: "dataUpdate",
        value: create(DataUpdateSchema, { nonce, data: [decodeEnvelope(padded)], msgType: PullMsgType.IDENTITY_MSG }),
      }),
    );
    await sim.clock.advance(100);
    // r asks t for s's identity in turn.
    const digests = record(r.comm, (rm) => rm.message.content.case === "dataDig");
    const updates = record(r.comm, (rm) => rm.message.content.case === "dataUpdate");
    const to = { endpoint: t.endpoint, pkiId: t.comm.pkiId };
    // t's pull round is over, and t pulled n's identity from n (its mapper shares n's from their connection).
    await sim.clock.advance(8_000);
    await r.comm.send(pull({ case: "hello", value: create(GossipHelloSchema, { nonce: 4242n, msgType: PullMsgType.IDENTITY_MSG }) }), to);
    await sim.clock.advanceUntil(() => digests.got.length > 0, { stepMs: 50, maxMs: 1_000 });
    const dig = digests.got[0]?.message.content;
    assert.ok(dig?.case === "dataDig");
    assert.ok(
      dig.value.digests.some((d) => pkiIdHex(d) === pkiIdHex(s.pkiId)),
      "t holds s's identity for the pull",
    );
    assert.ok(
      dig.value.digests.some((d) => pkiIdHex(d) === pkiIdHex(n.comm.pkiId)),
      "t holds n's identity for the pull",
    );
    await r.comm.send(
      pull({
        case: "dataReq",
        value: create(DataRequestSchema, { nonce: 4242n, digests: [s.pkiId, n.comm.pkiId], msgType: PullMsgType.IDENTITY_MSG }),
      }),
      to,
    );
    await sim.clock.advanceUntil(() => updates.got.length > 0, { stepMs: 50, maxMs: 1_000 });
    const up = updates.got[0]?.message.content;
    assert.ok(up?.case === "dataUpdate");
    const served = up.value.data[0];
    assert.ok(served !== undefined);
    // Kept without the identity (the mapper holds it), put back when served: the bytes s signed.
    assert.deepEqual(encodeEnvelope(served), clean, "served as s signed it, without the padding");
    const servedN = up.value.data[1];
    assert.ok(servedN !== undefined);
    const item = parseGossipMessage(servedN.payload).content;
    assert.ok(item.case === "peerIdentity");
    assert.deepEqual(item.value.cert, n.crypto.identity, "n's identity, as its connection brought it to t's mapper");
    assert.doesNotThrow(() => n.crypto.verify(n.crypto.identity, servedN.signature, servedN.payload), "as n signed it");
    // s's identity expires: t's mapper forgets it, and its pull no longer offers it; n's stays.
    await sim.clock.advance(60_000);
    await r.comm.send(pull({ case: "hello", value: create(GossipHelloSchema, { nonce: 4243n, msgType: PullMsgType.IDENTITY_MSG }) }), to);
    await sim.clock.advanceUntil(() => digests.got.length > 1, { stepMs: 50, maxMs: 1_000 });
    const later = digests.got[1]?.message.content;
    assert.ok(later?.case === "dataDig");
    const offered = later.value.digests.map((d) => pkiIdHex(d));
    assert.ok(!offered.includes(pkiIdHex(s.pkiId)), "s's expired identity is no longer held for the pull");
    assert.ok(offered.includes(pkiIdHex(n.comm.pkiId)));
    for (const rec of [hellos, requests, digests, updates]) rec.stop();
    healthy();
    await sim.close();
  });
});

describe("membership logs under a member that changes its endpoint with every message", () => {
  it("logs its updates at most once per 10 s with the count left out, and still emits every update", async () => {
    const lines: { msg: string; suppressed?: number }[] = [];
    const logger: Logger = {
      debug: () => {},
      info: (o, msg) => void lines.push({ msg, suppressed: (o as { suppressed?: number }).suppressed }),
      warn: () => {},
      error: () => {},
      child: () => logger,
    };
    const sim = new Sim(71);
    const t = sim.add("t", { logger });
    const r = sim.add("r", { raw: true });
    await sim.clock.advance(100);
    const events: string[] = [];
    void (async () => {
      for await (const e of t.membership.events) if (e.member.pkiIdHex === pkiIdHex(r.comm.pkiId)) events.push(e.type);
    })();
    const to = { endpoint: t.endpoint, pkiId: t.comm.pkiId };
    // 60 alive messages over 6 virtual seconds, each with another endpoint.
    for (let i = 1; i <= 60; i++) {
      await r.comm.send(alive(r.crypto, { seq: BigInt(i), endpoint: `r${i}:7051` }), to);
      await sim.clock.advance(100);
    }
    assert.equal(events.filter((e) => e === "joined").length, 1);
    assert.equal(events.filter((e) => e === "updated").length, 59, "every update is an event");
    const updated = lines.filter((l) => l.msg.startsWith("Member updated"));
    assert.equal(updated.length, 1, `${updated.length} update lines within 10 s`);
    assert.equal(lines.filter((l) => l.msg.startsWith("Member joined")).length, 1);
    // 10 s after the first, the next update is logged with the number left out.
    await sim.clock.advance(5000);
    await r.comm.send(alive(r.crypto, { seq: 61n, endpoint: "r61:7051" }), to);
    await sim.clock.advance(100);
    const after = lines.filter((l) => l.msg.startsWith("Member updated"));
    assert.equal(after.length, 2);
    assert.equal(after[1]?.suppressed, 58);
    await sim.close();
  });
});

describe("alive messages over maxAliveMessageBytes", () => {
  it("are refused as MessageTooLarge by gossip, request and response entry; one just under the limit is taken", async () => {
    const { sim, t, n, r, send, refused, healthy } = await setup(73);
    const rHex = pkiIdHex(r.comm.pkiId);
    const inView = () => t.membership.alive().some((m) => m.pkiIdHex === rHex);
    const huge = new Uint8Array(70 * 1024);
    await send(alive(r.crypto, { seq: 1n, endpoint: "r:7051", metadata: huge }));
    assert.equal(refused(`alive/${ErrorCode.MessageTooLarge}`), 1);
    assert.equal(inView(), false);
    await send(request(alive(r.crypto, { seq: 2n, endpoint: "r:7051", metadata: huge })));
    assert.equal(refused(`membership_request/${ErrorCode.MessageTooLarge}`), 1);
    assert.equal(inView(), false);
    // In a response the large entry is skipped; the entry after it is still taken.
    const other = new FakeCrypto("Org1MSP");
    await send(response([alive(r.crypto, { seq: 3n, endpoint: "r:7051", metadata: huge }), alive(other, { seq: 1n, endpoint: "o:7051" })]));
    assert.equal(refused(`membership_response/${ErrorCode.MessageTooLarge}`), 1);
    assert.equal(inView(), false);
    assert.ok(
      t.membership.alive().some((m) => m.pkiIdHex === pkiIdHex(other.pkiId)),
      "the valid entry after it",
    );
    // 40 KiB of metadata (under 64 KiB with everything else) is an ordinary alive message.
    await send(alive(r.crypto, { seq: 4n, endpoint: "r:7051", metadata: new Uint8Array(40 * 1024) }));
    assert.equal(inView(), true);
    assert.equal(n.membership.alive().length >= 1, true);
    healthy();
    await sim.close();
  });

  it("our own metadata must leave room in an alive message", () => {
    const sim = new Sim(74);
    assert.throws(() => sim.add("m", { options: { metadata: new Uint8Array(60 * 1024) } }), TypeError);
  });
});
