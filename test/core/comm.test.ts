// Fabric's comm_test.go scenarios, ported to real HTTP/2 peers with real TLS
// certificates (and a Fabric-style foreign peer where Fabric uses a fake one).
import assert from "node:assert/strict";
import { createServer, type Server } from "node:net";
import { describe, it } from "node:test";
import { create } from "@bufbuild/protobuf";
import { Comm } from "../../src/core/comm.js";
import { noopSign, serializeGossipMessage } from "../../src/core/envelope.js";
import { authenticationCodes, ErrorCode, GossipError } from "../../src/core/errors.js";
import { bytesEqual, pkiIdHex } from "../../src/core/identity.js";
import { noopMetrics } from "../../src/core/metrics.js";
import type { WireStream } from "../../src/core/transport.js";
import { X509CryptoService } from "../../src/core/x509-crypto.js";
import { type Envelope, GossipMessageSchema } from "../../src/gen/gossip/message_pb.js";
import { createPeerMaterial } from "../../src/pki/certificates.js";
import { startForeign } from "../helpers/foreign.js";
import { caFor, cleanupAfter, collect, dataMessage, eventually, firstMatch, type TestPeer, toPeer } from "../helpers/peers.js";

const { closers, peer } = cleanupAfter();
const to = toPeer;
const isCode = (code: ErrorCode) => (e: unknown) => e instanceof GossipError && e.code === code;

describe("Fabric comm scenarios", () => {
  it("MutualParallelSendWithAck: 1000 concurrent sendWithAck each way are all received (blocking sends drop nothing)", async () => {
    const [a, b] = await Promise.all([peer(), peer()]);
    const subA = a.comm.accept();
    const subB = b.comm.accept();
    await a.comm.send(dataMessage(0), to(b));
    assert.equal((await collect(subB, 1, 5000)).length, 1);
    const n = 1000;
    const results = [
      ...Array.from({ length: n }, (_, i) => a.comm.sendWithAck(dataMessage(i + 1), 3000, 1, to(b))),
      ...Array.from({ length: n }, (_, i) => b.comm.sendWithAck(dataMessage(i + 1), 3000, 1, to(a))),
    ];
    const [gotA, gotB] = await Promise.all([collect(subA, n, 20_000), collect(subB, n, 20_000)]);
    assert.equal(gotA.length, n);
    assert.equal(gotB.length, n);
    const settled = await Promise.all(results);
    assert.ok(settled.every((r) => r.results[0]?.error?.code === ErrorCode.AckTimeout), "nobody acked");
    subA.close();
    subB.close();
  });

  it("ConnectUnexpectedPeer: a PKI-ID switch within the expected org is accepted (identity-switch event), across orgs refused", async () => {
    const trust = { O: caFor("O"), A: caFor("A"), B: caFor("B") };
    const [c1, c2, c3, c4] = await Promise.all([
      peer({ mspId: "O", trust }),
      peer({ mspId: "A", trust }),
      peer({ mspId: "B", trust }),
      peer({ mspId: "A", trust }),
    ]);
    // comm1 learns comm4's identity, then forgets the connection.
    const sub1 = c1.comm.accept();
    await c4.comm.send(dataMessage(1), to(c1));
    await collect(sub1, 1, 5000);
    c1.comm.closeConn(to(c4));
    sub1.close();

    const switches = c1.comm.identitySwitch[Symbol.asyncIterator]();
    const sub2 = c2.comm.accept();
    await c1.comm.send(dataMessage(2), { endpoint: c2.endpoint, pkiId: c4.comm.pkiId });
    const got = await collect(sub2, 1, 5000);
    assert.equal(got.length, 1, "same organization: delivered to comm2");
    const ev = await switches.next();
    assert.ok(!ev.done && bytesEqual(ev.value.oldPkiId, c4.comm.pkiId) && bytesEqual(ev.value.newPkiId, c2.comm.pkiId));
    await switches.return?.();

    const dead = c1.comm.presumedDead[Symbol.asyncIterator]();
    const sub3 = c3.comm.accept();
    await c1.comm.send(dataMessage(3), { endpoint: c3.endpoint, pkiId: c4.comm.pkiId });
    assert.equal((await collect(sub3, 1, 1500)).length, 0, "another organization: refused");
    const d = await dead.next();
    assert.ok(!d.done && d.value.error.code === ErrorCode.UnexpectedPeer);
    await dead.return?.();
    sub2.close();
    sub3.close();
  });

  it("GetConnectionInfo: a received message carries the sender's PKI-ID and its source envelope", async () => {
    const [c1, c2] = await Promise.all([peer(), peer()]);
    const sub = c1.comm.accept();
    await c2.comm.send(dataMessage(1), to(c1));
    const [m] = await collect(sub, 1, 10_000);
    assert.ok(m);
    assert.ok(bytesEqual(m.connection.pkiId, c2.comm.pkiId));
    assert.ok(m.envelope.payload.length > 0);
    sub.close();
  });

  it("CloseConn: after closeConn the remote's stream is closed and it can no longer send on it", async () => {
    const c1 = await peer();
    const { peer: client } = await startForeign();
    closers.push(() => client.close());
    const sub = c1.comm.accept();
    await client.connect(c1.endpoint);
    client.sendPayload(pkiIdHex(c1.comm.pkiId), serializeGossipMessage(dataMessage(1)));
    assert.equal((await collect(sub, 1, 1000)).length, 1);
    c1.comm.closeConn({ endpoint: "", pkiId: client.pkiId });
    await eventually(() => client.connectionCount === 0, 5000, "the foreign peer's stream to end");
    assert.throws(() => client.sendPayload(pkiIdHex(c1.comm.pkiId), serializeGossipMessage(dataMessage(2))));
    sub.close();
  });

  it("CommSend: two peers sending to each other every millisecond both make progress", async () => {
    const [a, b] = await Promise.all([peer(), peer()]);
    const subA = a.comm.accept();
    const subB = b.comm.accept();
    const want = (20 + 20) * 2;
    let stop = false;
    const sender = (from: TestPeer, dest: TestPeer) =>
      (async () => {
        for (let i = 0; i < 5000 && !stop; i++) {
          await from.comm.send(dataMessage(i), to(dest));
          await new Promise((r) => setTimeout(r, 1));
        }
      })();
    const loops = [sender(a, b), sender(b, a)];
    const [gotA, gotB] = await Promise.all([collect(subA, want, 30_000), collect(subB, want, 30_000)]);
    stop = true;
    await Promise.all(loops);
    assert.equal(gotA.length, want);
    assert.equal(gotB.length, want);
    subA.close();
    subB.close();
  });

  it("NonResponsivePing: probe of a peer whose Ping hangs fails within connTimeout", async () => {
    const c1 = await peer({ options: { connTimeoutMs: 1000 } });
    const { peer: slow } = await startForeign({ pingDelayMs: 15_000 });
    closers.push(() => slow.close());
    const t0 = Date.now();
    await assert.rejects(c1.comm.probe({ endpoint: slow.endpoint }), isCode(ErrorCode.PingFailed));
    assert.ok(Date.now() - t0 < 5000, `probe took ${Date.now() - t0}ms`);
  });

  it("Responses: a reply sent with respond() arrives on the same connection", async () => {
    const [c1, c2] = await Promise.all([peer(), peer()]);
    const sub1 = c1.comm.accept();
    const responder = (async () => {
      for await (const m of sub1) {
        await m.respond(create(GossipMessageSchema, { nonce: m.message.nonce + 1n, content: { case: "empty", value: {} } }));
        break;
      }
    })();
    const sub2 = c2.comm.accept();
    const nonce = 0xfffffffffffffff0n;
    await c2.comm.send(dataMessage(nonce), to(c1));
    const reply = await firstMatch(sub2, () => true, 10_000);
    assert.equal(reply.message.nonce, nonce + 1n);
    assert.ok(bytesEqual(reply.connection.pkiId, c1.comm.pkiId));
    assert.equal(c2.comm.connections().length, 1, "one connection, both directions");
    await responder;
    sub2.close();
  });

  it("Accept: predicate subscriptions get only their messages, and stop() ends them", async () => {
    const [c1, c2] = await Promise.all([peer(), peer()]);
    const even = c1.comm.accept((m) => m.message.nonce % 2n === 0n);
    const odd = c1.comm.accept((m) => m.message.nonce % 2n === 1n);
    const seen = { even: [] as bigint[], odd: [] as bigint[] };
    const read = (sub: typeof even, into: bigint[]) =>
      (async () => {
        for await (const m of sub) into.push(m.message.nonce);
      })();
    const readers = [read(even, seen.even), read(odd, seen.odd)];
    for (let i = 0; i < 2000 && seen.even.length + seen.odd.length < 80; i++) {
      await c2.comm.send(dataMessage(BigInt(Math.floor(Math.random() * 1e9))), to(c1));
      if (i % 20 === 19) await new Promise((r) => setTimeout(r, 5));
    }
    await eventually(() => seen.even.length + seen.odd.length >= 80, 10_000, "80 messages");
    await c1.comm.stop();
    await Promise.all(readers); // both subscriptions ended
    assert.ok(seen.even.length > 0 && seen.odd.length > 0);
    assert.ok(seen.even.every((n) => n % 2n === 0n));
    assert.ok(seen.odd.every((n) => n % 2n === 1n));
  });

  it("ReConnections: after a peer restarts on a new port, sends to it are delivered", async () => {
    const c1 = await peer();
    const c2 = await peer();
    const sub2 = c2.comm.accept();
    await c1.comm.send(dataMessage(1), to(c2));
    assert.equal((await collect(sub2, 1, 5000)).length, 1);
    const sub1 = c1.comm.accept();
    await c2.comm.send(dataMessage(2), to(c1));
    assert.equal((await collect(sub1, 1, 5000)).length, 1);
    sub1.close();
    await c1.close();
    const c1b = await peer({ material: c1.material });
    const sub1b = c1b.comm.accept();
    await c2.comm.send(dataMessage(3), to(c1b));
    const got = await firstMatch(sub1b, (m) => m.message.nonce === 3n, 10_000);
    assert.ok(got);
    sub1b.close();
    sub2.close();
  });

  it("Probe: probe and handshake succeed to a live peer, fail to a non-gRPC listener and to a stopped peer, with PKI-ID rules", async () => {
    const c1 = await peer({ options: { dialTimeoutMs: 500 } });
    let c2 = await peer();
    await c1.comm.probe(to(c2));
    const id = await c1.comm.handshake({ endpoint: c2.endpoint });
    assert.ok(bytesEqual(id.pkiId, c2.comm.pkiId));
    const wrong = Uint8Array.from(c2.comm.pkiId);
    wrong[0] = (wrong[0] ?? 0) ^ 0xff;
    await assert.rejects(c1.comm.handshake({ endpoint: c2.endpoint, pkiId: wrong }), isCode(ErrorCode.UnexpectedPeer));

    // Reads and discards, never answers: a socket that is never read would not
    // see the client's FIN and would keep the listener (and this file) open.
    const silent: Server = createServer((s) => s.resume());
    await new Promise<void>((r) => silent.listen(0, "127.0.0.1", r));
    closers.push(() => new Promise((r) => silent.close(() => r())));
    const silentEp = `127.0.0.1:${(silent.address() as { port: number }).port}`;
    await assert.rejects(c1.comm.probe({ endpoint: silentEp }), isCode(ErrorCode.DialTimeout));
    await assert.rejects(c1.comm.handshake({ endpoint: silentEp }), isCode(ErrorCode.DialTimeout));

    await c2.close();
    await assert.rejects(c1.comm.probe(to(c2)), isCode(ErrorCode.DialFailed));
    await assert.rejects(c1.comm.handshake(to(c2)), isCode(ErrorCode.DialFailed));
    c2 = await peer({ material: c2.material });
    await c1.comm.probe(to(c2));
    await c2.comm.probe(to(c1));
    assert.ok(bytesEqual((await c2.comm.handshake({ endpoint: c1.endpoint })).pkiId, c1.comm.pkiId));
  });

  it("PresumedDead: sends to a peer that stopped emit presumed-dead within 3 s", async () => {
    const c1 = await peer();
    const c2 = await peer();
    const sub2 = c2.comm.accept();
    await c1.comm.send(dataMessage(1), to(c2));
    assert.equal((await collect(sub2, 1, 5000)).length, 1);
    sub2.close();
    const dead = c1.comm.presumedDead[Symbol.asyncIterator]();
    await c2.close();
    const t0 = Date.now();
    const sends = (async () => {
      for (let i = 0; i < 5; i++) {
        await c1.comm.send(dataMessage(i), to(c2));
        await new Promise((r) => setTimeout(r, 200));
      }
    })();
    const ev = await Promise.race([dead.next(), new Promise<never>((_, rej) => setTimeout(() => rej(new Error("no presumed-dead")), 3000))]);
    assert.ok(!ev.done && bytesEqual(ev.value.pkiId, c2.comm.pkiId));
    assert.ok(Date.now() - t0 < 3000);
    await sends;
    await dead.return?.();
  });

  it("SendBadEnvelope: a client that sends a payload that is not a GossipMessage has its stream closed", async () => {
    const c1 = await peer();
    const { peer: client } = await startForeign();
    closers.push(() => client.close());
    const sub = c1.comm.accept();
    await client.connect(c1.endpoint);
    const good = serializeGossipMessage(dataMessage(1, new Uint8Array([1, 2, 3])));
    client.sendPayload(pkiIdHex(c1.comm.pkiId), good);
    const [m] = await collect(sub, 1, 5000);
    assert.deepEqual(Buffer.from(m?.envelope.payload ?? []), Buffer.from(good));
    for (let i = 0; i < 100 && client.connectionCount > 0; i++) {
      client.sendPayload(pkiIdHex(c1.comm.pkiId), new Uint8Array([0x01]));
      await new Promise((r) => setTimeout(r, 20));
    }
    await eventually(() => client.connectionCount === 0, 5000, "the bad client's stream to be closed");
    assert.equal((await collect(sub, 1, 200)).length, 0, "the bad envelope was not delivered");
    sub.close();
  });

  it("ConcurrentCloseSend: sending in a tight loop while the remote stops neither throws nor hangs", async () => {
    const c1 = await peer();
    const c2 = await peer();
    await c1.comm.send(dataMessage(0), to(c2));
    const loop = (async () => {
      for (let i = 0; i < 20_000; i++) {
        await c1.comm.send(dataMessage(i), to(c2));
        if (i % 100 === 0) await new Promise((r) => setImmediate(r));
      }
    })();
    await new Promise((r) => setTimeout(r, 50));
    await c2.close();
    await loop;
  });
});

describe("ReadFromStream (in memory)", () => {
  it("a stream yielding an envelope with payload 0x01 then an error reports one error and delivers nothing", async () => {
    const mA = createPeerMaterial({ mspId: "Org1MSP", ca: caFor("Org1MSP") });
    const mB = createPeerMaterial({ mspId: "Org1MSP", ca: caFor("Org1MSP") });
    const roots = { Org1MSP: [caFor("Org1MSP").certPem] };
    const cryptoA = new X509CryptoService({ mspId: "Org1MSP", certificate: mA.identity.certPem, privateKey: mA.identity.keyPem, trustedRoots: roots });
    const cryptoB = new X509CryptoService({ mspId: "Org1MSP", certificate: mB.identity.certPem, privateKey: mB.identity.keyPem, trustedRoots: roots });
    let refused = 0;
    const comm = new Comm({
      crypto: cryptoA,
      dialer: { openStream: () => Promise.reject(new Error("no dialing")), ping: () => Promise.reject(new Error("no dialing")) },
      metrics: { ...noopMetrics, refused: () => refused++ },
    });
    // The remote's handshake message, signed by B.
    const connMsg = create(GossipMessageSchema, {
      tag: 1,
      content: { case: "conn", value: { pkiId: cryptoB.pkiId, identity: cryptoB.identity } },
    });
    const payload = serializeGossipMessage(connMsg);
    const handshakeEnv: Envelope = { $typeName: "gossip.Envelope", payload, signature: cryptoB.sign(payload), secretEnvelope: undefined };
    const bad: Envelope = { ...noopSign(connMsg), payload: new Uint8Array([0x01]) };
    let resolveClosed: () => void = () => {};
    const stream: WireStream = {
      remoteAddress: "memory:1",
      tls: false,
      remoteCertHash: undefined,
      localCertHash: undefined,
      incoming: (async function* () {
        yield [handshakeEnv];
        yield [bad];
        throw new GossipError(ErrorCode.Canceled, "stream broke");
      })(),
      write: () => Promise.resolve(),
      end: () => resolveClosed(),
      abort: () => resolveClosed(),
      closed: new Promise<void>((r) => (resolveClosed = r)),
    };
    const sub = comm.accept();
    await comm.handleStream(stream);
    assert.equal((await collect(sub, 1, 100)).length, 0);
    assert.equal(refused, 1, "exactly one error reported");
    await comm.stop();
  });
});

describe("errors from the remote", () => {
  it("a connection the remote refuses closes with the remote's reason in remoteCode", async () => {
    const b = await peer({ tls: false }); // trusts Org1MSP only
    const a = await peer({ tls: false, mspId: "Org2MSP", trust: { Org1MSP: caFor("Org1MSP") } });
    const disconnected = firstMatch(a.comm.connectionEvents, (e) => e.type === "disconnected", 5000);
    await a.comm.send(dataMessage(1), to(b)); // our side of the handshake succeeds; b then refuses us
    const closed = await disconnected;
    assert.ok(closed?.error, "the connection closed with an error");
    const remoteCode = closed.error.remoteCode;
    assert.ok(remoteCode !== undefined && authenticationCodes.has(remoteCode), `${closed.error.code} (${remoteCode}): ${closed.error.message}`);
    // A refusal of our own making has none.
    const c = await peer({ tls: false });
    const local = await c.comm.handshake({ endpoint: b.endpoint, pkiId: new Uint8Array(32) }).catch((err: unknown) => err);
    assert.ok(local instanceof GossipError && local.code === ErrorCode.UnexpectedPeer, String(local));
    assert.equal(local.remoteCode, undefined);
  });
});
