// Fabric's comm_test.go scenarios on the in-memory transport and a virtual
// clock: deterministic, and seconds of Fabric timing in milliseconds. What
// only sockets show is in test/server/comm-sockets.test.ts.
import assert from "node:assert/strict";
import { describe } from "node:test";
import { create } from "@bufbuild/protobuf";
import { authenticationCodes, ErrorCode, GossipError } from "../../src/core/errors.js";
import { bytesEqual, pkiIdHex, sha256 } from "../../src/core/identity.js";
import type { Dialer } from "../../src/core/transport.js";
import { X509CryptoService } from "../../src/core/x509-crypto.js";
import { GossipMessageSchema } from "../../src/gen/gossip/message_pb.js";
import { createCa, createPeerMaterial } from "../../src/pki/certificates.js";
import { memTest, target } from "../helpers/memory-peers.js";
import { dataMessage } from "../helpers/messages.js";

const isCode = (code: ErrorCode) => (e: unknown) => e instanceof GossipError && e.code === code;
const nonces = (ms: readonly { message: { nonce: bigint } }[]) => ms.map((m) => m.message.nonce);

describe("Fabric comm scenarios (in memory)", () => {
  memTest("MutualParallelSendWithAck: 500 concurrent sendWithAck each way are all received, and all time out unacknowledged", async (c) => {
    const a = c.peer();
    const b = c.peer();
    const n = 500;
    const results = [
      ...Array.from({ length: n }, (_, i) => a.comm.sendWithAck(dataMessage(i), 3000, 1, target(b))),
      ...Array.from({ length: n }, (_, i) => b.comm.sendWithAck(dataMessage(i), 3000, 1, target(a))),
    ];
    await c.until(() => a.received.length === n && b.received.length === n, 1000, 1);
    assert.equal(c.clock.now() < 1000, true);
    await c.advance(3000);
    const settled = await Promise.all(results);
    assert.ok(
      settled.every((r) => r.results[0]?.error?.code === ErrorCode.AckTimeout),
      "nobody acked",
    );
    assert.equal(a.comm.stats().pendingAcks, 0);
  });

  memTest(
    "ConnectUnexpectedPeer: a PKI-ID switch within the expected org is accepted (identity-switch event), across orgs refused",
    async (c) => {
      const trusted = ["O", "A", "B"];
      const c1 = c.peer({ mspId: "O", trusted });
      const c2 = c.peer({ mspId: "A", trusted });
      const c3 = c.peer({ mspId: "B", trusted });
      const c4 = c.peer({ mspId: "A", trusted });
      // c1 learns c4's identity, then forgets the connection.
      void c4.comm.send(dataMessage(1), target(c1));
      await c.until(() => c1.received.length === 1);
      c1.comm.closeConn(target(c4));
      await c.until(() => c1.comm.connections().length === 0);

      const switches: { oldPkiId: Uint8Array; newPkiId: Uint8Array }[] = [];
      void (async () => {
        for await (const e of c1.comm.identitySwitch) switches.push(e);
      })();
      void c1.comm.send(dataMessage(2), { endpoint: c2.endpoint, pkiId: c4.comm.pkiId });
      await c.until(() => c2.received.length === 1);
      assert.equal(switches.length, 1);
      assert.ok(bytesEqual(switches[0]?.oldPkiId, c4.comm.pkiId) && bytesEqual(switches[0]?.newPkiId, c2.comm.pkiId));

      void c1.comm.send(dataMessage(3), { endpoint: c3.endpoint, pkiId: c4.comm.pkiId });
      await c.until(() => c1.dead.length === 1);
      assert.equal(c1.dead[0]?.error.code, ErrorCode.UnexpectedPeer);
      assert.ok(bytesEqual(c1.dead[0]?.pkiId, c4.comm.pkiId));
      await c.advance(1000);
      assert.equal(c3.received.length, 0, "another organization: refused");
    },
  );

  memTest("GetConnectionInfo: a received message carries the sender's PKI-ID, identity and source envelope", async (c) => {
    const [a, b] = [c.peer(), c.peer()];
    void b.comm.send(dataMessage(1), target(a));
    await c.until(() => a.received.length === 1);
    const m = a.received[0];
    assert.ok(m && bytesEqual(m.connection.pkiId, b.comm.pkiId));
    assert.ok(bytesEqual(m.connection.identity, b.crypto.identity));
    assert.equal(m.connection.direction, "inbound");
    assert.ok(m.envelope.payload.length > 0);
  });

  memTest(
    "useHexNames: a peer that dials us is keyed on the user's string for its hex, asked once per handshake; not after undefined",
    async (c) => {
      const [a, b, d] = [c.peer(), c.peer(), c.peer()];
      const asked: string[] = [];
      a.comm.useHexNames((hex) => {
        asked.push(hex);
        return hex === pkiIdHex(b.comm.pkiId) ? `${hex}` : undefined;
      });
      void b.comm.send(dataMessage(1), target(a));
      await c.until(() => a.received.length === 1);
      assert.deepEqual(asked, [pkiIdHex(b.comm.pkiId)]);
      assert.equal(a.received[0]?.connection.pkiIdHex, pkiIdHex(b.comm.pkiId));
      a.comm.useHexNames(undefined);
      void d.comm.send(dataMessage(2), target(a));
      await c.until(() => a.received.length === 2);
      assert.deepEqual(asked, [pkiIdHex(b.comm.pkiId)], "not asked once cleared");
      assert.equal(a.received[1]?.connection.pkiIdHex, pkiIdHex(d.comm.pkiId));
    },
  );

  memTest(
    "useIdentities: a handshake presenting an identity the user holds a verifier for is checked with that verifier, not validated again; one that rejects refuses it",
    async (c) => {
      const [a, b, d] = [c.peer(), c.peer(), c.peer()];
      let validated = 0;
      const validate = a.crypto.validateIdentity.bind(a.crypto);
      a.crypto.validateIdentity = (identity) => {
        validated++;
        validate(identity);
      };
      let checked = 0;
      const held = (crypto: typeof b.crypto, accept: boolean) => ({
        verify(signature: Uint8Array, data: Uint8Array) {
          checked++;
          if (!accept) throw new GossipError(ErrorCode.BadSignature, "held verifier refuses");
          a.crypto.verify(crypto.identity, signature, data);
        },
        expiresAt: undefined,
      });
      const bHex = pkiIdHex(b.comm.pkiId);
      const dHex = pkiIdHex(d.comm.pkiId);
      a.comm.useIdentities({
        identityOf: (hex) => (hex === bHex ? b.crypto.identity : hex === dHex ? d.crypto.identity : undefined),
        verifierOf: (hex, identity) =>
          hex === bHex && bytesEqual(identity, b.crypto.identity)
            ? held(b.crypto, true)
            : hex === dHex && bytesEqual(identity, d.crypto.identity)
              ? held(d.crypto, false)
              : undefined,
      });
      void b.comm.send(dataMessage(1), target(a));
      await c.until(() => a.received.length === 1);
      assert.equal(validated, 0, "b's identity: not validated again");
      assert.ok(checked > 0, "b's handshake signature: checked with the held verifier");
      const checkedBefore = checked;
      void d.comm.send(dataMessage(2), target(a));
      await c.advance(1000);
      assert.equal(a.received.length, 1, "d's handshake: refused by the verifier held for it");
      assert.ok(checked > checkedBefore, "d's verifier was asked");
      assert.equal(a.comm.stats().handshakeFailures, 1, "counted as a failed handshake");
      a.comm.useIdentities(undefined);
      a.comm.closeConn(target(b));
      await c.until(() => a.comm.connections().length === 0);
      void b.comm.send(dataMessage(3), target(a));
      await c.until(() => a.received.length === 2);
      assert.ok(validated > 0, "cleared: validated by the crypto again");
    },
  );

  memTest("CloseConn: the connection closes on both sides without presumed-dead, and the next send dials again", async (c) => {
    const [a, b] = [c.peer(), c.peer()];
    void a.comm.send(dataMessage(1), target(b));
    await c.until(() => b.received.length === 1);
    a.comm.closeConn(target(b));
    await c.until(() => a.comm.connections().length === 0 && b.comm.connections().length === 0);
    assert.deepEqual(
      b.events.map((e) => e.type),
      ["connected", "disconnected"],
    );
    assert.equal(a.dead.length, 0);
    void a.comm.send(dataMessage(2), target(b));
    await c.until(() => b.received.length === 2);
    assert.equal(a.dials.count, 2);
  });

  memTest("CommSend: two peers sending to each other every millisecond share one connection and deliver everything in order", async (c) => {
    const [a, b] = [c.peer(), c.peer()];
    const rounds = 200;
    for (let i = 0; i < rounds; i++) {
      void a.comm.send(dataMessage(i), target(b));
      void b.comm.send(dataMessage(i), target(a));
      await c.advance(1);
    }
    await c.until(() => a.received.length === rounds && b.received.length === rounds);
    const want = Array.from({ length: rounds }, (_, i) => BigInt(i));
    assert.deepEqual(nonces(a.received), want);
    assert.deepEqual(nonces(b.received), want);
    await c.advance(10_000);
    assert.equal(a.comm.connections().length, 1);
    assert.equal(b.comm.connections().length, 1);
  });

  memTest("Responses: a reply sent with respond() arrives on the same connection", async (c) => {
    const a = c.peer({ collect: false });
    const b = c.peer();
    const sub = a.comm.accept();
    void (async () => {
      for await (const m of sub)
        await m.respond(create(GossipMessageSchema, { nonce: m.message.nonce + 1n, content: { case: "empty", value: {} } }));
    })();
    const nonce = 0xfffffffffffffff0n;
    void b.comm.send(dataMessage(nonce), target(a));
    await c.until(() => b.received.length === 1);
    assert.equal(b.received[0]?.message.nonce, nonce + 1n);
    assert.ok(bytesEqual(b.received[0]?.connection.pkiId, a.comm.pkiId));
    assert.equal(b.comm.connections().length, 1, "one connection, both directions");
    assert.equal(b.dials.count, 1);
    assert.equal(a.dials.count, 0);
  });

  memTest("Accept: predicate subscriptions get only their messages, and stop() ends them", async (c) => {
    const a = c.peer({ collect: false });
    const b = c.peer({ options: { overflowPolicy: "block" } });
    const even = a.comm.accept((m) => m.message.nonce % 2n === 0n);
    const odd = a.comm.accept((m) => m.message.nonce % 2n === 1n);
    const seen = { even: [] as bigint[], odd: [] as bigint[] };
    const read = async (sub: typeof even, into: bigint[]) => {
      for await (const m of sub) into.push(m.message.nonce);
    };
    const readers = [read(even, seen.even), read(odd, seen.odd)];
    // Blocking sends: nothing is dropped while the first dial is under way.
    for (let i = 0; i < 100; i++) await b.comm.send(dataMessage(i * 7), target(a));
    await c.until(() => seen.even.length + seen.odd.length === 100);
    await a.stop();
    await Promise.all(readers); // both subscriptions ended
    assert.deepEqual(
      seen.even,
      Array.from({ length: 50 }, (_, i) => BigInt(2 * i * 7)),
    );
    assert.deepEqual(
      seen.odd,
      Array.from({ length: 50 }, (_, i) => BigInt((2 * i + 1) * 7)),
    );
  });

  memTest("ReConnections: after a peer restarts (same identity, same endpoint), sends to it are delivered", async (c) => {
    const a = c.peer();
    const b = c.peer();
    void a.comm.send(dataMessage(1), target(b));
    await c.until(() => b.received.length === 1);
    await b.stop();
    // b comes back: a new comm with the same identity on the same endpoint.
    const b2 = c.peer({ crypto: b.crypto });
    b2.listener.close();
    const listener = c.net.listen(b.endpoint, (s) => void b2.comm.handleStream(s));
    try {
      for (let i = 2; i < 10 && b2.received.length === 0; i++) {
        void a.comm.send(dataMessage(i), target(b));
        await c.advance(100);
      }
      assert.ok(b2.received.length >= 1, "delivered after the restart");
      assert.equal(a.dials.count, 2);
    } finally {
      listener.close();
    }
  });

  memTest("Probe: probe and handshake succeed to a live peer, fail to nobody and to a stopped peer, with PKI-ID rules", async (c) => {
    const a = c.peer({ options: { dialTimeoutMs: 500 } });
    const b = c.peer();
    await a.comm.probe(target(b));
    const id = await a.comm.handshake({ endpoint: b.endpoint });
    assert.ok(bytesEqual(id.pkiId, b.comm.pkiId));
    assert.ok(bytesEqual(id.identity, b.crypto.identity));
    const wrong = Uint8Array.from(b.comm.pkiId);
    wrong[0] = (wrong[0] ?? 0) ^ 0xff;
    await assert.rejects(a.comm.handshake({ endpoint: b.endpoint, pkiId: wrong }), isCode(ErrorCode.UnexpectedPeer));
    await c.advance(0);
    assert.equal(a.comm.connections().length + b.comm.connections().length, 0, "a deep probe registers nothing on either side");
    assert.equal(c.net.openStreams, 0);
    await assert.rejects(a.comm.probe({ endpoint: "nobody:1" }), isCode(ErrorCode.DialFailed));
    await b.stop();
    await assert.rejects(a.comm.probe(target(b)), isCode(ErrorCode.DialFailed));
    await assert.rejects(a.comm.handshake(target(b)), isCode(ErrorCode.DialFailed));
  });

  memTest(
    "Probe: a peer behind a partition fails the probe at dialTimeout + connTimeout on the comm's clock, leaving no timer",
    async (c) => {
      const a = c.peer({ options: { dialTimeoutMs: 1000, connTimeoutMs: 500 } });
      const b = c.peer();
      c.net.partition([a.host], [b.host]);
      const failed: unknown[] = [];
      void a.comm.probe(target(b)).catch((e: unknown) => failed.push(e));
      void a.comm.handshake(target(b)).catch((e: unknown) => failed.push(e));
      await c.advance(1499);
      assert.equal(failed.length, 0);
      await c.advance(1);
      assert.equal(failed.length, 1, "the probe's deadline is dialTimeout + connTimeout");
      assert.ok(isCode(ErrorCode.DialTimeout)(failed[0]), String(failed[0]));
      const hsDeadline = a.comm.config.dialTimeoutMs + a.comm.config.handshakeTimeoutMs;
      await c.advance(hsDeadline - 1500);
      assert.equal(failed.length, 2, "the deep probe's deadline is dialTimeout + handshakeTimeout");
      assert.ok(isCode(ErrorCode.DialTimeout)(failed[1]), String(failed[1]));
      c.net.heal();
    },
    { dialTimeoutMs: 600_000 },
  );

  memTest("PresumedDead: sends to a peer that went down emit presumed-dead with its PKI-ID", async (c) => {
    const [a, b] = [c.peer(), c.peer()];
    void a.comm.send(dataMessage(1), target(b));
    await c.until(() => b.received.length === 1);
    b.listener.close(); // the host crashes: its streams are cut, dials refused
    for (let i = 0; i < 5; i++) {
      void a.comm.send(dataMessage(i), target(b));
      await c.advance(200);
    }
    assert.ok(a.dead.length >= 1);
    assert.ok(a.dead.every((d) => bytesEqual(d.pkiId, b.comm.pkiId)));
    assert.equal(a.dead.at(-1)?.error.code, ErrorCode.DialFailed);
  });

  memTest("ConcurrentCloseSend: sending in a tight loop while the remote stops neither throws nor hangs", async (c) => {
    const [a, b] = [c.peer(), c.peer()];
    void a.comm.send(dataMessage(0), target(b));
    await c.until(() => b.received.length === 1);
    const stopping = b.stop();
    for (let i = 0; i < 5000; i++) {
      void a.comm.send(dataMessage(i), target(b));
      if (i % 100 === 0) await new Promise((r) => setImmediate(r));
    }
    await stopping;
    const s = a.comm.stats();
    assert.ok(s.messagesSent + s.overflow + s.dropped + s.sendBuffered <= 5001);
  });

  memTest("stop(): pending acks fail with 'comm is stopping', later calls refuse, connections drain on both sides", async (c) => {
    const [a, b] = [c.peer(), c.peer()];
    const pending = a.comm.sendWithAck(dataMessage(1), 60_000, 1, target(b));
    await c.until(() => b.received.length === 1);
    await a.stop();
    const r = await pending;
    assert.equal(r.results[0]?.error?.code, ErrorCode.Stopping);
    assert.equal(r.results[0]?.error?.message, "comm is stopping");
    const later = await a.comm.sendWithAck(dataMessage(2), 500, 1, target(b));
    assert.equal(later.results[0]?.error?.code, ErrorCode.Stopping);
    await assert.rejects(a.comm.probe(target(b)), isCode(ErrorCode.Stopping));
    await a.comm.send(dataMessage(3), target(b)); // a no-op
    await c.until(() => b.comm.connections().length === 0);
    assert.equal(a.comm.connections().length, 0);
    await a.comm.stop(); // idempotent
  });
});

describe("authentication with X.509 identities and TLS binding (in memory)", () => {
  const ca = createCa({ commonName: "ca.org1", organization: "Org1MSP" });
  const x509 = () => {
    const m = createPeerMaterial({ mspId: "Org1MSP", ca });
    return new X509CryptoService({
      mspId: "Org1MSP",
      certificate: m.identity.certPem,
      privateKey: m.identity.keyPem,
      trustedRoots: { Org1MSP: [ca.certPem] },
    });
  };
  const certHash = (n: number) => sha256(new Uint8Array([n]));

  memTest("peers with X.509 identities authenticate each other and bind their TLS certificates", async (c) => {
    const a = c.peer({ crypto: x509(), certHash: certHash(1) });
    const b = c.peer({ crypto: x509(), certHash: certHash(2) });
    void a.comm.send(dataMessage(1), target(b));
    await c.until(() => b.received.length === 1);
    assert.ok(bytesEqual(b.received[0]?.connection.pkiId, a.comm.pkiId));
  });

  memTest("a handshake that signs another certificate's hash than the one on the connection is refused (UNAUTHENTICATED)", async (c) => {
    const b = c.peer({ crypto: x509(), certHash: certHash(2) });
    // a signs the hash of a certificate it does not present.
    const lying = (d: Dialer): Dialer => ({
      // The stream with one property overridden (a memory stream is a class instance: its methods are not own properties).
      openStream: async (ep, o) => Object.create(await d.openStream(ep, o), { localCertHash: { value: certHash(9) } }),
      ping: (ep, o) => d.ping(ep, o),
    });
    const a = c.peer({ crypto: x509(), certHash: certHash(1), wrapDialer: lying });
    void a.comm.send(dataMessage(1), target(b));
    await c.until(() => a.events.some((e) => e.type === "disconnected") || a.dead.length > 0);
    const refusal = a.events.find((e) => e.type === "disconnected")?.error ?? a.dead[0]?.error;
    assert.ok(refusal?.remoteCode !== undefined && authenticationCodes.has(refusal.remoteCode), `${refusal?.code}: ${refusal?.message}`);
    await c.advance(100);
    assert.equal(b.received.length, 0);
    assert.equal(b.comm.stats().handshakeFailures, 1);
    assert.equal(b.comm.connections().length, 0);
  });

  memTest(
    "without membership, the comm's own store keeps a peer's verifier: its next handshakes are checked with it, not validated again, however many identities came between",
    async (c) => {
      const b = c.peer({ crypto: x509() });
      const a = c.peer({ crypto: x509() });
      let validated = 0;
      const validate = b.crypto.validateIdentity.bind(b.crypto);
      b.crypto.validateIdentity = (identity) => {
        validated++;
        validate(identity);
      };
      void a.comm.send(dataMessage(1), target(b));
      await c.until(() => b.received.length === 1);
      assert.equal(validated, 1, "first contact: validated");
      // More identities than the crypto remembers (8) meet b in between.
      for (let i = 0; i < 10; i++) {
        const o = c.peer({ crypto: x509() });
        void o.comm.send(dataMessage(100 + i), target(b));
      }
      await c.until(() => b.received.length === 11);
      b.comm.closeConn(target(a));
      await c.until(() => a.comm.connections().length === 0);
      const before = validated;
      void a.comm.send(dataMessage(2), target(b));
      await c.until(() => b.received.length === 12);
      assert.equal(validated, before, "a's second handshake: checked with the verifier b's store kept");
    },
  );

  memTest("an identity from an untrusted CA is refused", async (c) => {
    const other = createCa({ commonName: "ca.rogue", organization: "Org1MSP" });
    const m = createPeerMaterial({ mspId: "Org1MSP", ca: other });
    const rogue = new X509CryptoService({
      mspId: "Org1MSP",
      certificate: m.identity.certPem,
      privateKey: m.identity.keyPem,
      trustedRoots: { Org1MSP: [other.certPem, ca.certPem] },
    });
    const b = c.peer({ crypto: x509() });
    const a = c.peer({ crypto: rogue });
    void a.comm.send(dataMessage(1), target(b));
    await c.until(() => b.comm.stats().handshakeFailures === 1);
    await c.advance(100);
    assert.equal(b.received.length, 0);
    assert.equal(b.comm.connections().length, 0);
  });
});
