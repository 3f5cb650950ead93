import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { bytesEqual } from "../../src/core/identity.js";
import type { ReceivedMessage } from "../../src/core/received-message.js";
import { PullMsgType } from "../../src/gen/gossip/message_pb.js";
import { noopMembershipMetrics } from "../../src/membership/index.js";
import { record, Sim } from "./sim.js";

describe("membership on the in-memory transport", () => {
  it("two peers find each other through a bootstrap peer", async () => {
    const sim = new Sim();
    const a = sim.add("a");
    const b = sim.add("b", { bootstrap: ["a:7051"] });
    const took = await sim.converge(() => 1, 10_000, 100);
    assert.ok(took < 10_000);
    const seen = a.membership.alive()[0];
    assert.equal(seen?.pkiIdHex, b.membership.self.pkiIdHex);
    assert.equal(seen?.internalEndpoint, "b:7051");
    await sim.close();
  });
});

describe("one hex string per peer", () => {
  it("the comm names peers that dial us by membership's strings while membership runs (useHexNames), not after its stop", async () => {
    const sim = new Sim();
    const a = sim.add("a");
    const b = sim.add("b", { bootstrap: ["a:7051"] });
    await sim.converge(() => 1, 10_000, 100);
    const names = () => (a.comm as unknown as { ctx: { hexNames?: (hex: string) => string | undefined } }).ctx.hexNames;
    const bHex = b.membership.self.pkiIdHex;
    assert.equal(names()?.(bHex), bHex, "a known member's hex: membership's string");
    assert.equal(names()?.("00".repeat(32)), undefined, "an unknown PKI-ID: none");
    await a.membership?.stop();
    assert.equal(names(), undefined, "cleared on stop: the comm no longer reaches the stopped membership");
    await sim.close();
  });

  it("the comm takes known identities from membership's mapper while membership runs (useIdentities): no copy of its own", async () => {
    const sim = new Sim();
    const a = sim.add("a");
    const b = sim.add("b", { bootstrap: ["a:7051"] });
    const ctx = (
      a.comm as unknown as { ctx: { userIdentities?: { identityOf(hex: string): Uint8Array | undefined }; identities: { size: number } } }
    ).ctx;
    await sim.converge(() => 1, 10_000, 100);
    const bHex = b.membership.self.pkiIdHex;
    const held = ctx.userIdentities?.identityOf(bHex);
    assert.ok(held !== undefined && bytesEqual(held, b.crypto.identity), "b's identity, from the mapper");
    assert.equal(ctx.identities.size, 1, "the comm's store holds ours only: b's identity is the mapper's alone");
    await a.membership?.stop();
    assert.equal(ctx.userIdentities, undefined, "cleared on stop");
    await sim.close();
  });
});

describe("duplicates are not refusals", () => {
  it("a quiet 5-peer mesh refuses nothing over 12 alive intervals, yet sees duplicates (gossip's redundancy), counted apart", async () => {
    const sim = new Sim(7);
    const counted = ["p0", "p1", "p2", "p3", "p4"].map(() => ({ refused: 0, duplicates: 0 }));
    const peers = counted.map((c, i) =>
      sim.add(`p${i}`, {
        bootstrap: i === 0 ? [] : ["p0:7051"],
        metrics: { ...noopMembershipMetrics, refused: () => void c.refused++, duplicate: () => void c.duplicates++ },
      }),
    );
    await sim.converge(() => 4, 30_000, 100);
    const before = counted.map((c) => ({ ...c }));
    const refusedBefore = peers.map((p) => p.membership.stats().refused);
    await sim.clock.advance(12 * 5000);
    for (const [i, p] of peers.entries()) {
      assert.equal(counted[i]?.refused, before[i]?.refused, `${p.name} refused nothing once converged`);
      assert.deepEqual(p.membership.stats().refused, refusedBefore[i]);
      assert.ok((counted[i]?.duplicates ?? 0) > (before[i]?.duplicates ?? 0), `${p.name} counted duplicates`);
      assert.ok((p.membership.stats().duplicates.alive ?? 0) > 0, `${p.name}: duplicate alive messages in stats`);
      assert.equal(p.membership.alive().length, 4);
    }
    await sim.close();
  });
});

describe("identity pull settles", () => {
  // Fabric's pull engine requests an item only while it is missing from its own item set, and keeps every
  // item of a solicited update (gossip/gossip/algo/pull.go); so once every peer holds every identity as a
  // pull item, rounds carry hellos and digests only. A peer that re-requested identities it already knows
  // (for instance, ones learned from a handshake or an alive message) would request them every round.
  const identityPull = (c: ReceivedMessage["message"]["content"]) =>
    (c.case === "dataReq" || c.case === "dataUpdate" || c.case === "dataDig") && c.value.msgType === PullMsgType.IDENTITY_MSG;

  it("8 peers: identities are requested while they join, then no requests or updates, only digests, round after round", async () => {
    const sim = new Sim(11);
    const peers = Array.from({ length: 8 }, (_, i) => sim.add(`p${i}`, { bootstrap: i === 0 ? [] : ["p0:7051"] }));
    const seen = peers.map((p) => record(p.comm, (rm) => identityPull(rm.message.content)));
    const count = (kind: string) => seen.reduce((s, r) => s + r.got.filter((rm) => rm.message.content.case === kind).length, 0);
    try {
      await sim.converge(() => 7, 60_000, 100);
      // Joining: identities learned from handshakes and alive messages are still pulled once as items.
      await sim.clock.advance(10 * 4000);
      assert.ok(count("dataReq") > 0 && count("dataUpdate") > 0, "identities were pulled while the mesh formed");
      for (const r of seen) r.got.length = 0;
      await sim.clock.advance(5 * 4000);
      assert.equal(count("dataReq"), 0, "no identity is requested again once held");
      assert.equal(count("dataUpdate"), 0);
      assert.ok(count("dataDig") >= 8, `the pull still runs (${count("dataDig")} digests)`);
      for (const p of peers) assert.equal(p.membership.alive().length, 7);
    } finally {
      for (const r of seen) r.stop();
      await sim.close();
    }
  });
});
