// Fabric's gossip/discovery/discovery_test.go scenarios (§7.1 of the
// behaviour notes), on the in-memory transport with Fabric's real default
// intervals (5 s alive, 25 s expiry, 25 s reconnect, 500 s msgStore TTL).
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { pkiIdHex } from "../../src/core/identity.js";
import type { Logger } from "../../src/core/logger.js";
import { parseAlive } from "../../src/membership/alive-message.js";
import { FakeCrypto } from "../helpers/fake-crypto.js";
import { countingDialer, record, Sim, type SimPeer } from "./sim.js";

const ep = (i: number | string) => `p${i}:7051`;

/** A logger that keeps every message text. */
function capture(): { logger: Logger; lines: string[] } {
  const lines: string[] = [];
  const logger: Logger = {
    debug: (_o, m) => void lines.push(m),
    info: (_o, m) => void lines.push(m),
    warn: (_o, m) => void lines.push(m),
    error: (_o, m) => void lines.push(m),
    child: () => logger,
  };
  return { logger, lines };
}

async function withSim(seed: number, fn: (sim: Sim) => Promise<void>): Promise<void> {
  const sim = new Sim(seed);
  try {
    await fn(sim);
  } finally {
    await sim.close();
  }
}

describe("discovery (Fabric's discovery_test.go)", () => {
  it("TestConnect: 10 peers in a ring of bootstraps all reach 9 members; requests to a same-org peer carry the secret envelope", () =>
    withSim(1, async (sim) => {
      const peers: SimPeer[] = [];
      for (let i = 0; i < 10; i++) peers.push(sim.add(`p${i}`, { bootstrap: [ep((i + 1) % 10)] }));
      const rec = record((peers[1] as SimPeer).comm, (rm) => rm.message.content.case === "memReq");
      // Peers dialing a bootstrap peer that is not up yet retry after the reconnect interval (25 s).
      await sim.converge(() => 9, 90_000);
      const first = rec.got.find((rm) => pkiIdHex(rm.connection.pkiId) === (peers[0] as SimPeer).membership.self.pkiIdHex);
      assert.ok(first, "p0 asked p1");
      assert.ok(first.message.content.case === "memReq" && first.message.content.value.selfInformation?.secretEnvelope);
      assert.notEqual(first.message.nonce, 0n, "Connect requests carry a random nonce");
      rec.stop();
    }));

  it("TestNoSigningIfNoMembership: alone for 10 alive intervals, nothing is signed, no sync is sent", () =>
    withSim(2, async (sim) => {
      const crypto = new FakeCrypto("Org1MSP", sim.trust);
      let signs = 0;
      const counting = Object.assign(Object.create(crypto) as FakeCrypto, {
        sign: (d: Uint8Array) => {
          signs++;
          return crypto.sign(d);
        },
      });
      const dials: string[] = [];
      const p = sim.add("p0", {
        crypto: counting,
        wrapDialer: (d) => countingDialer(d, dials),
      });
      const atStart = signs; // our PeerIdentity for the identity pull, signed once at start
      await sim.clock.advance(10 * 5000);
      assert.equal(signs, atStart);
      assert.deepEqual(dials, []);
      assert.equal(p.membership.self.timestamp.seqNum, 0n);
    }));

  it("TestUpdate: metadata and endpoint updates reach the others", () =>
    withSim(3, async (sim) => {
      const peers: SimPeer[] = [];
      for (let i = 0; i < 5; i++) peers.push(sim.add(`p${i}`, { bootstrap: i === 0 ? [] : [ep(0)] }));
      await sim.converge(() => 4, 30_000);
      const p0 = peers[0] as SimPeer;
      const p4 = peers[4] as SimPeer;
      p0.membership.updateMetadata(new TextEncoder().encode("bla bla"));
      p4.membership.updateEndpoint("p4:5511");
      await sim.clock.advanceUntil(
        () =>
          peers.every((p) => p === p0 || new TextDecoder().decode(p.membership.lookup(p0.comm.pkiId)?.metadata) === "bla bla") &&
          peers.every((p) => p === p4 || p.membership.lookup(p4.comm.pkiId)?.endpoint === "p4:5511"),
        { maxMs: 20_000, stepMs: 500 },
      );
    }));

  it("TestInitiateSync: with alive gossip off, periodic sync alone builds and keeps full membership", () =>
    withSim(4, async (sim) => {
      const options = {
        aliveTimeIntervalMs: 1e9,
        aliveExpirationTimeoutMs: 25_000,
      };
      for (let i = 0; i < 10; i++) sim.add(`p${i}`, { bootstrap: i === 0 ? [] : [ep(0)], options });
      await sim.converge(() => 9, 60_000);
      await sim.clock.advance(120_000);
      for (const p of sim.running()) assert.equal(p.membership.alive().length, 9, `${p.name} kept everyone`);
    }));

  it("InitiateSync signs one alive message a round: every member asked in a round gets the same timestamp", () =>
    withSim(11, async (sim) => {
      const peers: SimPeer[] = [];
      for (let i = 0; i < 5; i++) peers.push(sim.add(`p${i}`, { bootstrap: i === 0 ? [] : [ep(0)] }));
      await sim.converge(() => 4, 30_000);
      const p0 = peers[0] as SimPeer;
      const p0Hex = p0.membership.self.pkiIdHex;
      // Sync requests carry nonce 0 (Connect's carry a random one); with no dead member there are no reconnect requests.
      const rounds = new Map<number, bigint[]>();
      const subs = peers.slice(1).map((p) => p.comm.accept((rm) => rm.message.content.case === "memReq" && rm.message.nonce === 0n));
      for (const sub of subs) {
        void (async () => {
          for await (const rm of sub) {
            if (pkiIdHex(rm.connection.pkiId) !== p0Hex || rm.message.content.case !== "memReq") continue;
            const info = rm.message.content.value.selfInformation;
            assert.ok(info);
            const at = sim.clock.now();
            rounds.set(at, [...(rounds.get(at) ?? []), parseAlive(info).timestamp.seqNum]);
          }
        })();
      }
      await sim.clock.advance(3 * p0.membership.config.pullIntervalMs);
      for (const sub of subs) sub.close();
      assert.equal(rounds.size, 3, "one round a pull interval");
      for (const [at, seqs] of rounds) {
        assert.equal(seqs.length, 3, `at ${at}: pullPeerNum (3) of the 4 members asked`);
        // Fabric's InitiateSync builds one request for all: its members hold one timestamp of us,
        // and a crash right after a round leaves one newer timestamp behind, not one per member.
        assert.equal(new Set(seqs).size, 1, `at ${at}: one signed alive message, got sequence numbers ${seqs.join(", ")}`);
      }
    }));

  it("TestSelf: self is our alive member (endpoint, internal endpoint, PKI-ID)", () =>
    withSim(5, async (sim) => {
      const p = sim.add("p0");
      const self = p.membership.self;
      assert.equal(self.endpoint, ep(0));
      assert.equal(self.internalEndpoint, ep(0));
      assert.equal(self.pkiIdHex, pkiIdHex(p.comm.pkiId));
      assert.equal(self.state, "alive");
      assert.equal(self.organization, "Org1MSP");
      assert.equal(p.membership.lookup(p.comm.pkiId)?.pkiIdHex, self.pkiIdHex);
    }));

  it("TestExpiration: 5 peers, 2 stop, the rest see them dead within the expiration timeout", () =>
    withSim(6, async (sim) => {
      const peers: SimPeer[] = [];
      for (let i = 0; i < 5; i++) peers.push(sim.add(`p${i}`, { bootstrap: i === 0 ? [] : [ep(0)] }));
      await sim.converge(() => 4, 30_000);
      await (peers[3] as SimPeer).kill();
      await (peers[4] as SimPeer).kill();
      const took = await sim.converge(() => 2, 40_000);
      assert.ok(took <= 25_000 + 2_500 + 1_000, `took ${took} ms`);
      for (const p of sim.running()) assert.equal(p.membership.dead().length, 2);
    }));

  it("TestGetFullMembership: 13 peers bootstrap to two that start 1 s later; all 15 reach 14 with both endpoints", () =>
    withSim(7, async (sim) => {
      for (let i = 2; i < 15; i++) sim.add(`p${i}`, { bootstrap: [ep(0), ep(1)] });
      await sim.clock.advance(1000);
      sim.add("p0", { bootstrap: [ep(1)] });
      sim.add("p1", { bootstrap: [ep(0)] });
      await sim.converge(() => 14, 60_000);
      for (const p of sim.running()) {
        for (const m of p.membership.alive()) {
          assert.notEqual(m.internalEndpoint, "");
          assert.notEqual(m.endpoint, "");
          assert.equal(p.membership.lookup(m.pkiId)?.endpoint, m.endpoint);
        }
      }
    }));

  it("TestGossipDiscoveryStopping and SkipConnectingToLocalhostBootstrap: bootstraps that are ourselves are never dialed; stop returns", () =>
    withSim(8, async (sim) => {
      const dials: string[] = [];
      const p = sim.add("p0", {
        bootstrap: [ep(0), "localhost:7051", "127.0.0.1:7051"],
        wrapDialer: (d) => countingDialer(d, dials),
      });
      await sim.clock.advance(30_000);
      assert.deepEqual(dials, []);
      await p.membership.stop();
      await p.membership.stop(); // idempotent
      assert.deepEqual(p.membership.alive(), []);
    }));

  it("TestConvergence: three groups of 4 join through a peer that bootstraps to all; it leaves and they see 11", () =>
    withSim(9, async (sim) => {
      for (const g of [0, 4, 8]) {
        sim.add(`p${g}`);
        for (let i = 1; i < 4; i++) sim.add(`p${g + i}`, { bootstrap: [ep(g)] });
      }
      await sim.converge(() => 3, 30_000);
      const d13 = sim.add("p13", {
        bootstrap: [ep(0), ep(4), ep(8)],
        options: { metadata: new TextEncoder().encode("Connector") },
      });
      await sim.converge(() => 12, 60_000);
      for (const p of sim.running()) {
        if (p !== d13) assert.equal(new TextDecoder().decode(p.membership.lookup(d13.comm.pkiId)?.metadata), "Connector");
      }
      await d13.kill();
      await sim.converge(() => 11, 40_000);
      sim.add("p14", { bootstrap: [ep(0), ep(4), ep(8)] });
      await sim.converge(() => 12, 60_000);
    }));

  it("TestCertificateChange: a peer back at its endpoint with a new identity replaces the old PKI-ID, which is purged", () =>
    withSim(10, async (sim) => {
      const dials: string[] = [];
      const p1 = sim.add("p1", { wrapDialer: (d) => countingDialer(d, dials) });
      const p2 = sim.add("p2", { bootstrap: [ep(1)] });
      const p3 = sim.add("p3", { bootstrap: [ep(1)] });
      await sim.converge(() => 2, 30_000);
      const old = pkiIdHex(p2.comm.pkiId);
      await p2.kill();
      await sim.converge(() => 1, 40_000);
      dials.length = 0;
      await sim.clock.advance(30_000);
      assert.ok(dials.includes("ping p2:7051"), "the dead peer is probed");
      const p2b = sim.add("p2");
      await sim.converge(() => 2, 90_000);
      for (const p of [p1, p3]) {
        assert.equal(p.membership.lookup(p2b.comm.pkiId)?.state, "alive");
        const oldMember = p.membership
          .alive()
          .concat(p.membership.dead())
          .find((m) => m.pkiIdHex === old);
        assert.equal(oldMember, undefined, `${p.name} purged the old PKI-ID`);
      }
    }));

  it("TestMsgStoreExpiration + TestMembershipAfterExpiration: 2 of 4 stop; after the msgStore TTL no trace remains, bootstrap peers excepted", () =>
    withSim(11, async (sim) => {
      const cap = capture();
      const peers: SimPeer[] = [];
      for (let i = 0; i < 4; i++)
        peers.push(
          sim.add(`p${i}`, {
            bootstrap: i === 0 ? [] : [ep(0)],
            logger: i === 1 ? cap.logger : undefined,
          }),
        );
      await sim.converge(() => 3, 30_000);
      await sim.clock.advance(20_000); // gossiped alive messages enter the msgStore (responses alone never do)
      await (peers[2] as SimPeer).kill();
      await (peers[3] as SimPeer).kill();
      await sim.converge(() => 1, 40_000);
      const p1 = peers[1] as SimPeer;
      assert.equal(p1.membership.dead().length, 2);
      await sim.clock.advance(500_000 + 5_000 + 1_000);
      for (const p of sim.running()) {
        assert.equal(p.membership.dead().length, 0, `${p.name} removed both`);
        assert.equal(p.membership.lookup((peers[2] as SimPeer).comm.pkiId), undefined);
        assert.equal(p.membership.alive().length, 1);
      }
      assert.ok(cap.lines.some((l) => l.startsWith(`Removing member: Endpoint: ${ep(2)}, InternalEndpoint: ${ep(2)}, PKIID: `)));
      // The bootstrap peer p0 stops: p1 keeps it dead past the TTL, probes it, and sees it again when it restarts.
      const p0 = peers[0] as SimPeer;
      const p0crypto = p0.crypto;
      await p0.kill();
      await sim.clock.advance(500_000 + 30_000 + 5_000);
      assert.equal(p1.membership.dead().length, 1, "a bootstrap peer is never removed");
      assert.ok(cap.lines.some((l) => l === `Do not remove bootstrap or anchor peer endpoint ${ep(0)} from membership`));
      sim.add("p0", { crypto: p0crypto });
      await sim.converge(() => 1, 60_000);
    }));

  it("TestMsgStoreExpirationWithMembershipMessages: after removal, replays of the old alive messages change nothing (tombstones)", () =>
    withSim(12, async (sim) => {
      const p0 = sim.add("p0");
      const p1 = sim.add("p1", { bootstrap: [ep(0)] });
      const rec = record(p0.comm, (rm) => rm.message.content.case === "aliveMsg");
      await sim.converge(() => 1, 30_000);
      await sim.clock.advance(20_000);
      rec.stop();
      const old = rec.got.filter((rm) => pkiIdHex(rm.connection.pkiId) === pkiIdHex(p1.comm.pkiId));
      assert.ok(old.length >= 2);
      await p1.kill();
      await sim.clock.advance(500_000 + 30_000 + 10_000);
      assert.equal(p0.membership.dead().length, 0, "p1 removed");
      const raw = sim.add("p1", { raw: true, crypto: p1.crypto });
      const before = p0.membership.stats().refused["alive/stale_message"] ?? 0;
      for (const rm of old)
        await raw.comm.send(rm.envelope, {
          endpoint: ep(0),
          pkiId: p0.comm.pkiId,
        });
      await sim.clock.advance(1000);
      assert.equal(p0.membership.alive().length, 0);
      assert.equal(p0.membership.dead().length, 0);
      assert.equal((p0.membership.stats().refused["alive/stale_message"] ?? 0) - before, old.length);
    }));

  it("TestPeerIsolation: peers whose bootstrap peer went away find each other again when it returns", () =>
    withSim(13, async (sim) => {
      const peers = [0, 1, 2].map((i) => sim.add(`p${i}`, { bootstrap: [ep(1)] }));
      await sim.converge(() => 2, 90_000);
      const [p0, p1, p2] = peers as [SimPeer, SimPeer, SimPeer];
      await p0.kill();
      await p1.kill();
      await sim.clock.advanceUntil(() => p2.membership.alive().length === 0, {
        maxMs: 40_000,
        stepMs: 500,
      });
      await sim.clock.advance(500_000 + 6_000);
      assert.ok(
        p2.membership.dead().some((m) => m.pkiIdHex === pkiIdHex(p1.comm.pkiId)),
        "the bootstrap peer is never removed",
      );
      sim.add("p0", { crypto: p0.crypto, bootstrap: [ep(1)] });
      sim.add("p1", { crypto: p1.crypto, bootstrap: [ep(1)] });
      await sim.converge(() => 2, 60_000);
    }));
});
