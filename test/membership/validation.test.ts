// TestValidation, TestExpirationNoSecretEnvelope, TestIdentityExpiration and
// TestBadInput of Fabric's suites: what is verified when, and what expires.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { create } from "@bufbuild/protobuf";
import { pkiIdHex } from "../../src/core/identity.js";
import type { Logger } from "../../src/core/logger.js";
import {
  type Envelope,
  GossipMessage_Tag,
  GossipMessageSchema,
  MembershipRequestSchema,
  MembershipResponseSchema,
} from "../../src/gen/gossip/message_pb.js";
import { aliveMessage, signAlive } from "../../src/membership/alive-message.js";
import { FakeCrypto } from "../helpers/fake-crypto.js";
import { dataMessage } from "../helpers/peers.js";
import { countingVerify } from "./bad-input-kit.js";
import { Sim } from "./sim.js";

function alive(c: FakeCrypto, seq: bigint, o: { endpoint?: string; internal?: string } = {}): Envelope {
  const m = aliveMessage({
    endpoint: o.endpoint ?? "",
    pkiId: c.pkiId,
    metadata: new Uint8Array(0),
    timestamp: { incNum: 10n, seqNum: seq },
    identity: c.identity,
  });
  return signAlive(c, m, o.internal ?? "");
}

describe("validation (TestValidation)", () => {
  it("gossiped alive messages are verified once; a request's self information every time; response entries once", async () => {
    const sim = new Sim(51);
    const counting = countingVerify(new FakeCrypto("Org1MSP", sim.trust));
    const t = sim.add("t", { crypto: counting.crypto });
    const r = sim.add("r", { raw: true });
    const to = { endpoint: t.endpoint, pkiId: t.comm.pkiId };
    const delta = async (fn: () => Promise<void>) => {
      const before = counting.count();
      await fn();
      await sim.clock.advance(50);
      return counting.count() - before;
    };
    const a = alive(r.crypto as FakeCrypto, 1n, {
      endpoint: "r:7051",
      internal: "r:7051",
    });
    assert.equal(await delta(() => r.comm.send(a, to)), 3, "the connection's handshake, then payload and secret envelope");
    assert.equal(await delta(() => r.comm.send(a, to)), 0, "a replay is refused before any verification");
    const req = create(GossipMessageSchema, {
      tag: GossipMessage_Tag.EMPTY,
      content: {
        case: "memReq",
        value: create(MembershipRequestSchema, {
          selfInformation: alive(r.crypto as FakeCrypto, 2n, {
            endpoint: "r:7051",
            internal: "r:7051",
          }),
        }),
      },
    });
    assert.equal(await delta(() => r.comm.send(req, to)), 2);
    assert.equal(await delta(() => r.comm.send(req, to)), 2, "a request's self information is verified on every replay");
    const strangers = [1, 2, 3].map(() => new FakeCrypto("Org1MSP", sim.trust));
    const res = create(GossipMessageSchema, {
      tag: GossipMessage_Tag.EMPTY,
      content: {
        case: "memRes",
        value: create(MembershipResponseSchema, {
          alive: strangers.map((s) => alive(s, 1n, { endpoint: "s:1" })),
        }),
      },
    });
    assert.equal(await delta(() => r.comm.send(res, to)), 3);
    assert.equal(await delta(() => r.comm.send(res, to)), 0, "entries already held are not verified again");
    await sim.close();
  });
});

describe("expiration", () => {
  it("TestExpirationNoSecretEnvelope: a member learned without a secret envelope is removed after the msgStore TTL", async () => {
    const sim = new Sim(52);
    const lines: string[] = [];
    const logger: Logger = {
      debug() {},
      info: (_o, m) => void lines.push(m),
      warn() {},
      error() {},
      child: () => logger,
    };
    const t = sim.add("t", { logger });
    const r = sim.add("r", { raw: true });
    await r.comm.send(alive(r.crypto as FakeCrypto, 1n, { endpoint: "foo:1" }), { endpoint: t.endpoint, pkiId: t.comm.pkiId });
    await sim.clock.advance(100);
    assert.equal(t.membership.lookup(r.comm.pkiId)?.internalEndpoint, "");
    await sim.clock.advance(500_000 + 10_000);
    assert.equal(t.membership.lookup(r.comm.pkiId), undefined);
    assert.ok(lines.includes(`Removing member: Endpoint: foo:1, InternalEndpoint: , PKIID: ${pkiIdHex(r.comm.pkiId)}`));
    await sim.close();
  });

  it("TestIdentityExpiration: a peer whose certificate expired drops out of everyone's view", async () => {
    const sim = new Sim(53);
    const victimCrypto = new FakeCrypto("Org1MSP", sim.trust, undefined, sim.wall);
    sim.trust.expiry.set(pkiIdHex(victimCrypto.pkiId), sim.wall() + 40_000);
    for (let i = 0; i < 4; i++)
      sim.add(`p${i}`, {
        bootstrap: i === 0 ? [] : ["p0:7051"],
        crypto: i === 3 ? victimCrypto : undefined,
      });
    await sim.converge(() => 3, 30_000);
    const victim = sim.peers[3];
    assert.ok(victim);
    await sim.clock.advanceUntil(
      () =>
        sim.peers.slice(0, 3).every((p) => p.membership.alive().length === 2 && p.membership.lookup(victim.comm.pkiId)?.state !== "alive"),
      { maxMs: 60_000, stepMs: 500 },
    );
    await sim.close();
  });
});

describe("TestBadInput", () => {
  it("a message membership does not handle (a DataMsg) is left to others and changes nothing", async () => {
    const sim = new Sim(54);
    const t = sim.add("t");
    const r = sim.add("r", { raw: true });
    const sub = t.comm.accept((rm) => rm.message.content.case === "dataMsg");
    const got: unknown[] = [];
    void (async () => {
      for await (const m of sub) got.push(m);
    })();
    const msg = dataMessage(1);
    msg.tag = GossipMessage_Tag.CHAN_AND_ORG;
    await r.comm.send(msg, { endpoint: t.endpoint, pkiId: t.comm.pkiId });
    await sim.clock.advance(100);
    assert.equal(got.length, 1);
    assert.deepEqual(t.membership.stats().refused, {});
    assert.equal(t.membership.alive().length, 0);
    sub.close();
    await sim.close();
  });
});
