// Organizations: endpoint leakage, anchor and bootstrap rules, real X.509
// identities, the identity pull, events and metrics.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { Registry } from "prom-client";
import { pkiIdHex } from "../../src/core/identity.js";
import { X509CryptoService } from "../../src/core/x509-crypto.js";
import { parseGossipMessage } from "../../src/core/envelope.js";
import type { MembershipEvent } from "../../src/membership/index.js";
import { PrometheusMembershipMetrics } from "../../src/metrics/membership-prometheus.js";
import { createCa, createPeerMaterial } from "../../src/pki/certificates.js";
import { record, Sim, type SimPeer } from "./sim.js";

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
