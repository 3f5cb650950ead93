// What only sockets show: the comm end to end over HTTP/2 and TLS (the
// client dialer's failures, a foreign Fabric-style peer, gRPC statuses, a TCP
// connection dying under a stream, Prometheus names). The comm's own logic is
// tested without sockets in test/core.
import assert from "node:assert/strict";
import { createServer, type Server } from "node:net";
import { describe, it } from "node:test";
import { create, toBinary } from "@bufbuild/protobuf";
import type { Registry } from "prom-client";
import { receivedFrame, serializeGossipMessage } from "../../src/core/envelope.js";
import { authenticationCodes, ErrorCode, GossipError } from "../../src/core/errors.js";
import { bytesEqual, pkiIdHex } from "../../src/core/identity.js";
import { EnvelopeSchema, SecretEnvelopeSchema } from "../../src/gen/gossip/message_pb.js";
import { startForeign } from "../helpers/foreign.js";
import { must } from "../helpers/must.js";
import { caFor, cleanupAfter, collect, dataMessage, eventually, firstMatch, startPeer, toPeer } from "../helpers/peers.js";

const { closers, peer } = cleanupAfter();
const to = toPeer;
const isCode = (code: ErrorCode) => (e: unknown) => e instanceof GossipError && e.code === code;

async function counter(registry: Registry | undefined, name: string): Promise<number> {
  const m = registry?.getSingleMetric(name);
  assert.ok(m, `metric ${name} exists`);
  const v = await m.get();
  return v.values.reduce((s, x) => s + x.value, 0);
}

describe("comm over sockets", () => {
  it("Forward: envelopes relayed by a peer reach the next one as sent, unknown fields and secret envelope included, at any size", async () => {
    const [a, b, c] = [await peer(), await peer(), await peer()];
    const atB = b.comm.accept();
    const atC = c.comm.accept();
    const sent = [10, 1000, 20_000, 70_000].map((size, i) => {
      const env = a.comm.sign(dataMessage(i + 1, new Uint8Array(size).fill(i + 1)));
      env.secretEnvelope = create(SecretEnvelopeSchema, { payload: new Uint8Array([1, 2]), signature: new Uint8Array([3]) });
      env.$unknown = [{ no: 9, wireType: 2, data: new Uint8Array([2, 7, 7]) }];
      return env;
    });
    for (const env of sent) await a.comm.send(env, to(b));
    for (const m of await collect(atB, sent.length, 5000)) {
      assert.ok(receivedFrame(m.envelope), "B's envelopes are still their received bytes");
      await b.comm.forward(m, to(c));
    }
    const got = await collect(atC, sent.length, 5000);
    assert.deepEqual(
      got.map((m) => Buffer.from(toBinary(EnvelopeSchema, m.envelope))),
      sent.map((e) => Buffer.from(toBinary(EnvelopeSchema, e))),
    );
    assert.deepEqual(
      got.map((m) => m.envelope.$unknown?.map((u) => [u.no, u.wireType, Buffer.from(u.data)])),
      sent.map(() => [[9, 2, Buffer.from([2, 7, 7])]]),
    );
    atB.close();
    atC.close();
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

  it("NonResponsivePing: probe of a peer whose Ping hangs fails within connTimeout", async () => {
    const c1 = await peer({ options: { connTimeoutMs: 1000 } });
    const { peer: slow } = await startForeign({ pingDelayMs: 15_000 });
    closers.push(() => slow.close());
    const t0 = Date.now();
    await assert.rejects(c1.comm.probe({ endpoint: slow.endpoint }), isCode(ErrorCode.PingFailed));
    assert.ok(Date.now() - t0 < 5000, `probe took ${Date.now() - t0}ms`);
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

  it("Fabric's TestMetrics: messages_sent, messages_received and overflow_count move (Prometheus names)", async () => {
    const a = await peer({ plugin: { metrics: true } });
    const b = await peer({ plugin: { metrics: true } });
    const sub = b.comm.accept();
    await a.comm.send(dataMessage(0), to(b));
    await collect(sub, 1, 5000);
    const slowReader = (async () => {
      for await (const _ of sub) await new Promise((r) => setTimeout(r, 1));
    })();
    const payload = new Uint8Array(32 * 1024);
    for (let i = 1; i < 50_000 && (await counter(a.app.gossipMetrics?.registry, "gossip_comm_overflow_count")) === 0; i++) {
      await a.comm.send(dataMessage(i, payload), to(b));
      if (i % 50 === 0) await new Promise((r) => setImmediate(r));
    }
    assert.ok((await counter(a.app.gossipMetrics?.registry, "gossip_comm_overflow_count")) >= 1);
    assert.ok((await counter(a.app.gossipMetrics?.registry, "gossip_comm_messages_sent")) >= 1);
    assert.ok((await counter(b.app.gossipMetrics?.registry, "gossip_comm_messages_received")) >= 1);
    const text = await must(a.app.gossipMetrics, "a's Prometheus metrics").registry.metrics();
    assert.match(text, /^gossip_comm_overflow_count \d+/m, "Fabric's exact metric name");
    sub.close();
    await slowReader;
  });

  it("a remote's oversized message ends its stream with RESOURCE_EXHAUSTED and is not delivered", async () => {
    const a = await peer();
    const b = await peer({ options: { maxMessageBytes: 4096 } });
    const sub = b.comm.accept();
    await a.comm.send(dataMessage(1), to(b));
    await collect(sub, 1, 5000);
    await a.comm.send(dataMessage(2, new Uint8Array(10_000)), to(b));
    assert.equal((await collect(sub, 1, 500)).length, 0);
    await eventually(() => b.comm.connections().length === 0, 5000, "b to drop the connection");
    await a.comm.send(dataMessage(3), to(b)); // a reconnects; small messages flow again
    const [m] = await collect(sub, 1, 5000);
    assert.ok(m && bytesEqual(m.connection.pkiId, a.comm.pkiId));
    sub.close();
  });

  it("a connection cut before the ack fails with 'closed' within connTimeout, not at the deadline", async () => {
    const b = await startPeer();
    const a = await startPeer();
    const sessions: { destroy(): void }[] = [];
    b.app.server.on("session", (session: { destroy(): void }) => sessions.push(session));
    const sub = b.comm.accept(); // receives, never acks
    try {
      const t0 = Date.now();
      const pending = a.comm.sendWithAck(dataMessage(8), 20_000, 1, { endpoint: b.endpoint, pkiId: b.comm.pkiId });
      const it = sub[Symbol.asyncIterator]();
      assert.equal((await it.next()).done, false, "b received the message");
      for (const s of sessions) s.destroy(); // the TCP connection dies under the stream
      const r = await pending;
      assert.equal(r.ackCount, 0);
      assert.equal(r.results[0]?.error?.code, ErrorCode.Closed, String(r.results[0]?.error));
      assert.ok(Date.now() - t0 < 5000, `took ${Date.now() - t0} ms`);
    } finally {
      sub.close();
      await Promise.all([a.close(), b.close()]);
    }
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
    assert.ok(
      remoteCode !== undefined && authenticationCodes.has(remoteCode),
      `${closed.error.code} (${remoteCode}): ${closed.error.message}`,
    );
    // A refusal of our own making has none.
    const c = await peer({ tls: false });
    const local = await c.comm.handshake({ endpoint: b.endpoint, pkiId: new Uint8Array(32) }).catch((err: unknown) => err);
    assert.ok(local instanceof GossipError && local.code === ErrorCode.UnexpectedPeer, String(local));
    assert.equal(local.remoteCode, undefined);
  });
});
