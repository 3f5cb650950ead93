// Bad identity pull input (Hello, DataRequest, DataUpdate): refused with a
// typed ErrorCode and counted, bounded in CPU and memory, never learned.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { create } from "@bufbuild/protobuf";
import { serializeGossipMessage } from "../../src/core/envelope.js";
import { ErrorCode } from "../../src/core/errors.js";
import { pkiIdHex } from "../../src/core/identity.js";
import { X509CryptoService } from "../../src/core/x509-crypto.js";
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
import { createCa, createPeerMaterial, issueCertificate } from "../../src/pki/certificates.js";
import { FakeCrypto } from "../helpers/fake-crypto.js";
import { alive, countingVerify, setup } from "./bad-input-kit.js";
import { record, Sim } from "./sim.js";

describe("identity pull refuses bad input", () => {
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

  it("identity pull: a PeerIdentity item whose secret envelope does not verify is refused (Fabric verifies it), never stored nor served", async () => {
    const { sim, t, send, refused, healthy } = await setup(33);
    const s1 = new FakeCrypto("Org1MSP", sim.trust);
    const payload = serializeGossipMessage(
      create(GossipMessageSchema, {
        tag: GossipMessage_Tag.EMPTY,
        content: { case: "peerIdentity", value: create(PeerIdentitySchema, { pkiId: s1.pkiId, cert: s1.identity }) },
      }),
    );
    const poisoned: Envelope = {
      $typeName: "gossip.Envelope",
      payload,
      signature: s1.sign(payload),
      secretEnvelope: create(SecretEnvelopeSchema, { payload: new Uint8Array([1, 2, 3]), signature: new Uint8Array([4, 5, 6]) }),
    };
    await send(
      create(GossipMessageSchema, {
        tag: GossipMessage_Tag.EMPTY,
        content: {
          case: "dataUpdate",
          value: create(DataUpdateSchema, { nonce: 9n, data: [poisoned], msgType: PullMsgType.IDENTITY_MSG }),
        },
      }),
    );
    assert.equal(refused(`identity/${ErrorCode.BadSignature}`), 1);
    assert.equal(t.membership.stats().identities, 3, "ours, n's and r's (connections) only");
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

  it("identity pull: a peer we asked answers once, with no more items than we requested; further updates on that nonce cost its budget", async () => {
    const counting = countingVerify(new FakeCrypto("Org1MSP"));
    const { sim, r, send, refused, healthy } = await setup(34, { targetCrypto: counting.crypto, verifications: 10 });
    const hellos = record(r.comm, (rm) => rm.message.content.case === "hello");
    const requests = record(r.comm, (rm) => rm.message.content.case === "dataReq");
    await send(alive(r.crypto, { endpoint: "r:7051", internal: "r:7051" })); // r is an alive member: t pulls from it
    await sim.clock.advanceUntil(() => hellos.got.length > 0, { stepMs: 100, maxMs: 10_000 });
    const hello = hellos.got[0];
    assert.ok(hello !== undefined && hello.message.content.case === "hello");
    const nonce = hello.message.content.value.nonce;
    const offered = new FakeCrypto("Org1MSP", sim.trust);
    await hello.respond(
      create(GossipMessageSchema, {
        tag: GossipMessage_Tag.EMPTY,
        content: {
          case: "dataDig",
          value: create(DataDigestSchema, { nonce, digests: [offered.pkiId], msgType: PullMsgType.IDENTITY_MSG }),
        },
      }),
    );
    await sim.clock.advanceUntil(() => requests.got.length > 0, { stepMs: 100, maxMs: 2_000 });
    const strangers = Array.from({ length: 50 }, () => new FakeCrypto("Org1MSP", sim.trust));
    const data = strangers.map((c): Envelope => {
      const payload = serializeGossipMessage(
        create(GossipMessageSchema, {
          tag: GossipMessage_Tag.EMPTY,
          content: { case: "peerIdentity", value: create(PeerIdentitySchema, { pkiId: c.pkiId, cert: c.identity }) },
        }),
      );
      return { $typeName: "gossip.Envelope", payload, signature: c.sign(payload), secretEnvelope: undefined };
    });
    const update = create(GossipMessageSchema, {
      tag: GossipMessage_Tag.EMPTY,
      content: { case: "dataUpdate", value: create(DataUpdateSchema, { nonce, data, msgType: PullMsgType.IDENTITY_MSG }) },
    });
    const before = counting.count();
    for (let i = 0; i < 3; i++) await send(update);
    assert.equal(counting.count(), before, "50 items where 1 was requested: not verified on the round's account");
    assert.equal(refused(`identity/${ErrorCode.RateLimited}`), 3);
    hellos.stop();
    requests.stop();
    healthy();
    await sim.close();
  });

  it("identity pull: a Hello flood from one peer is limited by its budget and does not keep others' Hellos unanswered", async () => {
    const { sim, t, r, refused, healthy } = await setup(36, { rawSendBuffer: 10_000 });
    const r2 = sim.add("r2", { raw: true });
    const to = { endpoint: t.endpoint, pkiId: t.comm.pkiId };
    const hello = (nonce: bigint) =>
      create(GossipMessageSchema, {
        tag: GossipMessage_Tag.EMPTY,
        content: { case: "hello", value: create(GossipHelloSchema, { nonce, msgType: PullMsgType.IDENTITY_MSG }) },
      });
    for (let i = 1; i <= 5000; i++) void r.comm.send(hello(BigInt(i)), to);
    await sim.clock.advance(200);
    const digests = record(r2.comm, (rm) => rm.message.content.case === "dataDig");
    await r2.comm.send(hello(99_999n), to);
    await sim.clock.advance(200);
    assert.equal(digests.got.length, 1, "r2's Hello is answered");
    assert.ok(refused(`identity/${ErrorCode.RateLimited}`) > 4000);
    digests.stop();
    healthy();
    await sim.close();
  });

  it("identity pull: DataRequests on a remembered Hello nonce cost the sender's budget (no unbounded answers to one Hello)", async () => {
    const { sim, t, r, refused, healthy } = await setup(38, { verifications: 10, rawSendBuffer: 10_000 });
    const to = { endpoint: t.endpoint, pkiId: t.comm.pkiId };
    const updates = record(r.comm, (rm) => rm.message.content.case === "dataUpdate");
    const pull = (content: GossipMessage["content"]) => create(GossipMessageSchema, { tag: GossipMessage_Tag.EMPTY, content });
    await r.comm.send(pull({ case: "hello", value: create(GossipHelloSchema, { nonce: 7n, msgType: PullMsgType.IDENTITY_MSG }) }), to);
    await sim.clock.advance(50);
    const req = pull({
      case: "dataReq",
      value: create(DataRequestSchema, { nonce: 7n, digests: [t.comm.pkiId], msgType: PullMsgType.IDENTITY_MSG }),
    });
    for (let i = 0; i < 100; i++) void r.comm.send(req, to);
    await sim.clock.advance(200);
    assert.ok(updates.got.length > 0 && updates.got.length <= 20, `${updates.got.length} updates for 100 requests`);
    assert.ok(refused(`identity/${ErrorCode.RateLimited}`) >= 80);
    updates.stop();
    healthy();
    await sim.close();
  });
});

describe("identity pull with X.509 identities (verifiers kept by the mapper)", () => {
  const ca = createCa({ commonName: "ca.org1", organization: "Org1MSP" });
  const x509 = (validity?: { notBefore: Date; notAfter: Date }) => {
    const key = validity
      ? issueCertificate(ca, { commonName: `p-${Math.random()}`, organization: "Org1MSP", ...validity })
      : createPeerMaterial({ mspId: "Org1MSP", ca }).identity;
    return new X509CryptoService({
      mspId: "Org1MSP",
      certificate: key.certPem,
      privateKey: key.keyPem,
      trustedRoots: { Org1MSP: [ca.certPem] },
    });
  };
  const item = (c: X509CryptoService): Envelope => {
    const payload = serializeGossipMessage(
      create(GossipMessageSchema, {
        tag: GossipMessage_Tag.EMPTY,
        content: { case: "peerIdentity", value: create(PeerIdentitySchema, { pkiId: c.pkiId, cert: c.identity }) },
      }),
    );
    return { $typeName: "gossip.Envelope", payload, signature: c.sign(payload), secretEnvelope: undefined };
  };
  const update = (nonce: bigint, data: Envelope[]) =>
    create(GossipMessageSchema, {
      tag: GossipMessage_Tag.EMPTY,
      content: { case: "dataUpdate", value: create(DataUpdateSchema, { nonce, data, msgType: PullMsgType.IDENTITY_MSG }) },
    });

  it("a held identity's item is checked with the mapper's verifier, a new one is validated once and kept with its verifier, an expired one is refused", async () => {
    const sim = new Sim(35);
    const tCrypto = x509();
    const t = sim.add("t", { crypto: tCrypto });
    const n = sim.add("n", { crypto: x509(), bootstrap: ["t:7051"] });
    const r = sim.add("r", { crypto: x509(), raw: true });
    await sim.converge(() => 1, 10_000, 100);
    const calls = { validate: 0, verifierOf: 0 };
    const validate = tCrypto.validateIdentity.bind(tCrypto);
    const verifierOf = tCrypto.verifierOf.bind(tCrypto);
    tCrypto.validateIdentity = (identity) => {
      calls.validate++;
      validate(identity);
    };
    tCrypto.verifierOf = (identity) => {
      calls.verifierOf++;
      return verifierOf(identity);
    };
    const send = async (m: GossipMessage) => {
      await r.comm.send(m, { endpoint: t.endpoint, pkiId: t.comm.pkiId });
      await sim.clock.advance(50);
    };
    const refused = (key: string) => t.membership.stats().refused[key] ?? 0;
    const lent = (t.comm as unknown as { ctx: { userIdentities: { verifierOf(hex: string, id: Uint8Array): unknown } } }).ctx
      .userIdentities;

    // n's identity: held since n connected. The first update also brings r's connection (its handshake
    // validates r's identity and the mapper keeps its verifier): counted from the second on.
    await send(update(1n, [item(n.crypto as X509CryptoService)]));
    assert.deepEqual(calls, { validate: 1, verifierOf: 1 }, "r's handshake and the mapper taking r's identity");
    calls.validate = 0;
    calls.verifierOf = 0;
    await send(update(4n, [item(n.crypto as X509CryptoService)]));
    assert.deepEqual(calls, { validate: 0, verifierOf: 0 }, "held: checked with the kept verifier only");
    assert.equal(refused(`identity/${ErrorCode.BadSignature}`), 0);

    const s = x509();
    const before = t.membership.stats().identities;
    await send(update(2n, [item(s)]));
    assert.equal(calls.verifierOf, 1, "new: validated once, its verifier made then");
    assert.equal(calls.validate, 0);
    assert.equal(t.membership.stats().identities, before + 1, "learned");
    assert.ok(lent.verifierOf(pkiIdHex(s.pkiId), s.identity) !== undefined, "kept with its verifier");

    const old = x509({ notBefore: new Date(Date.now() - 10 * 86_400_000), notAfter: new Date(Date.now() - 86_400_000) });
    await send(update(3n, [item(old)]));
    assert.equal(refused(`identity/${ErrorCode.InvalidIdentity}`), 1, "a good signature, an expired certificate");
    assert.equal(t.membership.stats().identities, before + 1);
    await sim.close();
  });
});
