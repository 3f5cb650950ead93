// A newcomer learns members from its bootstrap peer's response, whose stored
// alive messages no longer carry identities (publishCertPeriod is over). Fabric
// drops them and waits for its next identity pull and the next sync or gossip
// (about a pull interval plus an alive interval). We hold them, pull at once
// and take them in when the identities arrive: within the pull's digest wait.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { aliveMessage, type ParsedAlive, parseAlive, signAlive } from "../../src/membership/alive-message.js";
import { AwaitingIdentity } from "../../src/membership/awaiting-identity.js";
import { FakeCrypto } from "../helpers/fake-crypto.js";
import { Sim } from "./sim.js";

const peers = new Map<string, FakeCrypto>();
/** An alive message of peer `name` (a fake identity per name; its pkiHex stands for the name). */
const alive = (name: string, seq: bigint): ParsedAlive => {
  const c = peers.get(name) ?? new FakeCrypto("Org1MSP");
  peers.set(name, c);
  const m = aliveMessage({ endpoint: "", pkiId: c.pkiId, metadata: new Uint8Array(0), timestamp: { incNum: 1n, seqNum: seq } });
  return parseAlive(signAlive(c, m, ""));
};
const hexOf = (name: string) => alive(name, 0n).pkiHex;

describe("alive messages awaiting their identity", () => {
  it("a newcomer lists a member it learned without identity within the identity pull's digest wait, not a pull interval later", async () => {
    const sim = new Sim(7);
    const p0 = sim.add("p0");
    const p1 = sim.add("p1", { bootstrap: ["p0:7051"] });
    await sim.converge(() => 1, 10_000, 100);
    // Past publishCertPeriod (10 s): p1's alive messages, and p0's stored copy, carry no identity;
    // p0 has pulled p1's signed PeerIdentity by now (pull every 4 s).
    await sim.clock.advance(16_000);
    const p2 = sim.add("p2", { bootstrap: ["p0:7051"] });
    const took = await sim.clock.advanceUntil(() => p2.membership.alive().length === 2, { stepMs: 50, maxMs: 30_000 });
    const { digestWaitTimeMs, aliveTimeIntervalMs } = p2.membership.config;
    assert.ok(
      took <= digestWaitTimeMs + 500,
      `p2 listed p1 after ${took} ms (digest wait ${digestWaitTimeMs} ms, alive interval ${aliveTimeIntervalMs} ms)`,
    );
    assert.ok(p2.membership.lookup(p1.comm.pkiId)?.state === "alive");
    assert.ok(p0.membership.alive().length === 2);
    await sim.close();
  });

  it("keeps the newest message per peer, at most `capacity`, each for at most maxAgeMs", () => {
    const a = new AwaitingIdentity(2, 1000);
    a.hold(alive("aa", 2n), "gossip", "x", 0);
    a.hold(alive("aa", 1n), "gossip", "x", 10); // older: ignored
    assert.equal(a.take(hexOf("aa"), 20)?.alive.timestamp.seqNum, 2n);
    assert.equal(a.take(hexOf("aa"), 20), undefined, "taken once");
    a.hold(alive("aa", 1n), "gossip", "x", 0);
    a.hold(alive("bb", 1n), "alive_entry", "x", 1);
    a.hold(alive("cc", 1n), "dead_entry", "x", 2); // over capacity: the oldest (aa) goes
    assert.equal(a.size, 2);
    assert.equal(a.take(hexOf("aa"), 3), undefined);
    assert.equal(a.take(hexOf("bb"), 2000), undefined, "too old to use");
    a.sweep(5000);
    assert.equal(a.size, 0);
  });
});
