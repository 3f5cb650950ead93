// Pure parts of the membership layer: no transport, no peers.

import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { create } from "@bufbuild/protobuf";
import fc from "fast-check";
import { Demux } from "../../src/core/demux.js";
import { envelopeBytes } from "../../src/core/envelope.js";
import { ErrorCode, GossipError } from "../../src/core/errors.js";
import { EventStream } from "../../src/core/event-stream.js";
import { bytesEqual, peerPkiHex, pkiIdHex, remotePkiHex } from "../../src/core/identity.js";
import { silentLogger } from "../../src/core/logger.js";
import { VirtualClock } from "../../src/core/virtual-clock.js";
import {
  DataMessageSchema,
  GossipHelloSchema,
  GossipMessage_Tag,
  GossipMessageSchema,
  MembershipRequestSchema,
  PullMsgType,
} from "../../src/gen/gossip/message_pb.js";
import {
  aliveMessage,
  internalEndpointOf,
  parseAlive,
  signAlive,
  validateAlive,
  withoutSecret,
} from "../../src/membership/alive-message.js";
import { AliveStore } from "../../src/membership/alive-store.js";
import { resolveMembershipConfig } from "../../src/membership/config.js";
import { isSelfEndpoint } from "../../src/membership/connector.js";
import { disclosurePolicy } from "../../src/membership/disclosure.js";
import { BatchingEmitter } from "../../src/membership/emitter.js";
import { IdentityMapper } from "../../src/membership/identity-mapper.js";
import { bytesOf, ownedBytes } from "../../src/membership/owned-bytes.js";
import { RateBudget } from "../../src/membership/rate-budget.js";
import { type RouteItem, type RouteTarget, routeAlive } from "../../src/membership/routing.js";
import { Scheduler } from "../../src/membership/scheduler.js";
import { SelfAlive } from "../../src/membership/self-alive.js";
import { cutIdentity, joinIdentity } from "../../src/membership/signed-identity.js";
import { illegalTagReason } from "../../src/membership/tags.js";
import { compareTimestamps, isNewer, newIncNum, packTimestamp, timestampString, unpackTimestamp } from "../../src/membership/timestamp.js";
import { MemberPeer, pkiIdOf, preferredEndpoint, View } from "../../src/membership/view.js";
import { FakeCrypto, FakeTrust } from "../helpers/fake-crypto.js";
import { seededRandom } from "./sim.js";

const ts = (incNum: bigint, seqNum: bigint) => ({ incNum, seqNum });

function signed(
  crypto: FakeCrypto,
  o: {
    seq?: bigint;
    inc?: bigint;
    endpoint?: string;
    internal?: string;
    identity?: boolean;
  } = {},
) {
  const msg = aliveMessage({
    endpoint: o.endpoint ?? "ext:1",
    pkiId: crypto.pkiId,
    metadata: new Uint8Array(0),
    timestamp: ts(o.inc ?? 100n, o.seq ?? 1n),
    identity: o.identity === false ? undefined : crypto.identity,
  });
  return signAlive(crypto, msg, o.internal ?? "int:1");
}

/** A mapper-like identity source over a plain map. */
function source(crypto: FakeCrypto) {
  const m = new Map<string, Uint8Array>();
  return {
    put(pkiId: Uint8Array, identity: Uint8Array) {
      crypto.validateIdentity(identity);
      if (pkiIdHex(crypto.pkiIdOf(identity)) !== pkiIdHex(pkiId)) throw new GossipError(ErrorCode.PkiIdMismatch, "mismatch");
      m.set(pkiIdHex(pkiId), identity);
    },
    get: (pkiId: Uint8Array) => m.get(pkiIdHex(pkiId)),
  };
}

describe("timestamps", () => {
  it("compare inc_num first, then seq_num (TestToString's format)", () => {
    assert.equal(compareTimestamps(ts(2n, 0n), ts(1n, 99n)), 1);
    assert.equal(compareTimestamps(ts(1n, 2n), ts(1n, 3n)), -1);
    assert.equal(compareTimestamps(ts(1n, 2n), ts(1n, 2n)), 0);
    assert.equal(isNewer(ts(1n, 2n), ts(1n, 2n)), false);
    assert.equal(timestampString(ts(1_700_000_000_000_000_000n, 7n)), "1700000000000000000, 7");
  });
  it("packed (as the view and the msgStore keep them) order as the pair does and unpack to the same values, over all of uint64", () => {
    const u64 = fc.bigInt({ min: 0n, max: 2n ** 64n - 1n });
    const edge = fc.constantFrom(0n, 1n, 2n ** 63n - 1n, 2n ** 63n, 2n ** 64n - 1n);
    const part = fc.oneof(u64, edge);
    fc.assert(
      fc.property(part, part, part, part, (i1, s1, i2, s2) => {
        const a = ts(i1, s1);
        const b = ts(i2, s2);
        const c = compareTimestamps(a, b);
        const pa = packTimestamp(a);
        const pb = packTimestamp(b);
        assert.equal(pa > pb ? 1 : pa < pb ? -1 : 0, c);
        assert.deepEqual(unpackTimestamp(pa), { incNum: i1, seqNum: s1 });
      }),
      { numRuns: 500 },
    );
  });
  it("inc_num is ns since the epoch and strictly increases within the process (a restart is newer)", () => {
    const a = newIncNum(() => 1_700_000_000_000);
    const b = newIncNum(() => 1_700_000_000_000);
    assert.ok(a >= 1_700_000_000_000_000_000n);
    assert.ok(b > a);
  });
});

describe("alive messages", () => {
  const trust = new FakeTrust();
  const p = new FakeCrypto("Org1MSP", trust);
  const q = new FakeCrypto("Org1MSP", trust);

  it("are built with tag EMPTY, identity, and a signed secret envelope with the internal endpoint", () => {
    const env = signed(p);
    const a = parseAlive(env);
    assert.equal(a.pkiHex, pkiIdHex(p.pkiId));
    assert.equal(a.endpoint, "ext:1");
    assert.equal(a.internalEndpoint, "int:1");
    assert.deepEqual(a.identity, p.identity);
    assert.deepEqual(a.timestamp, ts(100n, 1n));
    validateAlive(p, source(p), a);
  });

  it("stay valid without their secret envelope (forwarders across orgs strip it)", () => {
    const env = withoutSecret(signed(p));
    assert.equal(env.secretEnvelope, undefined);
    assert.equal(internalEndpointOf(env), "");
    validateAlive(p, source(p), parseAlive(env));
  });

  it("are refused when signed by another identity", () => {
    const env = signed(p);
    const forged = { ...env, signature: q.sign(env.payload) };
    assert.throws(
      () => validateAlive(p, source(p), parseAlive(forged)),
      (e: GossipError) => e.code === ErrorCode.BadSignature,
    );
    const badSecret = {
      ...env,
      secretEnvelope: env.secretEnvelope && {
        ...env.secretEnvelope,
        signature: q.sign(env.secretEnvelope.payload),
      },
    };
    assert.throws(
      () => validateAlive(p, source(p), parseAlive(badSecret)),
      (e: GossipError) => e.code === ErrorCode.BadSignature,
    );
  });

  it("are refused when they carry someone else's identity, or none and the PKI-ID is unknown", () => {
    const msg = aliveMessage({
      endpoint: "",
      pkiId: p.pkiId,
      metadata: new Uint8Array(0),
      timestamp: ts(1n, 1n),
      identity: q.identity,
    });
    assert.throws(
      () => validateAlive(p, source(p), parseAlive(signAlive(p, msg, ""))),
      (e: GossipError) => e.code === ErrorCode.PkiIdMismatch,
    );
    assert.throws(
      () => validateAlive(p, source(p), parseAlive(signed(p, { identity: false }))),
      (e: GossipError) => e.code === ErrorCode.UnknownIdentity,
    );
  });

  it("are refused as malformed without membership, PKI-ID, timestamp, or signature", () => {
    const noTs = create(GossipMessageSchema, {
      tag: GossipMessage_Tag.EMPTY,
      content: {
        case: "aliveMsg",
        value: {
          $typeName: "gossip.AliveMessage",
          identity: new Uint8Array(0),
          membership: {
            $typeName: "gossip.Member",
            endpoint: "",
            metadata: new Uint8Array(0),
            pkiId: p.pkiId,
          },
        },
      },
    });
    const noMember = create(GossipMessageSchema, {
      tag: GossipMessage_Tag.EMPTY,
      content: {
        case: "aliveMsg",
        value: {
          $typeName: "gossip.AliveMessage",
          identity: new Uint8Array(0),
        },
      },
    });
    for (const m of [noTs, noMember]) {
      assert.throws(
        () => parseAlive(signAlive(p, m, "")),
        (e: GossipError) => e.code === ErrorCode.MalformedMessage,
      );
    }
    const env = signed(p);
    assert.throws(
      () => parseAlive({ ...env, signature: new Uint8Array(0) }),
      (e: GossipError) => e.code === ErrorCode.MalformedMessage,
    );
    const data = create(GossipMessageSchema, {
      tag: GossipMessage_Tag.CHAN_AND_ORG,
      content: { case: "dataMsg", value: create(DataMessageSchema) },
    });
    assert.throws(
      () => parseAlive(signAlive(p, data, "")),
      (e: GossipError) => e.code === ErrorCode.MalformedMessage,
    );
  });
});

describe("owned bytes (what membership keeps long-term)", () => {
  it("copies a view into a larger buffer, keeps an array that owns its buffer, shares one empty array", () => {
    const pooled = Buffer.from("0123456789abcdef"); // a view into Node's 8 KiB pool
    const part = pooled.subarray(2, 6);
    const owned = ownedBytes(part);
    assert.notEqual(owned.buffer, pooled.buffer);
    assert.equal(owned.byteLength, owned.buffer.byteLength);
    assert.deepEqual([...owned], [...part]);
    const whole = new Uint8Array([1, 2, 3]);
    assert.equal(ownedBytes(whole), whole);
    assert.equal(ownedBytes(new Uint8Array(0)), ownedBytes(pooled.subarray(0, 0)));
  });

  it("keeps a view that spans nearly all of its buffer (a handshake identity in its payload copy), copies a small part of a small buffer", () => {
    const payload = new Uint8Array(748);
    const identity = payload.subarray(40, 712);
    assert.equal(ownedBytes(identity), identity);
    const frame = new Uint8Array(250);
    const pkiId = frame.subarray(10, 42); // 218 bytes of slack for 32 kept: copied
    assert.notEqual(ownedBytes(pkiId).buffer, frame.buffer);
    const big = new Uint8Array(4096).subarray(0, 3000); // 1,096 bytes of slack: copied
    assert.notEqual(ownedBytes(big).buffer, big.buffer);
  });
});

describe("view entries", () => {
  it("keep a member's PKI-ID as hex only; its bytes are made on use and the comm is told their hex", () => {
    const p = new FakeCrypto("Org1MSP");
    const view = new View("self", () => {});
    const a = parseAlive(signed(p));
    assert.equal(view.handleAlive(a, 0), true);
    const k = view.get(a.pkiHex);
    assert.ok(k !== undefined);
    assert.equal(
      Object.values(k).some((v) => v instanceof Uint8Array && bytesEqual(v, p.pkiId)),
      false,
      "no PKI-ID bytes kept",
    );
    const id = pkiIdOf(k);
    assert.ok(bytesEqual(id, p.pkiId));
    assert.equal(pkiIdHex(id), k.pkiHex, "the same string, not a new hex");
  });

  it("as send targets carry their hex for the comm and make the PKI-ID's bytes once, only when read", () => {
    const p = new FakeCrypto("Org1MSP");
    const view = new View("self", () => {});
    const a = parseAlive(signed(p));
    view.handleAlive(a, 0);
    const k = view.get(a.pkiHex);
    assert.ok(k !== undefined);
    const peer = MemberPeer.of(k);
    assert.equal(peer[remotePkiHex], k.pkiHex, "the view's string");
    assert.equal(peer.pkiHex, k.pkiHex);
    assert.equal(peerPkiHex(peer), k.pkiHex);
    assert.equal(peer.endpoint, preferredEndpoint(k));
    assert.equal(
      Object.values(peer).some((v) => v instanceof Uint8Array),
      false,
      "no bytes before they are read",
    );
    assert.ok(bytesEqual(peer.pkiId, p.pkiId));
    assert.equal(peer.pkiId, peer.pkiId, "the same array on every read");
    assert.equal(pkiIdHex(peer.pkiId), k.pkiHex);
    assert.equal(MemberPeer.of(k, "elsewhere:1").endpoint, "elsewhere:1");
  });
});

describe("alive msgStore (TestAliveMsgStore, tombstones)", () => {
  const p = new FakeCrypto("Org1MSP");
  const a1 = parseAlive(signed(p, { seq: 1n }));
  const a2 = parseAlive(signed(p, { seq: 2n }));
  it("accepts new and strictly newer messages only", () => {
    const s = new AliveStore(500_000);
    assert.equal(s.checkValid(a1.pkiHex, a1.timestamp), true);
    assert.equal(s.add(a1, 0), true);
    assert.equal(s.checkValid(a1.pkiHex, a1.timestamp), false, "the same message again");
    assert.equal(s.add(a2, 1), true);
    assert.equal(s.add(a1, 2), false, "an older one");
    assert.equal(s.get().length, 1);
  });
  it("expires an entry after the TTL, keeps it as a tombstone until twice the TTL", () => {
    const s = new AliveStore(500_000);
    s.add(a1, 0);
    assert.deepEqual(s.sweep(500_000), []);
    const expired = s.sweep(500_001);
    assert.equal(expired.length, 1);
    assert.deepEqual(s.sweep(600_000), [], "reported once");
    assert.equal(s.get().length, 0, "hidden from get()");
    assert.equal(s.checkValid(a1.pkiHex, a1.timestamp), false, "replays still refused");
    s.sweep(1_000_001);
    assert.equal(s.size, 0);
    assert.equal(s.checkValid(a1.pkiHex, a1.timestamp), true);
  });
  it("a newer message over a tombstone makes it live again, and it expires (and is reported) anew", () => {
    const s = new AliveStore(500_000);
    s.add(a1, 0);
    assert.equal(s.sweep(500_001).length, 1);
    assert.equal(s.held(a1.pkiHex)?.expired, true);
    assert.equal(s.add(a2, 600_000), true);
    assert.equal(s.held(a1.pkiHex)?.expired, false);
    assert.deepEqual(s.get(), [a1.pkiHex]);
    assert.deepEqual(s.sweep(1_000_000), [], "not before its own TTL");
    assert.equal(s.sweep(1_100_001).length, 1, "reported again");
    assert.deepEqual(s.get(), []);
  });
});

describe("view states (dead members in a set of their own)", () => {
  it("died, revived and removed members carry the state they had at their event; removed ones leave no trace", () => {
    const p = new FakeCrypto("Org1MSP");
    const events: string[] = [];
    const view: View = new View("self", (type, k) => void events.push(`${type}:${view.stateOf(k)}`));
    const a1 = parseAlive(signed(p, { seq: 1n }));
    view.handleAlive(a1, 0);
    assert.ok(view.expire(a1.pkiHex) !== undefined);
    assert.equal(view.expire(a1.pkiHex), undefined, "not twice");
    assert.deepEqual([view.alive().length, view.dead().length, view.aliveCount], [0, 1, 0]);
    view.handleAlive(parseAlive(signed(p, { seq: 2n })), 1);
    assert.deepEqual([view.alive().length, view.dead().length, view.aliveCount], [1, 0, 1]);
    view.expire(a1.pkiHex);
    view.remove(a1.pkiHex);
    assert.deepEqual(events, ["joined:alive", "died:dead", "revived:alive", "died:dead", "removed:dead"]);
    assert.equal(view.get(a1.pkiHex), undefined);
    // Learned again after its removal: alive, not dead from a stale entry of the dead set.
    view.handleAlive(parseAlive(signed(p, { seq: 3n })), 2);
    assert.deepEqual([view.alive().length, view.dead().length], [1, 0]);
  });

  it("a removed member leaves the dead set even when telling of its removal throws", () => {
    const p = new FakeCrypto("Org1MSP");
    const view = new View("self", (type) => {
      if (type === "removed") throw new Error("a listener failed");
    });
    const a = parseAlive(signed(p, { seq: 1n }));
    view.handleAlive(a, 0);
    const k = view.expire(a.pkiHex);
    assert.ok(k !== undefined);
    assert.throws(() => view.remove(a.pkiHex));
    assert.equal(view.stateOf(k), "alive", "no longer in the dead set");
  });
});

describe("disclosure policy (§3.11)", () => {
  const self = "A";
  it("discloses nothing to a peer of unknown organization and keeps envelopes", () => {
    const d = disclosurePolicy(self, {
      organization: undefined,
      endpoint: "r:1",
    });
    assert.equal(d.disclose({ organization: "A", endpoint: "x:1" }), false);
    const env = signed(new FakeCrypto("A"));
    assert.equal(d.filter(env), env);
  });
  it("our org: our members only, with secret envelopes; foreign members never", () => {
    const d = disclosurePolicy(self, { organization: "A", endpoint: "" });
    assert.equal(d.disclose({ organization: "A", endpoint: "" }), true);
    assert.equal(d.disclose({ organization: "B", endpoint: "b:1" }), false);
    assert.ok(d.filter(signed(new FakeCrypto("A"))).secretEnvelope);
  });
  it("foreign org with external endpoint: its own members and our external ones, no secrets", () => {
    const d = disclosurePolicy(self, { organization: "B", endpoint: "r:1" });
    assert.equal(d.disclose({ organization: "B", endpoint: "" }), true);
    assert.equal(d.disclose({ organization: "A", endpoint: "a:1" }), true);
    assert.equal(d.disclose({ organization: "A", endpoint: "" }), false);
    assert.equal(d.disclose({ organization: "C", endpoint: "c:1" }), false);
    assert.equal(d.disclose({ organization: undefined, endpoint: "c:1" }), false);
    assert.equal(d.filter(signed(new FakeCrypto("A"))).secretEnvelope, undefined);
  });
  it("foreign org without external endpoint: none of ours", () => {
    const d = disclosurePolicy(self, { organization: "B", endpoint: "" });
    assert.equal(d.disclose({ organization: "A", endpoint: "a:1" }), false);
  });
});

describe("alive routing (§3.4)", () => {
  const orgs = new Map<string, string>();
  const member = (hex: string, org: string | undefined, endpoint = `${hex}:1`): RouteTarget => {
    if (org) orgs.set(hex, org);
    if (org === undefined) orgs.delete(hex);
    return { pkiHex: hex, endpoint };
  };
  const env = signed(new FakeCrypto("A"));
  const item = (originHex: string, fromHex: string | undefined, originEndpoint = "o:1"): RouteItem => ({
    envelope: env,
    originHex,
    originEndpoint,
    fromHex,
  });
  const ctx = (members: RouteTarget[], seed = 1) => ({
    selfOrg: "A",
    peerNum: 3,
    members,
    orgOf: (h: string) => orgs.get(h),
    random: seededRandom(seed),
  });

  it("never sends back to the previous hop, at most propagatePeerNum targets", () => {
    const members = ["a1", "a2", "a3", "a4", "a5"].map((h) => member(h, "A"));
    orgs.set("o", "A");
    for (let seed = 1; seed < 50; seed++) {
      const routes = routeAlive([item("o", "a1")], ctx(members, seed));
      const targets = routes.flatMap((r) => r.targets.map((t) => t.pkiHex));
      assert.ok(targets.length <= 3 && targets.length > 0);
      assert.ok(!targets.includes("a1"));
    }
  });

  it("keeps an org-only origin (no external endpoint) inside our org, secret kept", () => {
    orgs.set("io", "A");
    const members = [member("a1", "A"), member("b1", "B"), member("b2", "B"), member("a2", "A")];
    for (let seed = 1; seed < 30; seed++) {
      const routes = routeAlive([item("io", undefined, "")], ctx(members, seed));
      for (const r of routes) {
        assert.ok(r.targets.every((t) => orgs.get(t.pkiHex) === "A"));
        assert.ok(r.envelope.secretEnvelope);
      }
    }
  });

  it("sends a foreign origin only to our org and its own, with external endpoints, secret stripped across orgs", () => {
    orgs.set("fo", "B");
    const members = [member("a1", "A"), member("a2", "A", ""), member("b1", "B"), member("c1", "C")];
    for (let seed = 1; seed < 30; seed++) {
      for (const r of routeAlive([item("fo", undefined)], ctx(members, seed))) {
        for (const t of r.targets) {
          assert.notEqual(t.pkiHex, "c1");
          assert.notEqual(t.pkiHex, "a2", "target without external endpoint skipped");
          if (orgs.get(t.pkiHex) !== "A") assert.equal(r.envelope.secretEnvelope, undefined);
        }
      }
    }
  });

  it("sends an origin of unknown organization nowhere", () => {
    assert.deepEqual(routeAlive([item("unknown", undefined)], ctx([member("a1", "A")])), []);
  });
});

describe("verification budget", () => {
  it("refuses beyond the burst, refills at its rate, and forgets only buckets that have refilled", () => {
    const b = new RateBudget(10); // burst 20
    for (let i = 0; i < 20; i++) assert.equal(b.take("p", 0), true);
    assert.equal(b.take("p", 0), false);
    assert.equal(b.take("q", 0), true);
    b.prune(1000); // p has 10 of 20 back, q is full again
    assert.equal(b.size, 1);
    for (let i = 0; i < 10; i++) assert.equal(b.take("p", 1000), true);
    assert.equal(b.take("p", 1000), false, "pruning must not hand p a fresh burst");
    b.prune(3000);
    assert.equal(b.size, 0);
    for (let i = 0; i < 20; i++) assert.equal(b.take("p", 3000), true);
    assert.equal(b.take("p", 3000), false);
  });
});

describe("batching emitter (batcher_test)", () => {
  it("emits at the burst size: 50 adds at burst 10 make 5 emits", async () => {
    const clock = new VirtualClock();
    const emits: number[][] = [];
    const e = new BatchingEmitter<number>(clock, { iterations: 1, burstSize: 10, latencyMs: 10_000 }, (b) => emits.push(b));
    for (let i = 0; i < 50; i++) e.add(i);
    assert.equal(emits.length, 5);
    assert.equal(e.size, 0);
    e.stop();
  });
  it("emits each message `iterations` times, every latency, then drops it", async () => {
    const clock = new VirtualClock();
    let emits = 0;
    const e = new BatchingEmitter<number>(clock, { iterations: 10, burstSize: 100, latencyMs: 10 }, () => emits++);
    e.add(1);
    await clock.advance(1000);
    assert.equal(emits, 10);
    assert.equal(e.size, 0);
    e.stop();
  });
});

describe("tag legality", () => {
  const msg = (tag: GossipMessage_Tag, content: Parameters<typeof create<typeof GossipMessageSchema>>[1]) =>
    create(GossipMessageSchema, { tag, ...content });
  it("alive, requests and identity pull need EMPTY; UNDEFINED is illegal", () => {
    const alive = signed(new FakeCrypto("A"));
    const m = parseAliveMessage(alive.payload);
    assert.equal(illegalTagReason({ ...m, tag: GossipMessage_Tag.EMPTY }), undefined);
    assert.equal(illegalTagReason({ ...m, tag: GossipMessage_Tag.ORG_ONLY }), "Tag should be EMPTY");
    assert.equal(illegalTagReason({ ...m, tag: GossipMessage_Tag.UNDEFINED }), "Undefined tag");
    const req = msg(GossipMessage_Tag.CHAN_AND_ORG, {
      content: { case: "memReq", value: create(MembershipRequestSchema) },
    });
    assert.equal(illegalTagReason(req), "Tag should be EMPTY");
    const hello = (t: PullMsgType, tag: GossipMessage_Tag) =>
      msg(tag, {
        content: {
          case: "hello",
          value: create(GossipHelloSchema, { msgType: t }),
        },
      });
    assert.equal(illegalTagReason(hello(PullMsgType.IDENTITY_MSG, GossipMessage_Tag.EMPTY)), undefined);
    assert.equal(illegalTagReason(hello(PullMsgType.BLOCK_MSG, GossipMessage_Tag.CHAN_AND_ORG)), undefined);
    assert.equal(illegalTagReason(hello(PullMsgType.UNDEFINED, GossipMessage_Tag.EMPTY)), "Invalid PullMsgType: UNDEFINED"); // Fabric prints the name
  });
});

import { parseGossipMessage as parseAliveMessage } from "../../src/core/envelope.js";

describe("configuration", () => {
  it("has Fabric's defaults, derived ones included", () => {
    const c = resolveMembershipConfig({ internalEndpoint: "p:7051" });
    assert.equal(c.aliveTimeIntervalMs, 5000);
    assert.equal(c.aliveExpirationTimeoutMs, 25_000);
    assert.equal(c.aliveExpirationCheckIntervalMs, 2500);
    assert.equal(c.reconnectIntervalMs, 25_000);
    assert.equal(c.maxConnectionAttempts, 120);
    assert.equal(c.msgExpirationFactor, 20);
    assert.equal(c.publishCertPeriodMs, 10_000);
    assert.equal(c.propagatePeerNum, 3);
    assert.equal(c.pullIntervalMs, 4000);
    assert.equal(c.externalEndpoint, "");
    assert.equal(
      resolveMembershipConfig({
        internalEndpoint: "p:1",
        aliveTimeIntervalMs: 1000,
      }).aliveExpirationTimeoutMs,
      5000,
    );
  });
  it("refuses negative or non-finite numbers", () => {
    assert.throws(() => resolveMembershipConfig({ internalEndpoint: "p:1", aliveTimeIntervalMs: -1 }), TypeError);
    assert.throws(() => resolveMembershipConfig({ internalEndpoint: "p:1", pullPeerNum: Number.NaN }), TypeError);
  });
  it("refuses an internal endpoint that isn't host:port (IPv6 literals included, as Fabric)", () => {
    for (const bad of ["", "p", "p:", "p:x", "p:70000", "[::1]:7051", "a:b:1"]) {
      assert.throws(() => resolveMembershipConfig({ internalEndpoint: bad }), TypeError, bad);
    }
  });
  it("skips bootstrap entries that are ourselves by string comparison only", () => {
    assert.equal(isSelfEndpoint("p:7051", "p:7051", ""), true);
    assert.equal(isSelfEndpoint("localhost:7051", "p:7051", ""), true);
    assert.equal(isSelfEndpoint("127.0.0.1:7051", "p:7051", ""), true);
    assert.equal(isSelfEndpoint("ext:1", "p:7051", "ext:1"), true);
    assert.equal(isSelfEndpoint("127.0.0.2:7051", "p:7051", ""), false);
    assert.equal(isSelfEndpoint("q:7051", "p:7051", ""), false);
  });
});

describe("identity mapper", () => {
  const make = (trust = new FakeTrust(), wall = { now: 1_000_000 }) => {
    const clock = new VirtualClock();
    const self = new FakeCrypto("A", trust, undefined, () => wall.now);
    const removed: string[] = [];
    const m = new IdentityMapper({
      crypto: self,
      clock,
      wallClockMs: () => wall.now,
      onRemoved: (p) => removed.push(pkiIdHex(p)),
    });
    return { clock, self, m, removed, trust, wall };
  };
  it("shares a connection's buffer holding the same identity bytes (not another's), and reads them back from it", () => {
    const { m, trust } = make();
    const p = new FakeCrypto("A", trust);
    const hex = pkiIdHex(p.pkiId);
    m.put(p.pkiId, Uint8Array.from(p.identity));
    // A handshake buffer: 5 bytes before the identity, 6 after (within the slack a kept view may have).
    const handshake = new Uint8Array(5 + p.identity.length + 6);
    handshake.set(p.identity, 5);
    const view = handshake.subarray(5, 5 + p.identity.length);
    m.share(p.pkiId, view);
    for (const read of [
      m.identityOf(hex),
      m.get(p.pkiId),
      m.peekIdentity(hex),
      m.entries().find((e) => pkiIdHex(e.pkiId) === hex)?.identity,
    ]) {
      assert.deepEqual(read, p.identity);
      assert.equal(read?.buffer, handshake.buffer, "the connection's buffer");
      assert.equal(read?.byteOffset, 5);
    }
    const other = new Uint8Array(p.identity.length + 5);
    other.set(p.identity, 5);
    other[9] = (other[9] ?? 0) ^ 1;
    m.share(p.pkiId, other.subarray(5));
    assert.equal(m.identityOf(hex)?.buffer, handshake.buffer, "other bytes: not shared");
  });

  it("keeps an identity that is a view into a buffer it spans, from its offset, and copies one out of a larger buffer", () => {
    const { m, trust } = make();
    const p = new FakeCrypto("A", trust);
    const q = new FakeCrypto("A", trust);
    const near = new Uint8Array(p.identity.length + 12);
    near.set(p.identity, 7);
    m.put(p.pkiId, near.subarray(7, 7 + p.identity.length));
    assert.deepEqual(m.get(p.pkiId), p.identity);
    assert.equal(m.get(p.pkiId)?.buffer, near.buffer, "kept as it is: no copy");
    const far = new Uint8Array(q.identity.length + 4096);
    far.set(q.identity, 100);
    m.put(q.pkiId, far.subarray(100, 100 + q.identity.length));
    assert.deepEqual(m.get(q.pkiId), q.identity);
    assert.notEqual(m.get(q.pkiId)?.buffer, far.buffer, "copied: the large buffer is not kept alive");
  });

  it("stores validated identities whose PKI-ID matches, refuses others", () => {
    const { m, trust } = make();
    const p = new FakeCrypto("A", trust);
    const q = new FakeCrypto("A", trust);
    m.put(p.pkiId, p.identity);
    assert.deepEqual(m.get(p.pkiId), p.identity);
    assert.equal(m.organizationOf(p.pkiId), "A");
    assert.throws(
      () => m.put(q.pkiId, p.identity),
      (e: GossipError) => e.code === ErrorCode.PkiIdMismatch,
    );
    trust.revoked.add(pkiIdHex(q.pkiId));
    assert.throws(
      () => m.put(q.pkiId, q.identity),
      (e: GossipError) => e.code === ErrorCode.InvalidIdentity,
    );
    assert.throws(
      () => m.put(q.pkiId, new Uint8Array([1, 2, 3])),
      (e: GossipError) => e.code === ErrorCode.InvalidIdentity,
    );
  });
  it("keeps the crypto's verifier with the identity (verifierOf), gives it for the same bytes only, and alive messages are verified with it", () => {
    const { m, self, trust } = make();
    const p = new FakeCrypto("A", trust);
    let made = 0;
    let used = 0;
    const withVerifiers = self as FakeCrypto & {
      verifierOf?: (identity: Uint8Array) => { verify(s: Uint8Array, d: Uint8Array): void; expiresAt: undefined };
    };
    withVerifiers.verifierOf = (identity) => {
      made++;
      self.validateIdentity(identity);
      return {
        verify: (signature, data) => {
          used++;
          self.verify(identity, signature, data);
        },
        expiresAt: undefined,
      };
    };
    m.put(p.pkiId, p.identity);
    assert.equal(made, 1, "made once, when the identity was stored");
    const hex = pkiIdHex(p.pkiId);
    const v = m.verifierOf(hex, p.identity);
    assert.ok(v !== undefined);
    assert.equal(m.verifierOf(hex, Uint8Array.from(p.identity)), v, "equal bytes in another array: the same verifier");
    assert.equal(m.verifierOf(hex, new FakeCrypto("A", trust).identity), undefined, "other bytes: none");
    assert.deepEqual(m.identityOf(hex), m.get(p.pkiId));
    validateAlive(self, m, parseAlive(signed(p, { identity: false })));
    validateAlive(self, m, parseAlive(signed(p)));
    assert.equal(used, 4, "both alive messages, each with its secret envelope, checked with the kept verifier");
    assert.equal(made, 1);
    const forged = signed(new FakeCrypto("A", trust), { identity: false });
    const claimed = parseAlive(forged);
    assert.throws(
      () => validateAlive(self, m, { ...claimed, pkiId: p.pkiId, pkiHex: hex }),
      (e: GossipError) => e.code === ErrorCode.BadSignature,
    );
  });

  it("lends a kept verifier only until its identity's expiry on the wall clock, even if the expiry timer has not fired", () => {
    const { m, self, trust, wall } = make();
    const p = new FakeCrypto("A", trust);
    const expiresAt = new Date(wall.now + 60_000);
    (self as FakeCrypto & { verifierOf?: unknown }).verifierOf = (identity: Uint8Array) => {
      self.validateIdentity(identity);
      return { verify: (signature: Uint8Array, data: Uint8Array) => self.verify(identity, signature, data), expiresAt };
    };
    m.put(p.pkiId, p.identity);
    const hex = pkiIdHex(p.pkiId);
    wall.now = expiresAt.getTime();
    assert.ok(m.verifierOf(hex, p.identity), "at its notAfter: still valid");
    wall.now += 1;
    assert.equal(m.verifierOf(hex, p.identity), undefined, "past it (the clock's timer not yet fired): none, the crypto decides");
  });

  it("checks the PKI-ID against the identity before the costly validation (a valid certificate under a wrong PKI-ID costs a hash)", () => {
    const { m, trust } = make();
    const p = new FakeCrypto("A", trust);
    const q = new FakeCrypto("A", trust);
    let validations = 0;
    const validateIdentity = FakeCrypto.prototype.validateIdentity;
    FakeCrypto.prototype.validateIdentity = function (this: FakeCrypto, identity: Uint8Array) {
      validations++;
      validateIdentity.call(this, identity);
    };
    try {
      assert.throws(
        () => m.put(q.pkiId, p.identity),
        (e: GossipError) => e.code === ErrorCode.PkiIdMismatch,
      );
      assert.equal(validations, 0);
    } finally {
      FakeCrypto.prototype.validateIdentity = validateIdentity;
    }
  });
  it("forgets an identity 1 ms after it expires, and unused ones after the threshold (never ours)", async () => {
    const { m, clock, trust, self, removed, wall } = make();
    const p = new FakeCrypto("A", trust);
    const q = new FakeCrypto("A", trust);
    trust.expiry.set(pkiIdHex(p.pkiId), wall.now + 10_000);
    m.put(p.pkiId, p.identity);
    m.put(q.pkiId, q.identity);
    await clock.advance(10_002);
    assert.deepEqual(removed, [pkiIdHex(p.pkiId)]);
    await clock.advance(3_600_000);
    m.purgeUnused(3_600_000);
    assert.deepEqual(removed, [pkiIdHex(p.pkiId), pkiIdHex(q.pkiId)]);
    assert.ok(m.get(self.pkiId));
    m.stop();
  });
  it("forgets an identity 1 ms after it expires when that is years away (past 2^31 ms, beyond one timer), to the ms", async () => {
    const { m, clock, trust, removed, wall } = make();
    const years = new FakeCrypto("A", trust);
    const later = new FakeCrypto("A", trust);
    const at = 3 * 365 * 24 * 3600 * 1000 + 1234;
    trust.expiry.set(pkiIdHex(years.pkiId), wall.now + at);
    trust.expiry.set(pkiIdHex(later.pkiId), wall.now + at + 2 ** 30);
    m.put(years.pkiId, years.identity);
    m.put(later.pkiId, later.identity);
    await clock.advance(at);
    assert.deepEqual(removed, []);
    await clock.advance(1);
    assert.deepEqual(removed, [pkiIdHex(years.pkiId)]);
    await clock.advance(2 ** 30 - 1);
    assert.deepEqual(removed, [pkiIdHex(years.pkiId)]);
    await clock.advance(1);
    assert.deepEqual(removed, [pkiIdHex(years.pkiId), pkiIdHex(later.pkiId)]);
    m.stop();
  });
  it("keeps one timer for every expiry: each identity is forgotten 1 ms after its own, in order, and stop leaves none", async () => {
    const { m, clock, trust, removed, wall } = make();
    const peers = [30_000, 10_000, 20_000, 10_000].map((ms) => {
      const p = new FakeCrypto("A", trust);
      trust.expiry.set(pkiIdHex(p.pkiId), wall.now + ms);
      m.put(p.pkiId, p.identity);
      return p;
    });
    assert.equal(clock.pending, 1, "one timer, not one per identity");
    await clock.advance(10_000);
    assert.deepEqual(removed, []);
    await clock.advance(1);
    assert.deepEqual(removed, [pkiIdHex(peers[1]?.pkiId), pkiIdHex(peers[3]?.pkiId)]);
    await clock.advance(10_000);
    assert.equal(removed.length, 3);
    assert.equal(removed[2], pkiIdHex(peers[2]?.pkiId));
    assert.equal(clock.pending, 1);
    m.stop();
    assert.equal(clock.pending, 0);
    assert.ok(m.get(peers[0]?.pkiId as Uint8Array));
  });
  it("keeps identity pull items with their identities: gone on expiry and purge (ours kept), not back with a relearned identity, none for an unknown one", async () => {
    const { m, clock, trust, self, wall } = make();
    const p = new FakeCrypto("A", trust);
    const q = new FakeCrypto("A", trust);
    trust.expiry.set(pkiIdHex(p.pkiId), wall.now + 10_000);
    m.put(p.pkiId, p.identity);
    m.put(q.pkiId, q.identity);
    const item = (n: number) => Uint8Array.of(n, n, n).buffer;
    assert.equal(m.setPullItem(pkiIdHex(new FakeCrypto("A", trust).pkiId), item(9)), false, "no identity, no item");
    for (const [i, c] of [self, p, q].entries()) assert.ok(m.setPullItem(pkiIdHex(c.pkiId), item(i)));
    assert.deepEqual(new Set(m.pullItems.keys()), new Set([self, p, q].map((c) => pkiIdHex(c.pkiId))));
    await clock.advance(10_002);
    assert.equal(m.pullItems.has(pkiIdHex(p.pkiId)), false, "expired with its identity");
    await clock.advance(3_600_000);
    m.purgeUnused(3_600_000);
    assert.deepEqual(m.pullItems.keys(), [pkiIdHex(self.pkiId)], "purged with its identity; ours stays");
    assert.deepEqual(new Uint8Array(m.pullItems.get(pkiIdHex(self.pkiId)) as ArrayBuffer), Uint8Array.of(0, 0, 0));
    m.put(q.pkiId, q.identity);
    assert.equal(m.pullItems.get(pkiIdHex(q.pkiId)), undefined, "a relearned identity has no item until pulled again");
    m.stop();
  });
  it("serves a pull item byte for byte as signed, from the bare buffer it keeps", () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ maxLength: 200 }),
        fc.uint8Array({ minLength: 1, maxLength: 100 }),
        fc.uint8Array({ maxLength: 200 }),
        (a, id, b) => {
          const frame = Uint8Array.from([...a, ...id, ...b]);
          const item = cutIdentity(frame, id);
          assert.ok(item);
          assert.equal(item.byteOffset, 0);
          assert.equal(item.buffer.byteLength, item.length, "the whole buffer is the item");
          assert.deepEqual(joinIdentity(bytesOf(item.buffer), id), frame);
        },
      ),
    );
  });
});

describe("scheduler", () => {
  it("consume hands a polled subscription's items over in publication order, buffered ones in one go, and stops on stop", async () => {
    const d = new Demux<number>(8);
    const sc = new Scheduler(new VirtualClock(), silentLogger);
    const seen: number[] = [];
    sc.consume(
      d.subscribe(() => true),
      (n) => {
        seen.push(n);
        if (n === 2) throw new Error("a failing handler is logged, not fatal");
      },
    );
    for (let i = 0; i < 5; i++) d.publish(i);
    await Promise.resolve();
    await Promise.resolve();
    assert.deepEqual(seen, [0, 1, 2, 3, 4], "all buffered items within two microtask turns");
    d.publish(5);
    await new Promise((r) => setImmediate(r));
    assert.deepEqual(seen, [0, 1, 2, 3, 4, 5]);
    await sc.stop();
    d.publish(6);
    await new Promise((r) => setImmediate(r));
    assert.deepEqual(seen, [0, 1, 2, 3, 4, 5], "nothing after stop");
  });

  it("listen hands an event stream's events over in order, after emit returns, a throwing handler logged, nothing after stop", async () => {
    const s = new EventStream<number>(4);
    const sc = new Scheduler(new VirtualClock(), silentLogger);
    const seen: number[] = [];
    sc.listen(s, (n) => {
      seen.push(n);
      if (n === 1) throw new Error("a failing handler is logged, not fatal");
    });
    for (let i = 0; i < 6; i++) s.emit(i);
    assert.deepEqual(seen, [], "not inside emit");
    await Promise.resolve();
    assert.deepEqual(seen, [0, 1, 2, 3, 4, 5], "every event (more than the stream's capacity: nothing dropped), in order");
    s.emit(6);
    await sc.stop();
    s.emit(7);
    await new Promise((r) => setImmediate(r));
    assert.deepEqual(seen, [0, 1, 2, 3, 4, 5], "nothing after stop, not even an event emitted before it and not yet handed over");
  });
});

describe("our own alive message in responses", () => {
  it("is the last periodic message, byte for byte (with and without its secret envelope), until the next one; a fresh one before the first", () => {
    const clock = new VirtualClock();
    const crypto = new FakeCrypto("Org1MSP");
    const config = resolveMembershipConfig({ internalEndpoint: "p:7051", externalEndpoint: "p.example:7051" });
    const self = new SelfAlive({ crypto, clock, config, wallClockMs: () => 1_000_000, pkiId: crypto.pkiIdOf(crypto.identity) });
    const first = self.forResponse();
    assert.equal(parseAlive(first).timestamp.seqNum, 1n, "before any periodic message: a fresh one");
    const periodic = self.signPeriodic();
    const bytes = envelopeBytes(periodic);
    for (let i = 0; i < 2; i++) {
      const r = self.forResponse();
      assert.deepEqual(envelopeBytes(r), bytes);
      assert.deepEqual(envelopeBytes(withoutSecret(r)), envelopeBytes(withoutSecret(periodic)));
      assert.equal(internalEndpointOf(r), "p:7051");
    }
    self.sign();
    assert.deepEqual(envelopeBytes(self.forResponse()), bytes, "a message signed outside the period does not replace it");
    const next = self.signPeriodic();
    assert.deepEqual(envelopeBytes(self.forResponse()), envelopeBytes(next));
  });
});

describe("event stream listeners", () => {
  it("a listener gets what a for-await reader gets, until it stops listening or the stream ends", async () => {
    const s = new EventStream<string>(8);
    const heard: string[] = [];
    const read: string[] = [];
    const reading = (async () => {
      for await (const e of s) read.push(e);
    })();
    const off = s.listen((e) => heard.push(e));
    s.emit("a");
    s.emit("b");
    await new Promise((r) => setImmediate(r));
    assert.deepEqual(heard, ["a", "b"]);
    off();
    off();
    s.emit("c");
    const again: string[] = [];
    s.listen((e) => again.push(e));
    s.emit("d");
    s.end();
    s.emit("e");
    await reading;
    await new Promise((r) => setImmediate(r));
    assert.deepEqual(heard, ["a", "b"], "not after off()");
    assert.deepEqual(again, ["d"], "not after end()");
    assert.deepEqual(read, ["a", "b", "c", "d"], "the reader as before");
    const late: string[] = [];
    s.listen((e) => late.push(e))();
    assert.deepEqual(late, [], "listening to an ended stream hears nothing");
  });
});
