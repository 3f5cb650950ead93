// Bad input never pollutes the view: each is refused with a typed ErrorCode,
// counted, and the peer stays healthy (it keeps its honest members).
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { create } from "@bufbuild/protobuf";
import type { CryptoService } from "../../src/core/crypto.js";
import { ErrorCode } from "../../src/core/errors.js";
import { pkiIdHex } from "../../src/core/identity.js";
import {
  DataUpdateSchema,
  type Envelope,
  GossipMessage_Tag,
  GossipMessageSchema,
  MembershipRequestSchema,
  MembershipResponseSchema,
  PeerIdentitySchema,
  PullMsgType,
} from "../../src/gen/gossip/message_pb.js";
import { serializeGossipMessage } from "../../src/core/envelope.js";
import { aliveMessage, signAlive } from "../../src/membership/alive-message.js";
import { FakeCrypto } from "../helpers/fake-crypto.js";
import { countingDialer, record, Sim, type SimPeer } from "./sim.js";

interface AliveOpts {
  seq?: bigint;
  inc?: bigint;
  endpoint?: string;
  internal?: string;
  identity?: boolean;
  tag?: GossipMessage_Tag;
  /** Claim this identity's PKI-ID (and carry it), but sign with `crypto`. */
  claim?: CryptoService;
}

function alive(crypto: CryptoService, o: AliveOpts = {}): Envelope {
  const who = o.claim ?? crypto;
  const msg = aliveMessage({
    endpoint: o.endpoint ?? "",
    pkiId: who.pkiIdOf(who.identity),
    metadata: new Uint8Array(0),
    timestamp: { incNum: o.inc ?? 1_000n, seqNum: o.seq ?? 1n },
    identity: o.identity === false ? undefined : who.identity,
  });
  if (o.tag !== undefined) msg.tag = o.tag;
  return signAlive(crypto, msg, o.internal ?? "");
}

function request(self: Envelope, nonce = 0n) {
  return create(GossipMessageSchema, {
    tag: GossipMessage_Tag.EMPTY,
    nonce,
    content: {
      case: "memReq",
      value: create(MembershipRequestSchema, { selfInformation: self }),
    },
  });
}

function response(alive: Envelope[], dead: Envelope[] = [], nonce = 0n) {
  return create(GossipMessageSchema, {
    tag: GossipMessage_Tag.EMPTY,
    nonce,
    content: {
      case: "memRes",
      value: create(MembershipResponseSchema, { alive, dead }),
    },
  });
}

/** Counts signature verifications of `crypto`. */
function countingVerify(crypto: FakeCrypto): {
  crypto: FakeCrypto;
  count: () => number;
} {
  let n = 0;
  const c = Object.assign(Object.create(crypto) as FakeCrypto, {
    verify: (i: Uint8Array, s: Uint8Array, d: Uint8Array) => {
      n++;
      crypto.verify(i, s, d);
    },
  });
  return { crypto: c, count: () => n };
}

/** A target peer `t`, an honest peer `n` that joined it, and a raw (membership-less) attacker `r`. */
async function setup(
  seed: number,
  o: {
    targetCrypto?: CryptoService;
    verifications?: number;
    rawSendBuffer?: number;
  } = {},
) {
  const sim = new Sim(seed);
  const t = sim.add("t", {
    crypto: o.targetCrypto,
    options: { maxVerificationsPerPeerPerSecond: o.verifications },
  });
  const n = sim.add("n", { bootstrap: ["t:7051"] });
  const r = sim.add("r", {
    raw: true,
    comm: o.rawSendBuffer ? { sendBuffSize: o.rawSendBuffer } : undefined,
  });
  await sim.converge(() => 1, 10_000, 100);
  const to = { endpoint: t.endpoint, pkiId: t.comm.pkiId };
  const send = async (m: Parameters<SimPeer["comm"]["send"]>[0]) => {
    await r.comm.send(m, to);
    await sim.clock.advance(50);
  };
  const refused = (key: string) => t.membership.stats().refused[key] ?? 0;
  const healthy = () => {
    const alive = t.membership.alive().map((m) => m.pkiIdHex);
    assert.ok(alive.includes(pkiIdHex(n.comm.pkiId)), "the honest member is still alive");
  };
  return { sim, t, n, r, send, refused, healthy };
}

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

  it("a replayed or older alive message (StaleMessage), before any signature check", async () => {
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
    await send(alive(r.crypto, { seq: 99n, inc: 999n, endpoint: "r:7051" }));
    assert.equal(refused(`alive/${ErrorCode.StaleMessage}`), 3);
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

  it("identity pull: a DataUpdate with a badly signed or mismatched PeerIdentity is dropped whole", async () => {
    const { sim, t, send, refused, healthy } = await setup(31);
    const s1 = new FakeCrypto("Org1MSP", sim.trust);
    const s2 = new FakeCrypto("Org1MSP", sim.trust);
    const idMsg = (pkiId: Uint8Array, cert: Uint8Array) =>
      create(GossipMessageSchema, {
        tag: GossipMessage_Tag.EMPTY,
        content: {
          case: "peerIdentity",
          value: create(PeerIdentitySchema, { pkiId, cert }),
        },
      });
    const signedBy = (c: FakeCrypto, m: ReturnType<typeof idMsg>): Envelope => {
      const payload = serializeGossipMessage(m);
      return {
        $typeName: "gossip.Envelope",
        payload,
        signature: c.sign(payload),
        secretEnvelope: undefined,
      };
    };
    const good = (c: FakeCrypto) => signedBy(c, idMsg(c.pkiId, c.identity));
    const badSig: Envelope = {
      ...good(s1),
      signature: s2.sign(good(s1).payload),
    };
    const mismatch = signedBy(s1, idMsg(s2.pkiId, s1.identity));
    const update = (data: Envelope[]) =>
      create(GossipMessageSchema, {
        tag: GossipMessage_Tag.EMPTY,
        content: {
          case: "dataUpdate",
          value: create(DataUpdateSchema, {
            nonce: 1n,
            data,
            msgType: PullMsgType.IDENTITY_MSG,
          }),
        },
      });
    await send(update([good(s2), badSig]));
    await send(update([mismatch]));
    assert.equal(refused(`identity/${ErrorCode.BadSignature}`), 1);
    assert.equal(refused(`identity/${ErrorCode.PkiIdMismatch}`), 1);
    // Neither identity was learned: their alive messages without identity stay unverifiable.
    await send(alive(s2, { identity: false, endpoint: "s2:1" }));
    assert.equal(refused(`alive/${ErrorCode.UnknownIdentity}`), 1);
    // A good update teaches the identity, even unsolicited (Fabric); then the alive message verifies.
    await send(update([good(s2)]));
    await send(alive(s2, { identity: false, endpoint: "s2:1", seq: 2n }));
    assert.notEqual(t.membership.lookup(s2.pkiId), undefined, "learned (then dead: nobody listens at s2:1)");
    healthy();
    await sim.close();
  });
  it("an unsolicited identity update larger than the sender's verification budget is refused unverified (RateLimited)", async () => {
    const counting = countingVerify(new FakeCrypto("Org1MSP"));
    const { sim, send, refused, healthy } = await setup(32, { targetCrypto: counting.crypto, verifications: 10 });
    const strangers = Array.from({ length: 50 }, () => new FakeCrypto("Org1MSP", sim.trust));
    const data = strangers.map((c): Envelope => {
      const m = create(GossipMessageSchema, {
        tag: GossipMessage_Tag.EMPTY,
        content: { case: "peerIdentity", value: create(PeerIdentitySchema, { pkiId: c.pkiId, cert: c.identity }) },
      });
      const payload = serializeGossipMessage(m);
      return { $typeName: "gossip.Envelope", payload, signature: c.sign(payload), secretEnvelope: undefined };
    });
    const update = (items: Envelope[]) =>
      create(GossipMessageSchema, {
        tag: GossipMessage_Tag.EMPTY,
        content: { case: "dataUpdate", value: create(DataUpdateSchema, { nonce: 5n, data: items, msgType: PullMsgType.IDENTITY_MSG }) },
      });
    await send(update([])); // connects (the handshake verifies a signature)
    const before = counting.count();
    await send(update(data));
    assert.equal(refused(`identity/${ErrorCode.RateLimited}`), 1);
    assert.equal(counting.count(), before, "nothing verified");
    healthy();
    await sim.close();
  });
});
