// The foreign discovery peer (test/helpers/foreign-discovery-peer.ts) against
// itself: it is the outside check of src/membership, so it must first show
// Fabric's discovery behaviour on its own, over mutual TLS on loopback.
import assert from "node:assert/strict";
import { after, describe, it } from "node:test";
import type { PeerMaterial } from "../../src/pki/certificates.js";
import { fastForeignDiscovery, startForeignDiscovery } from "../helpers/foreign.js";
import type { ForeignDiscoveryOptions, ForeignDiscoveryPeer } from "../helpers/foreign-discovery-peer.js";

/** Short intervals: alive 200 ms, dead after 1 s of silence. */
const fast: ForeignDiscoveryOptions = {
  ...fastForeignDiscovery,
};

const running = new Set<ForeignDiscoveryPeer>();
after(async () => {
  for (const p of running) await p.stop();
});

async function start(
  o: Parameters<typeof startForeignDiscovery>[0] & {
    discovery?: ForeignDiscoveryOptions;
  } = {},
): Promise<{ peer: ForeignDiscoveryPeer; material: PeerMaterial }> {
  const r = await startForeignDiscovery({
    ...o,
    discovery: { ...fast, ...o.discovery },
  });
  running.add(r.peer);
  return r;
}

async function stop(p: ForeignDiscoveryPeer): Promise<void> {
  await p.stop();
  running.delete(p);
}

const lists = (a: ForeignDiscoveryPeer, b: ForeignDiscoveryPeer) => a.member(b.pkiIdHex)?.state === "alive";

describe("foreign discovery peer, with itself", () => {
  it("same org: a bootstrap request makes both list each other, with internal endpoints", async () => {
    const { peer: a } = await start();
    const { peer: b } = await start({ discovery: { bootstrap: [a.endpoint] } });
    await a.waitFor(() => lists(a, b), 5000, "a lists b");
    await b.waitFor(() => lists(b, a), 5000, "b lists a");
    assert.equal(a.member(b.pkiIdHex)?.internalEndpoint, b.endpoint);
    assert.equal(b.member(a.pkiIdHex)?.internalEndpoint, a.endpoint);
    assert.equal(a.member(b.pkiIdHex)?.inc, b.incNum);
    assert.ok(a.stats.responsesSent >= 1);
    // Alive messages keep it alive past the expiration timeout.
    await new Promise((r) => setTimeout(r, 1500));
    assert.ok(lists(a, b) && lists(b, a), `still alive: ${a.describe()}`);
    assert.deepEqual(
      a.events.filter((e) => e.type !== "joined"),
      [],
    );
  });

  it("a stopped peer is presumed dead, and revived when it restarts with a newer inc_num", async () => {
    const { peer: a } = await start();
    const first = await start({ discovery: { bootstrap: [a.endpoint] } });
    await a.waitFor(() => lists(a, first.peer), 5000, "a lists b");
    const port = Number(first.peer.endpoint.split(":")[1]);
    const oldInc = first.peer.incNum;
    await stop(first.peer);
    await a.waitFor(() => a.member(first.peer.pkiIdHex)?.state === "dead", 5000, "b dead");
    const again = await start({
      material: first.material,
      port,
      discovery: { bootstrap: [a.endpoint] },
    });
    assert.equal(again.peer.pkiIdHex, first.peer.pkiIdHex);
    assert.ok(again.peer.incNum > oldInc);
    await a.waitFor(() => lists(a, again.peer), 5000, "b revived");
    assert.equal(a.member(again.peer.pkiIdHex)?.inc, again.peer.incNum);
    assert.deepEqual(
      a.events.filter((e) => e.pkiIdHex === again.peer.pkiIdHex).map((e) => e.type),
      ["joined", "died", "revived"],
    );
  });

  it("across orgs: anchors with external endpoints list each other without internal endpoints", async () => {
    const trust = ["Org1MSP", "Org2MSP"];
    const { peer: a } = await start({
      mspId: "Org1MSP",
      trust,
      discovery: { externalEndpoint: "listen" },
    });
    const { peer: c } = await start({
      mspId: "Org2MSP",
      trust,
      discovery: { externalEndpoint: "listen", anchors: [a.endpoint] },
    });
    await a.waitFor(() => lists(a, c), 5000, "a lists c");
    await c.waitFor(() => lists(c, a), 5000, "c lists a");
    assert.equal(a.member(c.pkiIdHex)?.internalEndpoint, "");
    assert.equal(c.member(a.pkiIdHex)?.internalEndpoint, "");
    assert.equal(c.member(a.pkiIdHex)?.endpoint, a.endpoint);
  });

  it("a foreign requester without an external endpoint is learned but not answered, its connection closed", async () => {
    const trust = ["Org1MSP", "Org2MSP"];
    const { peer: a } = await start({
      mspId: "Org1MSP",
      trust,
      discovery: { externalEndpoint: "listen" },
    });
    const { peer: c } = await start({
      mspId: "Org2MSP",
      trust,
      discovery: { anchors: [a.endpoint], sync: false },
    });
    await a.waitFor(() => a.stats.requestsRefused >= 1, 5000, "request refused");
    assert.equal(c.stats.responsesReceived, 0);
    assert.ok(a.log.some((l) => l.includes("shouldn't have sent one")));
  });

  it("identities spread by pull: two newcomers verify each other only after pulling from their bootstrap", async () => {
    const noCert: ForeignDiscoveryOptions = { publishCertPeriodMs: 0 };
    const { peer: a } = await start({ discovery: noCert });
    const { peer: b } = await start({
      discovery: { ...noCert, bootstrap: [a.endpoint] },
    });
    const { peer: c } = await start({
      discovery: { ...noCert, bootstrap: [a.endpoint] },
    });
    await b.waitFor(() => lists(b, c), 8000, "b lists c");
    await c.waitFor(() => lists(c, b), 8000, "c lists b");
    assert.ok(b.stats.identitiesLearnedByPull + c.stats.identitiesLearnedByPull >= 1);
    // Before the pull they had to refuse each other's alive messages (no certificate).
    assert.ok((b.stats.rejected.no_certificate ?? 0) + (c.stats.rejected.no_certificate ?? 0) >= 1);
  });
});
