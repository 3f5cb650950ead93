// Organizations: endpoint leakage, anchor and bootstrap rules, real X.509
// identities, the identity pull, events and metrics.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { Registry } from "prom-client";
import { parseGossipMessage } from "../../src/core/envelope.js";
import { pkiIdHex } from "../../src/core/identity.js";
import { X509CryptoService } from "../../src/core/x509-crypto.js";
import type { MembershipEvent } from "../../src/membership/index.js";
import { PrometheusMembershipMetrics } from "../../src/metrics/membership-prometheus.js";
import { createCa, createPeerMaterial } from "../../src/pki/certificates.js";
import { FakeCrypto } from "../helpers/fake-crypto.js";
import { alive } from "./bad-input-kit.js";
import { countingDialer, record, Sim, type SimPeer } from "./sim.js";

describe("organizations", () => {
  it("TestMultipleOrgEndpointLeakage: external peers know the other org's external peers, internal ones only their org; no internal endpoint crosses", async () => {
    const sim = new Sim(41);
    const orgs = ["A", "B"];
    const peers = new Map<string, SimPeer>();
    for (const org of orgs) {
      for (let i = 0; i < 5; i++) {
        const name = `${org.toLowerCase()}${i}`;
        peers.set(
          name,
          sim.add(name, {
            org,
            external: i < 2,
            bootstrap: i === 0 ? [] : [`${org.toLowerCase()}0:7051`],
          }),
        );
      }
    }
    (peers.get("a0") as SimPeer).membership.connect("b0:7051", {
      anchor: true,
    });
    (peers.get("b0") as SimPeer).membership.connect("a0:7051", {
      anchor: true,
    });
    const expected = (p: SimPeer) => (p.membership.self.endpoint === "" ? 4 : 6);
    await sim.converge(expected, 90_000, 500);
    await sim.clock.advance(30_000);
    for (const p of sim.running()) {
      assert.equal(p.membership.alive().length, expected(p), p.name);
      for (const m of p.membership.alive()) {
        if (m.organization !== p.membership.self.organization) {
          assert.equal(m.internalEndpoint, "", `${p.name} knows the internal endpoint of ${m.endpoint}`);
          assert.notEqual(m.endpoint, "");
        }
      }
    }
    await sim.close();
  });

  it("TestConfidentiality (membership part): orgs A-D, anchors A-B, A-C, B-C, B-D: A and C never hear of D, nothing internal crosses", async () => {
    const sim = new Sim(47);
    const peers = new Map<string, SimPeer>();
    for (const org of ["A", "B", "C", "D"]) {
      for (let i = 0; i < 3; i++) {
        const name = `${org.toLowerCase()}${i}`;
        peers.set(name, sim.add(name, { org, external: i < 2, bootstrap: i === 0 ? [] : [`${org.toLowerCase()}0:7051`] }));
      }
    }
    const seenOrgs = new Map<string, Set<string>>();
    for (const [name, p] of peers) {
      const orgsSeen = new Set<string>();
      seenOrgs.set(name, orgsSeen);
      record(p.comm, (rm) => {
        const c = rm.message.content;
        const envs = c.case === "aliveMsg" ? [rm.envelope] : c.case === "memRes" ? [...c.value.alive, ...c.value.dead] : [];
        for (const e of envs) {
          const m = parseGossipMessage(e.payload);
          if (m.content.case === "aliveMsg" && m.content.value.membership) {
            const hex = pkiIdHex(m.content.value.membership.pkiId);
            for (const q of peers.values()) if (pkiIdHex(q.comm.pkiId) === hex) orgsSeen.add(q.membership.self.organization ?? "");
          }
        }
        return false;
      });
    }
    const link = (a: string, b: string) => {
      (peers.get(`${a}0`) as SimPeer).membership.connect(`${b}0:7051`, { anchor: true });
      (peers.get(`${b}0`) as SimPeer).membership.connect(`${a}0:7051`, { anchor: true });
    };
    link("a", "b");
    link("a", "c");
    link("b", "c");
    link("b", "d");
    await sim.clock.advance(90_000);
    for (const [name, p] of peers) {
      const org = p.membership.self.organization;
      const known = new Set(p.membership.alive().map((m) => m.organization));
      if (org === "A" || org === "C") {
        assert.ok(!known.has("D"), `${name} knows a D peer`);
        assert.ok(!seenOrgs.get(name)?.has("D"), `${name} received an alive message about a D peer`);
      }
      if (org === "D") assert.ok(!known.has("A") && !known.has("C"), `${name} knows an A or C peer`);
      for (const m of p.membership.alive()) if (m.organization !== org) assert.equal(m.internalEndpoint, "");
      if (p.membership.self.endpoint === "")
        assert.ok(
          [...known].every((o) => o === org),
          `${name} (internal) knows another org`,
        );
    }
    assert.ok((peers.get("a0") as SimPeer).membership.alive().some((m) => m.organization === "B"));
    assert.ok((peers.get("d1") as SimPeer).membership.alive().some((m) => m.organization === "B"));
    await sim.close();
  });

  it("TestDisclosurePolicyWithPull: with alive gossip off, sync alone gives each peer exactly the members the policy allows; a stopped peer is dead exactly where it was known", async () => {
    const sim = new Sim(48);
    const options = { aliveTimeIntervalMs: 1e9, aliveExpirationTimeoutMs: 25_000 };
    const peers = new Map<string, SimPeer>();
    for (const org of ["A", "B"]) {
      for (let i = 0; i < 5; i++) {
        const name = `${org.toLowerCase()}${i}`;
        peers.set(name, sim.add(name, { org, external: i % 2 === 0, options, bootstrap: i === 0 ? [] : [`${org.toLowerCase()}0:7051`] }));
      }
    }
    (peers.get("a0") as SimPeer).membership.connect("b0:7051", { anchor: true });
    (peers.get("b0") as SimPeer).membership.connect("a0:7051", { anchor: true });
    const expected = (name: string): string[] => {
      const org = name[0] as string;
      const other = org === "a" ? "b" : "a";
      const own = [0, 1, 2, 3, 4].map((i) => `${org}${i}`);
      const visible = Number(name.slice(1)) % 2 === 0 ? [0, 2, 4].map((i) => `${other}${i}`) : [];
      return [...own, ...visible].filter((n) => n !== name).sort();
    };
    const names = new Map([...peers].map(([n, p]) => [pkiIdHex(p.comm.pkiId), n]));
    const view = (p: SimPeer) =>
      p.membership
        .alive()
        .map((m) => names.get(m.pkiIdHex) ?? "?")
        .sort();
    await sim.clock.advanceUntil(() => [...peers].every(([n, p]) => view(p).join() === expected(n).join()), {
      maxMs: 120_000,
      stepMs: 1000,
    });
    for (const [n, p] of peers) {
      for (const m of p.membership.alive()) if (m.organization !== p.membership.self.organization) assert.equal(m.internalEndpoint, "", n);
    }
    const b2 = peers.get("b2") as SimPeer;
    await b2.kill();
    const knew = [...peers].filter(([n]) => n !== "b2" && expected(n).includes("b2")).map(([n]) => n);
    await sim.clock.advanceUntil(
      () => [...peers].every(([n, p]) => n === "b2" || p.membership.dead().length === (knew.includes(n) ? 1 : 0)),
      { maxMs: 40_000, stepMs: 500 },
    );
    await sim.close();
  });

  it("TestBootstrapPeerMisConfiguration: a bootstrap peer of another org only sees probe handshakes, never a request", async () => {
    const sim = new Sim(42);
    const b = sim.add("b", { org: "B" });
    const rec = record(b.comm, (rm) => rm.message.content.case === "memReq");
    const a = sim.add("a", { org: "A", bootstrap: ["b:7051"] });
    await sim.clock.advance(120_000);
    assert.equal(rec.got.length, 0);
    assert.equal(b.membership.alive().length, 0);
    assert.equal(a.membership.alive().length, 0);
    rec.stop();
    await sim.close();
  });

  it("an anchor of another org is not contacted by a peer without an external endpoint; with one it is, without our internal endpoint", async () => {
    const sim = new Sim(43);
    const b = sim.add("b", { org: "B" });
    const rec = record(b.comm, (rm) => rm.message.content.case === "memReq");
    const hidden = sim.add("h", { org: "A", external: false });
    hidden.membership.connect("b:7051", { anchor: true });
    await sim.clock.advance(10_000);
    assert.equal(rec.got.length, 0);
    const visible = sim.add("v", { org: "A" });
    visible.membership.connect("b:7051", { anchor: true });
    await sim.clock.advanceUntil(() => rec.got.length > 0, { maxMs: 10_000 });
    const req = rec.got[0]?.message.content;
    assert.ok(req?.case === "memReq" && req.value.selfInformation !== undefined);
    assert.equal(req.value.selfInformation.secretEnvelope, undefined, "no internal endpoint for another org");
    await sim.clock.advanceUntil(() => visible.membership.alive().length === 1 && b.membership.alive().length === 1, { maxMs: 10_000 });
    assert.equal(b.membership.alive()[0]?.internalEndpoint, "");
    rec.stop();
    await sim.close();
  });
});

describe("anchor peers with the organization the channel config names (Fabric's learnAnchorPeers)", () => {
  it("another org's anchor, without an external endpoint: skipped before any dial (no handshake); without the org, only after a handshake", async () => {
    const sim = new Sim(47);
    sim.add("b", { org: "B" });
    const dials: string[] = [];
    const hidden = sim.add("h", { org: "A", external: false, wrapDialer: (d) => countingDialer(d, dials) });
    hidden.membership.connect("b:7051", { anchor: true, organization: "B" });
    await sim.clock.advance(60_000);
    assert.deepEqual(dials, [], "nothing dialed");
    // Without the configured organization there is no way to know before the handshake.
    hidden.membership.connect("b:7051", { anchor: true });
    await sim.clock.advance(10_000);
    assert.deepEqual(dials, ["open b:7051"], "one handshake, then skipped");
    assert.equal(hidden.membership.alive().length, 0);
    await sim.close();
  });

  it("an anchor claimed to be of our org that is not: refused after each handshake, never asked", async () => {
    const sim = new Sim(48);
    const b = sim.add("b", { org: "B" });
    const rec = record(b.comm, (rm) => rm.message.content.case === "memReq");
    const dials: string[] = [];
    const a = sim.add("a", {
      org: "A",
      wrapDialer: (d) => countingDialer(d, dials),
      options: { reconnectIntervalMs: 1000, maxConnectionAttempts: 3 },
    });
    a.membership.connect("b:7051", { anchor: true, organization: "A" });
    await sim.clock.advance(30_000);
    assert.equal(dials.filter((d) => d === "open b:7051").length, 3, "a handshake per attempt");
    assert.equal(rec.got.length, 0, "no membership request");
    assert.equal(a.membership.alive().length, 0);
    // Named as the org it is, the same anchor is joined.
    a.membership.connect("b:7051", { anchor: true, organization: "B" });
    await sim.clock.advanceUntil(() => a.membership.alive().length === 1, { maxMs: 10_000 });
    rec.stop();
    await sim.close();
  });
});

describe("endpoints come from the stored alive message, as in Fabric", () => {
  /** `t`, a raw peer `r` that gossips to it, and `m`'s alive messages: the first with its internal endpoint, the newer one without (as another org forwards it). */
  async function setup(seed: number, bootstrap: string[] = []) {
    const sim = new Sim(seed);
    const t = sim.add("t", { bootstrap });
    const r = sim.add("r", { raw: true });
    const to = { endpoint: t.endpoint, pkiId: t.comm.pkiId };
    const gossip = async (env: Parameters<typeof r.comm.send>[0]) => {
      await r.comm.send(env, to);
      await sim.clock.advance(50);
    };
    return { sim, t, gossip };
  }

  it("sync: a member whose latest alive message has no secret envelope is asked at its external endpoint", async () => {
    const { sim, t, gossip } = await setup(50);
    const m = new FakeCrypto("Org1MSP", sim.trust, undefined, sim.wall);
    // m answers at both endpoints (so that no failed dial makes it dead meanwhile).
    sim.add("m-int", { raw: true, crypto: m, endpoint: "m-int:7051" });
    sim.add("m-ext", { raw: true, crypto: m, endpoint: "m-ext:7051" });
    const asked: string[] = [];
    const send = t.comm.send.bind(t.comm);
    t.comm.send = (msg, ...peers) => {
      const inner = "content" in msg ? msg : parseGossipMessage(msg.payload);
      if (inner.content.case === "memReq") for (const p of peers) asked.push(p.endpoint);
      return send(msg, ...peers);
    };
    await gossip(alive(m, { seq: 1n, endpoint: "m-ext:7051", internal: "m-int:7051" }));
    await gossip(alive(m, { seq: 2n, endpoint: "m-ext:7051" }));
    const known = t.membership.lookup(m.pkiId);
    assert.equal(known?.timestamp.seqNum, 2n);
    assert.equal(known?.internalEndpoint, "m-int:7051", "the view keeps the internal endpoint (Fabric's id2Member)");
    await sim.clock.advanceUntil(() => asked.length > 0, { maxMs: 10_000 });
    assert.deepEqual(asked, ["m-ext:7051"], "Fabric's InitiateSync reads the endpoints of the stored message");
    await sim.close();
  });

  it("msgStore sweep: a bootstrap endpoint protects a member only when the expired stored message names it", async () => {
    const { sim, t, gossip } = await setup(51, ["m1-int:7051", "m2-int:7051"]);
    const m1 = new FakeCrypto("Org1MSP", sim.trust, undefined, sim.wall);
    const m2 = new FakeCrypto("Org1MSP", sim.trust, undefined, sim.wall);
    await gossip(alive(m1, { seq: 1n, endpoint: "m1-ext:7051", internal: "m1-int:7051" }));
    await gossip(alive(m2, { seq: 1n, endpoint: "m2-ext:7051", internal: "m2-int:7051" }));
    await gossip(alive(m2, { seq: 2n, endpoint: "m2-ext:7051" })); // stored without its internal endpoint
    assert.equal(t.membership.lookup(m2.pkiId)?.internalEndpoint, "m2-int:7051");
    await sim.clock.advance(500_000 + 30_000);
    assert.equal(t.membership.lookup(m1.pkiId)?.state, "dead", "m1's stored message names a bootstrap endpoint: kept");
    assert.equal(t.membership.lookup(m2.pkiId), undefined, "m2's stored message names none: removed, as Fabric does");
    await sim.close();
  });
});

describe("real X.509 identities", () => {
  it("three peers with X509CryptoService find each other; a peer of an untrusted CA is never listed", async () => {
    const sim = new Sim(44);
    const ca = createCa({ commonName: "ca.org1", organization: "Org1MSP" });
    const rogueCa = createCa({
      commonName: "ca.rogue",
      organization: "Org1MSP",
    });
    const x509 = (c = ca) => {
      const m = createPeerMaterial({ mspId: "Org1MSP", ca: c });
      return new X509CryptoService({
        mspId: "Org1MSP",
        certificate: m.identity.certPem,
        privateKey: m.identity.keyPem,
        trustedRoots: { Org1MSP: [...new Set([ca.certPem, c.certPem])] },
      });
    };
    const p0 = sim.add("p0", { crypto: x509() });
    sim.add("p1", { crypto: x509(), bootstrap: ["p0:7051"] });
    sim.add("p2", { crypto: x509(), bootstrap: ["p0:7051"] });
    await sim.converge(() => 2, 30_000);
    // One copy of each identity's bytes: the mapper's (lent to the comm) lie in the connection's handshake buffer.
    for (const p of sim.running()) {
      const lent = (p.comm as unknown as { ctx: { userIdentities?: { identityOf(hex: string): Uint8Array | undefined } } }).ctx
        .userIdentities;
      const conns = p.comm.connections();
      assert.equal(conns.length, 2, p.name);
      for (const c of conns) {
        assert.deepEqual(lent?.identityOf(c.pkiIdHex), c.identity, `${p.name}: ${c.pkiIdHex}`);
        assert.equal(lent?.identityOf(c.pkiIdHex)?.buffer, c.identity.buffer, `${p.name}: ${c.pkiIdHex}`);
      }
    }
    const rogue = sim.add("rogue", {
      crypto: x509(rogueCa),
      bootstrap: ["p0:7051"],
    });
    await sim.clock.advance(60_000);
    for (const p of sim.running()) {
      if (p === rogue) continue;
      assert.equal(p.membership.alive().length, 2, p.name);
      assert.equal(p.membership.lookup(rogue.comm.pkiId), undefined);
    }
    assert.equal(p0.membership.self.organization, "Org1MSP");
    await sim.close();
  });
});

describe("identity pull", () => {
  it("a newcomer learns, through the identity pull, the identity of a peer it never connected to", async () => {
    const sim = new Sim(45);
    const p0 = sim.add("p0");
    const p1 = sim.add("p1", { bootstrap: ["p0:7051"] });
    await sim.converge(() => 1, 30_000);
    await sim.clock.advance(30_000); // past the publish-cert period: alive messages carry no identity any more
    const p2 = sim.add("p2", { bootstrap: ["p1:7051"] });
    const updates = record(p2.comm, (rm) => rm.message.content.case === "dataUpdate");
    await sim.converge(() => 2, 30_000);
    const pulled = updates.got.flatMap((rm) =>
      rm.message.content.case === "dataUpdate"
        ? rm.message.content.value.data.map((e) => {
            const m = parseGossipMessage(e.payload);
            return m.content.case === "peerIdentity" ? pkiIdHex(m.content.value.pkiId) : "";
          })
        : [],
    );
    assert.ok(pulled.includes(pkiIdHex(p0.comm.pkiId)), "p0's identity came in a DataUpdate");
    assert.ok(p1.membership.lookup(p2.comm.pkiId));
    updates.stop();
    await sim.close();
  });
});

describe("events and metrics", () => {
  it("events: joined, died, revived; gossip_membership_total_peers_known follows the alive count", async () => {
    const sim = new Sim(46);
    const registry = new Registry();
    const metrics = new PrometheusMembershipMetrics(registry);
    const gauge = async () => (await registry.getSingleMetric("gossip_membership_total_peers_known")?.get())?.values[0]?.value;
    const p0 = sim.add("p0", { metrics });
    assert.equal(await gauge(), 0);
    const events: MembershipEvent[] = [];
    void (async () => {
      for await (const e of p0.membership.events) events.push(e);
    })();
    const p1 = sim.add("p1", { bootstrap: ["p0:7051"] });
    await sim.converge(() => 1, 10_000, 100);
    assert.equal(await gauge(), 1);
    await sim.clock.advance(20_000);
    await p1.kill();
    await sim.clock.advanceUntil(() => p0.membership.dead().length === 1, {
      maxMs: 40_000,
    });
    assert.equal(await gauge(), 0);
    sim.add("p1", { crypto: p1.crypto, bootstrap: ["p0:7051"] });
    await sim.clock.advanceUntil(() => p0.membership.alive().length === 1, {
      maxMs: 40_000,
    });
    assert.deepEqual(
      events.map((e) => e.type),
      ["joined", "died", "revived"],
    );
    assert.equal(events[0]?.member.pkiIdHex, pkiIdHex(p1.comm.pkiId));
    const changes = await registry.getSingleMetric("gossip_membership_changes_total")?.get();
    assert.deepEqual(changes?.values.map((v) => [v.labels.type, v.value]).sort(), [
      ["died", 1],
      ["joined", 1],
      ["revived", 1],
    ]);
    await sim.close();
    assert.deepEqual(p0.membership.alive(), []);
  });
});
