// Our membership layer (served by the Fastify plugin over HTTP/2 and mutual
// TLS) with the foreign discovery peer (grpc-js, Fabric's behaviour written
// independently in test/helpers/foreign-discovery-peer.ts), both directions:
// they list each other, notice each other's death and revival, in one
// organization and across two with external endpoints. Intervals are short:
// alive 200 ms, dead after 1 s of silence.
import assert from "node:assert/strict";
import { type AddressInfo, createServer } from "node:net";
import { after, describe, it } from "node:test";
import { pkiIdHex } from "../../src/core/identity.js";
import type { Membership, MembershipEvent } from "../../src/membership/index.js";
import type { PeerMaterial } from "../../src/pki/certificates.js";
import type { GossipMembershipOptions } from "../../src/server/plugin.js";
import { fastForeignDiscovery, startForeignDiscovery } from "../helpers/foreign.js";
import type { ForeignDiscoveryOptions, ForeignDiscoveryPeer } from "../helpers/foreign-discovery-peer.js";
import { caFor, eventually, startPeer, type TestPeer } from "../helpers/peers.js";

const oursFast: GossipMembershipOptions = {
  aliveTimeIntervalMs: 200,
  aliveExpirationTimeoutMs: 1000,
  reconnectIntervalMs: 400,
  connectResponseTimeoutMs: 1000,
  pullIntervalMs: 400,
  digestWaitTimeMs: 100,
  requestWaitTimeMs: 150,
  responseWaitTimeMs: 200,
};
const foreignFast: ForeignDiscoveryOptions = {
  ...fastForeignDiscovery,
};
const waitMs = 10_000;

const closers = new Set<() => Promise<void>>();
after(async () => {
  for (const c of [...closers].reverse()) await c().catch(() => {});
});

async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, "127.0.0.1", r));
  const { port } = s.address() as AddressInfo;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

interface Ours {
  readonly peer: TestPeer;
  readonly membership: Membership;
  readonly events: MembershipEvent[];
  stop(): Promise<void>;
}

async function startOurs(
  o: { mspId?: string; port?: number; material?: PeerMaterial; membership?: GossipMembershipOptions; trustOrg2?: boolean } = {},
): Promise<Ours> {
  const peer = await startPeer({
    mspId: o.mspId,
    port: o.port,
    material: o.material,
    trust: o.trustOrg2 ? { Org1MSP: caFor("Org1MSP"), Org2MSP: caFor("Org2MSP") } : undefined,
    ca: o.mspId ? caFor(o.mspId) : undefined,
    options: { dialTimeoutMs: 1000, drainTimeoutMs: 200 },
    plugin: { membership: { ...oursFast, ...o.membership } },
  });
  const membership = peer.app.gossipMembership;
  assert.ok(membership, "the plugin created the membership on listen");
  const events: MembershipEvent[] = [];
  void (async () => {
    for await (const e of membership.events) events.push(e);
  })();
  const stop = async () => {
    closers.delete(stop);
    await peer.close();
  };
  closers.add(stop);
  return { peer, membership, events, stop };
}

async function startForeign(
  o: Parameters<typeof startForeignDiscovery>[0] = {},
): Promise<{ peer: ForeignDiscoveryPeer; material: PeerMaterial }> {
  const r = await startForeignDiscovery({ ...o, discovery: { ...foreignFast, ...o.discovery } });
  const stop = async () => {
    closers.delete(stop);
    await r.peer.stop();
  };
  closers.add(stop);
  return r;
}

const oursLists = (ours: Ours, hex: string, state: "alive" | "dead" = "alive") =>
  (state === "alive" ? ours.membership.alive() : ours.membership.dead()).some((m) => m.pkiIdHex === hex);
const foreignLists = (f: ForeignDiscoveryPeer, ours: Ours, state: "alive" | "dead" = "alive") =>
  f.member(pkiIdHex(ours.peer.comm.pkiId))?.state === state;

describe("membership interop with the foreign discovery peer (HTTP/2, mutual TLS)", () => {
  it("same org, ours bootstraps to it: both list each other with internal endpoints and verified identities", async () => {
    const { peer: f } = await startForeign();
    const ours = await startOurs({ membership: { bootstrapPeers: [f.endpoint] } });
    await eventually(() => oursLists(ours, f.pkiIdHex), waitMs, "ours lists the foreign peer");
    await f.waitFor(() => foreignLists(f, ours), waitMs, "the foreign peer lists ours");
    const m = ours.membership.alive().find((x) => x.pkiIdHex === f.pkiIdHex);
    assert.equal(m?.internalEndpoint, f.endpoint);
    assert.equal(m?.organization, "Org1MSP");
    assert.equal(m?.timestamp.incNum, f.incNum);
    assert.equal(f.member(pkiIdHex(ours.peer.comm.pkiId))?.internalEndpoint, ours.peer.endpoint);
    // Kept alive by alive messages beyond the expiration timeout, both ways.
    await new Promise((r) => setTimeout(r, 1500));
    assert.ok(oursLists(ours, f.pkiIdHex) && foreignLists(f, ours), f.describe());
    assert.deepEqual(f.stats.rejected, {});
    assert.deepEqual(ours.membership.stats().refused, {});
  });

  it("same org, it bootstraps to ours: both list each other", async () => {
    const ours = await startOurs();
    const { peer: f } = await startForeign({ discovery: { bootstrap: [ours.peer.endpoint] } });
    await f.waitFor(() => foreignLists(f, ours), waitMs, "the foreign peer lists ours");
    await eventually(() => oursLists(ours, f.pkiIdHex), waitMs, "ours lists the foreign peer");
    assert.ok(f.stats.responsesReceived >= 1, "ours answered its request");
  });

  it("identity pull both ways: with no identity in alive messages, ours and a second foreign peer verify each other through their common bootstrap", async () => {
    const noCert: ForeignDiscoveryOptions = { publishCertPeriodMs: 0 };
    const { peer: hub } = await startForeign({ discovery: noCert });
    // 1 ms: our alive messages carry our identity only in the first millisecond (0 would mean Fabric's default).
    const ours = await startOurs({ membership: { bootstrapPeers: [hub.endpoint], publishCertPeriodMs: 1 } });
    await hub.waitFor(() => foreignLists(hub, ours), waitMs, "the hub lists ours");
    const { peer: f } = await startForeign({ discovery: { ...noCert, bootstrap: [hub.endpoint] } });
    await eventually(() => oursLists(ours, f.pkiIdHex), waitMs, "ours lists the second foreign peer");
    await f.waitFor(() => foreignLists(f, ours), waitMs, "the second foreign peer lists ours");
    assert.ok(hub.stats.hellosReceived > 0, "ours pulled identities from the hub");
    assert.ok(hub.pulledIdentities().includes(pkiIdHex(ours.peer.comm.pkiId)), "the hub pulled our signed identity from us");
    assert.equal(ours.membership.lookup(f.peer.pkiId)?.organization, "Org1MSP");
  });

  it("an alive message from it with a broken signature is refused and counted, and changes nothing", async () => {
    const { peer: f } = await startForeign({ discovery: { aliveIntervalMs: 60_000, sync: false, identityPull: false } });
    const ours = await startOurs({ membership: { bootstrapPeers: [f.endpoint], aliveExpirationTimeoutMs: 60_000 } });
    await eventually(() => oursLists(ours, f.pkiIdHex), waitMs, "ours lists it");
    const before = ours.membership.lookup(f.peer.pkiId)?.timestamp.seqNum ?? 0n;
    const forged = f.signAlive(); // a newer seq_num, so only the signature can refuse it
    const sig = forged.getSignature_asU8().slice();
    sig[sig.length - 1] = (sig[sig.length - 1] ?? 0) ^ 0x01;
    forged.setSignature(sig);
    assert.ok(f.peer.sendEnvelope(pkiIdHex(ours.peer.comm.pkiId), forged), "it holds a connection to ours");
    await eventually(
      () => (ours.membership.stats().refused["alive/bad_signature"] ?? 0) >= 1,
      waitMs,
      `refusal counted: ${JSON.stringify(ours.membership.stats().refused)}`,
    );
    assert.equal(ours.membership.lookup(f.peer.pkiId)?.timestamp.seqNum, before, "the view did not take the forged timestamp");
  });

  it("ours notices the foreign peer's death, and its revival with a newer inc_num", async () => {
    const first = await startForeign();
    const f1 = first.peer;
    const ours = await startOurs({ membership: { bootstrapPeers: [f1.endpoint] } });
    await eventually(() => oursLists(ours, f1.pkiIdHex), waitMs, "ours lists it");
    const port = Number(f1.endpoint.split(":")[1]);
    await f1.stop();
    await eventually(() => oursLists(ours, f1.pkiIdHex, "dead"), waitMs, "ours sees it dead");
    const { peer: f2 } = await startForeign({ material: first.material, port, discovery: { bootstrap: [ours.peer.endpoint] } });
    assert.ok(f2.incNum > f1.incNum);
    await eventually(() => oursLists(ours, f2.pkiIdHex), waitMs, "ours sees it revived");
    assert.equal(ours.membership.lookup(f2.peer.pkiId)?.timestamp.incNum, f2.incNum);
    const types = ours.events
      .filter((e) => e.member.pkiIdHex === f2.pkiIdHex)
      .map((e) => e.type)
      .filter((t) => t !== "updated");
    assert.deepEqual(types, ["joined", "died", "revived"]);
  });

  it("the foreign peer notices our death, and our revival with a newer inc_num", async () => {
    const { peer: f } = await startForeign();
    const first = await startOurs({ membership: { bootstrapPeers: [f.endpoint] } });
    await f.waitFor(() => foreignLists(f, first), waitMs, "it lists ours");
    const port = Number(first.peer.endpoint.split(":")[1]);
    const oldInc = f.member(pkiIdHex(first.peer.comm.pkiId))?.inc ?? 0n;
    await first.stop();
    await f.waitFor(() => foreignLists(f, first, "dead"), waitMs, "it sees ours dead");
    // Restarted with the same identity on the same port, without bootstrap: its reconnect loop finds us.
    const again = await startOurs({ material: first.peer.material, port });
    await f.waitFor(() => foreignLists(f, again), waitMs, "it sees ours revived");
    assert.ok((f.member(pkiIdHex(again.peer.comm.pkiId))?.inc ?? 0n) > oldInc);
    assert.deepEqual(
      f.events.filter((e) => e.pkiIdHex === pkiIdHex(again.peer.comm.pkiId)).map((e) => e.type),
      ["joined", "died", "revived"],
    );
  });

  it("across orgs with external endpoints: ours connects to it as an anchor and it to ours; no internal endpoint crosses", async () => {
    const port = await freePort();
    const { peer: g } = await startForeign({ mspId: "Org2MSP", trust: ["Org1MSP"], discovery: { externalEndpoint: "listen" } });
    const ours = await startOurs({ mspId: "Org1MSP", port, trustOrg2: true, membership: { externalEndpoint: `127.0.0.1:${port}` } });
    ours.membership.connect(g.endpoint, { anchor: true });
    await eventually(() => oursLists(ours, g.pkiIdHex), waitMs, "ours lists the Org2 peer");
    await g.waitFor(() => foreignLists(g, ours), waitMs, "the Org2 peer lists ours");
    const m = ours.membership.alive().find((x) => x.pkiIdHex === g.pkiIdHex);
    assert.deepEqual(
      { org: m?.organization, endpoint: m?.endpoint, internal: m?.internalEndpoint },
      { org: "Org2MSP", endpoint: g.endpoint, internal: "" },
    );
    assert.deepEqual(
      {
        endpoint: g.member(pkiIdHex(ours.peer.comm.pkiId))?.endpoint,
        internal: g.member(pkiIdHex(ours.peer.comm.pkiId))?.internalEndpoint,
      },
      { endpoint: `127.0.0.1:${port}`, internal: "" },
    );

    // And the other way: another Org2 peer anchors to ours.
    const { peer: h, material: hMaterial } = await startForeign({
      mspId: "Org2MSP",
      trust: ["Org1MSP"],
      discovery: { externalEndpoint: "listen", anchors: [ours.peer.endpoint] },
    });
    await h.waitFor(() => foreignLists(h, ours), waitMs, "the second Org2 peer lists ours");
    await eventually(() => oursLists(ours, h.pkiIdHex), waitMs, "ours lists the second Org2 peer");

    // Death and revival across orgs.
    const hPort = Number(h.endpoint.split(":")[1]);
    await h.stop();
    await eventually(() => oursLists(ours, h.pkiIdHex, "dead"), waitMs, "ours sees the Org2 peer dead");
    const { peer: h2 } = await startForeign({
      mspId: "Org2MSP",
      trust: ["Org1MSP"],
      material: hMaterial,
      port: hPort,
      discovery: { externalEndpoint: "listen", anchors: [ours.peer.endpoint] },
    });
    await eventually(() => oursLists(ours, h2.pkiIdHex), waitMs, "ours sees the Org2 peer revived");
    assert.equal(ours.membership.lookup(h2.peer.pkiId)?.timestamp.incNum, h2.incNum);

    // And ours dies and revives in the Org2 peers' views: g probes our external endpoint and asks again.
    const oldInc = g.member(pkiIdHex(ours.peer.comm.pkiId))?.inc ?? 0n;
    await ours.stop();
    await g.waitFor(() => foreignLists(g, ours, "dead"), waitMs, "the Org2 peer sees ours dead");
    const again = await startOurs({
      mspId: "Org1MSP",
      port,
      material: ours.peer.material,
      trustOrg2: true,
      membership: { externalEndpoint: `127.0.0.1:${port}` },
    });
    await g.waitFor(() => foreignLists(g, again), waitMs, "the Org2 peer sees ours revived");
    assert.ok((g.member(pkiIdHex(again.peer.comm.pkiId))?.inc ?? 0n) > oldInc);
    assert.equal(g.member(pkiIdHex(again.peer.comm.pkiId))?.internalEndpoint, "", "still no internal endpoint across orgs");
  });
});
