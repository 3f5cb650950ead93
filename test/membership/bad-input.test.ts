// Bad input never pollutes the view: each is refused with a typed ErrorCode,
// counted, and the peer stays healthy (it keeps its honest members).
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { ErrorCode } from "../../src/core/errors.js";
import { pkiIdHex } from "../../src/core/identity.js";
import { type Envelope, GossipMessage_Tag } from "../../src/gen/gossip/message_pb.js";
import { aliveMessage, signAlive } from "../../src/membership/alive-message.js";
import { noopMembershipMetrics } from "../../src/membership/metrics.js";
import { FakeCrypto } from "../helpers/fake-crypto.js";
import { alive, countingVerify, request, response, setup, stallableReads } from "./bad-input-kit.js";
import { countingDialer, record, Sim } from "./sim.js";

describe("membership refuses bad input", () => {
  it("an alive message signed by another identity (BadSignature)", async () => {
    const { sim, t, r, send, refused, healthy } = await setup(21);
    const victim = new FakeCrypto("Org1MSP", sim.trust);
    await send(alive(r.crypto, { claim: victim, endpoint: "v:1" }));
    assert.equal(refused(`alive/${ErrorCode.BadSignature}`), 1);
    assert.equal(t.membership.lookup(victim.pkiId), undefined);
    healthy();
    await sim.close();
  });

  it("TestMembershipRequestSpoofing: a request wrapping another peer's alive message gets no answer (SenderMismatch); the owner's does", async () => {
    const { sim, t, r, send, refused, healthy } = await setup(22);
    const r3 = sim.add("r3", { raw: true });
    const wrapped = request(alive(r3.crypto, { endpoint: "r3:7051", internal: "r3:7051" }), 77n);
    const got2 = record(r.comm, (rm) => rm.message.content.case === "memRes");
    const got3 = record(r3.comm, (rm) => rm.message.content.case === "memRes");
    await send(wrapped);
    await sim.clock.advance(1000);
    assert.equal(got2.got.length, 0);
    assert.equal(refused(`membership_request/${ErrorCode.SenderMismatch}`), 1);
    assert.equal(t.membership.lookup(r3.comm.pkiId), undefined);
    await r3.comm.send(wrapped, { endpoint: t.endpoint, pkiId: t.comm.pkiId });
    await sim.clock.advance(1000);
    assert.equal(got3.got.length, 1);
    assert.equal(got3.got[0]?.message.nonce, 77n);
    assert.equal(t.membership.lookup(r3.comm.pkiId)?.state, "alive");
    got2.stop();
    got3.stop();
    healthy();
    await sim.close();
  });

  it("an older incarnation (a replay) is refused as StaleMessage; an equal or older-seq copy is a duplicate; neither is verified", async () => {
    const counting = countingVerify(new FakeCrypto("Org1MSP"));
    const { sim, t, r, send, refused, healthy } = await setup(23, {
      targetCrypto: counting.crypto,
    });
    counting.crypto.trust.msps.clear();
    await send(alive(r.crypto, { seq: 5n, endpoint: "r:7051" }));
    assert.equal(t.membership.lookup(r.comm.pkiId)?.timestamp.seqNum, 5n);
    const verifications = counting.count();
    await send(alive(r.crypto, { seq: 5n, endpoint: "r:7051" }));
    await send(alive(r.crypto, { seq: 4n, endpoint: "r:7051" }));
    assert.equal(refused(`alive/${ErrorCode.StaleMessage}`), 0, "same incarnation, not newer: duplicates");
    assert.equal(t.membership.stats().duplicates.alive, 2);
    await send(alive(r.crypto, { seq: 99n, inc: 999n, endpoint: "r:7051" }));
    assert.equal(refused(`alive/${ErrorCode.StaleMessage}`), 1, "an older incarnation: a replay");
    assert.equal(t.membership.stats().duplicates.alive, 2);
    assert.equal(counting.count(), verifications, "no signature verified for stale messages");
    assert.equal(t.membership.lookup(r.comm.pkiId)?.timestamp.seqNum, 5n);
    healthy();
    await sim.close();
  });

  it("an alive message claiming our own PKI-ID (OwnPkiId)", async () => {
    const { sim, t, r, send, refused, healthy } = await setup(24);
    await send(alive(r.crypto, { claim: t.crypto, endpoint: "evil:1" }));
    assert.equal(refused(`alive/${ErrorCode.OwnPkiId}`), 1);
    assert.equal(t.membership.self.endpoint, "t:7051");
    healthy();
    await sim.close();
  });

  it("an alive message whose identity we cannot obtain (UnknownIdentity)", async () => {
    const { sim, t, send, refused, healthy } = await setup(25);
    const stranger = new FakeCrypto("Org1MSP", sim.trust);
    await send(alive(stranger, { identity: false, endpoint: "s:1" }));
    assert.equal(refused(`alive/${ErrorCode.UnknownIdentity}`), 1);
    assert.equal(t.membership.lookup(stranger.pkiId), undefined);
    healthy();
    await sim.close();
  });

  it("an alive message with an illegal tag (IllegalTag)", async () => {
    const { sim, t, r, send, refused, healthy } = await setup(26);
    await send(alive(r.crypto, { tag: GossipMessage_Tag.ORG_ONLY, endpoint: "r:7051" }));
    await send(alive(r.crypto, { tag: GossipMessage_Tag.UNDEFINED, endpoint: "r:7051" }));
    assert.equal(refused(`alive/${ErrorCode.IllegalTag}`), 2);
    assert.equal(t.membership.lookup(r.comm.pkiId), undefined);
    healthy();
    await sim.close();
  });

  it("an unsolicited MembershipResponse is processed as Fabric does, but only within the sender's verification budget", async () => {
    const { sim, t, send, refused, healthy } = await setup(27, {
      verifications: 10,
    });
    const strangers = Array.from({ length: 50 }, () => new FakeCrypto("Org1MSP", sim.trust));
    await send(response(strangers.map((s, i) => alive(s, { endpoint: `s${i}:1` }))));
    const learned = strangers.filter((s) => t.membership.lookup(s.pkiId) !== undefined).length;
    assert.equal(learned, 20, "the burst (2 × 10 per second) and no more");
    assert.equal(refused(`membership_response/${ErrorCode.RateLimited}`), 1);
    healthy();
    await sim.close();
  });

  it("a MembershipResponse with 100,000 entries is refused unprocessed (MessageTooLarge)", async () => {
    const { sim, t, r, send, refused, healthy } = await setup(28);
    const one = alive(r.crypto, { endpoint: "r:7051" });
    const junk: Envelope = {
      $typeName: "gossip.Envelope",
      payload: new Uint8Array([1]),
      signature: new Uint8Array([1]),
      secretEnvelope: undefined,
    };
    await send(response([one, ...Array.from({ length: 99_999 }, () => junk)]));
    assert.equal(refused(`membership_response/${ErrorCode.MessageTooLarge}`), 1);
    assert.equal(t.membership.lookup(r.comm.pkiId), undefined, "not even the valid first entry was processed");
    healthy();
    await sim.close();
  });

  it("an alive flood from one peer costs bounded signature checks (RateLimited) and leaves the view sane", async () => {
    const counting = countingVerify(new FakeCrypto("Org1MSP"));
    const { sim, t, r, refused, healthy } = await setup(29, {
      targetCrypto: counting.crypto,
      rawSendBuffer: 10_000,
    });
    const before = counting.count();
    const to = { endpoint: t.endpoint, pkiId: t.comm.pkiId };
    // 5,000 fresh messages (each newer than the last) within one virtual second.
    for (let i = 1; i <= 5000; i++) void r.comm.send(alive(r.crypto, { seq: BigInt(i), endpoint: "r:7051" }), to);
    await sim.clock.advance(1000);
    const spent = counting.count() - before;
    assert.ok(spent <= 2 * 200 + 200 + 50, `verified ${spent} signatures`);
    assert.ok(refused(`alive/${ErrorCode.RateLimited}`) > 4000, `rate-limited ${refused(`alive/${ErrorCode.RateLimited}`)}`);
    assert.equal(t.membership.lookup(r.comm.pkiId)?.state, "alive");
    healthy();
    await sim.close();
  });

  it("an endpoint pointing at a third party makes us dial it at most once per reconnect round", async () => {
    const dials: string[] = [];
    const sim = new Sim(30);
    const t = sim.add("t", { wrapDialer: (d) => countingDialer(d, dials) });
    sim.add("n", { bootstrap: ["t:7051"] });
    const r = sim.add("r", { raw: true });
    await sim.converge(() => 1, 10_000, 100);
    await r.comm.send(alive(r.crypto, { endpoint: "victim:7051", internal: "victim:7051" }), { endpoint: t.endpoint, pkiId: t.comm.pkiId });
    await sim.clock.advance(300_000);
    const toVictim = dials.filter((d) => d.endsWith("victim:7051")).length;
    assert.ok(toVictim <= 300_000 / 25_000 + 3, `${toVictim} dials to the third party in 300 s`);
    assert.equal(t.membership.lookup(r.comm.pkiId)?.state, "dead");
    await sim.close();
  });

  it("a peer that keeps asking and never reads gets a bounded number of answers queued; the rest are dropped (Overflow)", async () => {
    const sim = new Sim(35);
    let sent = 0;
    const metrics = { ...noopMembershipMetrics, sent: (kind: string) => void (kind === "membership_response" && sent++) };
    const t = sim.add("t", { metrics });
    const n = sim.add("n", { bootstrap: ["t:7051"] });
    const stall = stallableReads();
    const r = sim.add("r", { raw: true, comm: { sendBuffSize: 10_000 }, wrapDialer: stall.wrap });
    await sim.converge(() => 1, 10_000, 100);
    const to = { endpoint: t.endpoint, pkiId: t.comm.pkiId };
    await r.comm.send(request(alive(r.crypto, { endpoint: "r:7051", seq: 1n })), to);
    await sim.clock.advance(100);
    stall.on = true;
    const before = sent;
    const asked = 390;
    for (let i = 0; i < asked; i++) void r.comm.send(request(alive(r.crypto, { endpoint: "r:7051", seq: BigInt(i + 2) })), to);
    await sim.clock.advance(500);
    const overflow = t.membership.stats().refused[`membership_request/${ErrorCode.Overflow}`] ?? 0;
    assert.ok(overflow > 0, "answers beyond the bound are dropped");
    assert.equal(sent - before + overflow, asked, "every request is answered or counted");
    assert.ok(t.membership.alive().some((m) => m.pkiIdHex === pkiIdHex(n.comm.pkiId)));
    stall.release();
    await sim.close();
  });

  it("a response entry Fabric's ValidateAliveMsg rejects (unsigned, no PKI-ID) is skipped, not the rest (§3.7, §6.10)", async () => {
    const { sim, t, send, refused, healthy } = await setup(37);
    const s1 = new FakeCrypto("Org1MSP", sim.trust);
    const s2 = new FakeCrypto("Org1MSP", sim.trust);
    const s3 = new FakeCrypto("Org1MSP", sim.trust);
    const unsigned: Envelope = { ...alive(s1, { endpoint: "s1:1" }), signature: new Uint8Array(0) };
    const noPkiId = signAlive(
      s2,
      aliveMessage({
        endpoint: "s2:1",
        pkiId: new Uint8Array(0),
        metadata: new Uint8Array(0),
        timestamp: { incNum: 1n, seqNum: 1n },
        identity: s2.identity,
      }),
      "",
    );
    await send(response([unsigned, noPkiId, alive(s3, { endpoint: "s3:1" })]));
    assert.equal(refused(`membership_response/${ErrorCode.MalformedMessage}`), 2);
    assert.equal(t.membership.lookup(s1.pkiId), undefined);
    assert.equal(t.membership.lookup(s3.pkiId)?.state, "alive", "the entry after them is processed");
    healthy();
    await sim.close();
  });
});
