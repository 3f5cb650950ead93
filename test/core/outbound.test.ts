// The outbound part alone (no Comm around it) on the in-memory transport:
// dialing with the expected-PKI-ID rule, and the dial queue that bounds and
// orders what is sent before a connection exists, then retires.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { Comm } from "../../src/core/comm.js";
import { encodeUnsignedEnvelope } from "../../src/core/envelope.js";
import { ErrorCode, GossipError } from "../../src/core/errors.js";
import { bytesEqual, pkiIdHex } from "../../src/core/identity.js";
import { MemoryNetwork } from "../../src/core/memory-transport.js";
import type { IdentitySwitchEvent } from "../../src/core/outbound.js";
import type { ReceivedMessage } from "../../src/core/received-message.js";
import { VirtualClock } from "../../src/core/virtual-clock.js";
import { coreParts } from "../helpers/core-parts.js";
import { dataMessage } from "../helpers/messages.js";
import { TestCrypto } from "../helpers/test-crypto.js";

/** Our outbound part at host `us`, and remote comms to send to. */
function setup(options = {}) {
  const clock = new VirtualClock();
  const net = new MemoryNetwork({ clock });
  const parts = coreParts({
    clock,
    crypto: new TestCrypto({ name: "us", trusted: ["Org1MSP", "Org2MSP"] }),
    dialer: net.dialer("us"),
    options,
  });
  const remotes: Comm[] = [];
  const remote = (host: string, crypto = new TestCrypto()) => {
    const comm = new Comm({ crypto, dialer: net.dialer(host), clock });
    const listener = net.listen(`${host}:7051`, (s) => void comm.handleStream(s));
    const received: ReceivedMessage[] = [];
    void (async () => {
      for await (const m of comm.accept()) received.push(m);
    })();
    remotes.push(comm);
    return { comm, received, endpoint: `${host}:7051`, listener };
  };
  const shutdown = async () => {
    const stopped = Promise.all([parts.stop(), ...remotes.map((r) => r.stop())]);
    await clock.advanceUntil(() => net.openStreams === 0, { maxMs: 60_000 });
    await stopped;
    assert.equal(clock.pending, 0, "no timer left");
  };
  return { clock, net, ...parts, remote, shutdown };
}

const frame = (n: number) => encodeUnsignedEnvelope(dataMessage(n));

/**
 * For the identity-switch rule: our outbound part, a remote of the expected
 * organization (`same`) and one of another (`other`), and the switches it
 * reports.
 */
function switchWorld() {
  const h = setup();
  const sameCrypto = new TestCrypto({ mspId: "Org1MSP" });
  const same = h.remote("same", sameCrypto);
  const other = h.remote("other", new TestCrypto({ mspId: "Org2MSP", trusted: ["Org1MSP", "Org2MSP"] }));
  const switches: IdentitySwitchEvent[] = [];
  void (async () => {
    for await (const e of h.identitySwitch) switches.push(e);
  })();
  return { h, same, sameCrypto, other, switches, signal: new AbortController().signal };
}

describe("Outbound", () => {
  it("queues in front of the dial, hands the frames over in order, then retires the queue and sends directly", async () => {
    const h = setup({ sendBuffSize: 10 });
    const b = h.remote("b");
    const peer = { endpoint: b.endpoint, pkiId: b.comm.pkiId };
    for (let i = 0; i < 10; i++) assert.equal(h.outbound.send(peer, frame(i)), undefined);
    assert.equal(h.outbound.queued, 10);
    await h.clock.advance(0);
    assert.equal(h.outbound.queued, 0, "the dial queue drained and retired");
    assert.equal(h.store.connections().length, 1);
    for (let i = 10; i < 15; i++) h.outbound.send(peer, frame(i));
    assert.equal(h.outbound.queued, 0, "straight into the connection's buffer");
    assert.equal(h.store.connections()[0]?.queued, 5);
    await h.clock.advance(0);
    assert.deepEqual(
      b.received.map((m) => m.message.nonce),
      Array.from({ length: 15 }, (_, i) => BigInt(i)),
    );
    await h.shutdown();
  });

  it("a dial to another PKI-ID of the expected organization is an identity switch; of another organization, UnexpectedPeer", async () => {
    const { h, same, other, switches, signal } = switchWorld();
    const old = new TestCrypto({ mspId: "Org1MSP" });
    h.ctx.learn(old.pkiId, old.identity);
    const conn = await h.outbound.dial({ endpoint: same.endpoint, pkiId: old.pkiId }, signal);
    await h.clock.advance(0);
    assert.ok(bytesEqual(conn.info.pkiId, same.comm.pkiId));
    assert.equal(switches.length, 1);
    assert.ok(bytesEqual(switches[0]?.oldPkiId, old.pkiId) && bytesEqual(switches[0]?.newPkiId, same.comm.pkiId));
    conn.abort();
    await assert.rejects(
      h.outbound.dial({ endpoint: other.endpoint, pkiId: old.pkiId }, signal),
      (e: unknown) => e instanceof GossipError && e.code === ErrorCode.UnexpectedPeer,
    );
    // An unknown expected PKI-ID (no identity learned for it) is refused too.
    await assert.rejects(
      h.outbound.dial({ endpoint: same.endpoint, pkiId: new TestCrypto().pkiId }, signal),
      (e: unknown) => e instanceof GossipError && e.code === ErrorCode.UnexpectedPeer,
    );
    await h.shutdown();
  });

  it("with the user's identities (useIdentities), the switch check asks the user and a dial's identity is not stored; cleared, the store learns again", async () => {
    const { h, same, sameCrypto, other, switches, signal } = switchWorld();
    const old = new TestCrypto({ mspId: "Org1MSP" });
    const asked: string[] = [];
    h.ctx.userIdentities = {
      identityOf: (hex) => {
        asked.push(hex);
        return hex === pkiIdHex(old.pkiId) ? old.identity : undefined;
      },
      verifierOf: () => undefined,
    };
    const stored = h.ctx.identities.size;
    const conn = await h.outbound.dial({ endpoint: same.endpoint, pkiId: old.pkiId }, signal);
    await h.clock.advance(0);
    assert.deepEqual(asked, [pkiIdHex(old.pkiId)], "the user's identity, known to the user only, made it a switch");
    assert.equal(switches.length, 1);
    assert.ok(bytesEqual(conn.info.identity, sameCrypto.identity), "the connection keeps the handshake's identity");
    assert.equal(h.ctx.identities.size, stored, "the comm's store took nothing");
    conn.abort();
    await assert.rejects(
      h.outbound.dial({ endpoint: other.endpoint, pkiId: old.pkiId }, signal),
      (e: unknown) => e instanceof GossipError && e.code === ErrorCode.UnexpectedPeer,
    );
    h.ctx.userIdentities = undefined;
    const again = await h.outbound.dial({ endpoint: other.endpoint }, signal);
    assert.equal(h.ctx.identities.size, stored + 1, "cleared: the store learns the next handshake's identity");
    again.abort();
    await h.shutdown();
  });

  it("close() abandons dial queues and releases blocked senders", async () => {
    const h = setup({ overflowPolicy: "block", sendBuffSize: 1 });
    const b = h.remote("b");
    h.net.partition(["us"], ["b"]);
    const peer = { endpoint: b.endpoint, pkiId: b.comm.pkiId };
    h.outbound.send(peer, frame(0));
    await h.clock.advance(0);
    h.outbound.send(peer, frame(1));
    const blocked = h.outbound.send(peer, frame(2));
    assert.ok(blocked, "the block policy makes the sender wait");
    h.outbound.close();
    await blocked;
    assert.equal(h.outbound.queued, 0);
    assert.equal(h.counts.dropped, 2, "the queued frame and the blocked one");
    h.net.heal();
    await h.shutdown();
  });
});
