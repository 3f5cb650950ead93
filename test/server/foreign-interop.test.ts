// Interoperability with a Fabric-conformant peer we did not build on our
// transport (grpc-js + Hyperledger's published bindings), in both directions,
// over mutual TLS and over h2c.
import assert from "node:assert/strict";
import { after, describe, it } from "node:test";
import { create } from "@bufbuild/protobuf";
import type { ConnectionEvent } from "../../src/core/comm.js";
import { serializeGossipMessage } from "../../src/core/envelope.js";
import { ErrorCode, type GossipError } from "../../src/core/errors.js";
import { pkiIdHex } from "../../src/core/identity.js";
import { GossipMessageSchema } from "../../src/gen/gossip/message_pb.js";
import { GrpcStatus, GrpcStatusError } from "../../src/grpc/status.js";
import { startForeign } from "../helpers/foreign.js";
import type { ForeignPeer } from "../helpers/foreign-peer.js";
import { dataMessage, eventually, firstMatch, startPeer, type TestPeer } from "../helpers/peers.js";

const closers: (() => Promise<void>)[] = [];
after(async () => {
  for (const c of closers.reverse()) await c();
});

async function pair(
  tls: boolean,
  foreignOpts: Parameters<typeof startForeign>[0] = {},
  oursOpts: Parameters<typeof startPeer>[0] = {},
): Promise<{ ours: TestPeer; foreign: ForeignPeer }> {
  const ours = await startPeer({ tls, ...oursOpts });
  const { peer: foreign } = await startForeign({ tls, ...foreignOpts });
  closers.push(
    () => ours.close(),
    () => foreign.close(),
  );
  return { ours, foreign };
}

for (const tls of [true, false]) {
  describe(`with a foreign Fabric-style peer (${tls ? "mutual TLS" : "h2c"})`, () => {
    it("it dials us: both handshakes verify and its messages reach our subscribers with exact 64-bit nonces", async () => {
      const { ours, foreign } = await pair(tls);
      const sub = ours.comm.accept();
      const info = await foreign.connect(ours.endpoint);
      assert.equal(pkiIdHex(info.pkiId), pkiIdHex(ours.comm.pkiId));
      const big = 0xfedcba9876543210n; // above 2^53: must survive exactly
      foreign.sendPayload(pkiIdHex(ours.comm.pkiId), serializeGossipMessage(dataMessage(big)));
      const m = await firstMatch(sub, () => true, 5000);
      assert.equal(m.message.nonce, big);
      assert.equal(pkiIdHex(m.connection.pkiId), foreign.pkiId.toString("hex"));
      assert.equal(m.connection.direction, "inbound");
      sub.close();
    });

    it("we dial it: it verifies our handshake (low-S signature, TLS cert hash) and receives exact nonces", async () => {
      const { ours, foreign } = await pair(tls);
      const big = 0xffffffffffffffffn;
      await ours.comm.send(dataMessage(big), { endpoint: foreign.endpoint, pkiId: foreign.pkiId });
      await foreign.waitFor(() => foreign.received.some((r) => r.nonce === big), 5000);
      assert.deepEqual(foreign.handshakeErrors, []);
      assert.equal(foreign.connectedPeers()[0], pkiIdHex(ours.comm.pkiId));
    });

    it("sendWithAck to it collects its acknowledgement, and a nack's text", async () => {
      const { ours } = await pair(tls);
      const { peer: acker } = await startForeign({ tls, autoAck: "" });
      const { peer: nacker } = await startForeign({ tls, autoAck: "not today" });
      closers.push(
        () => acker.close(),
        () => nacker.close(),
      );
      const res = await ours.comm.sendWithAck(
        dataMessage(1),
        3000,
        2,
        { endpoint: acker.endpoint, pkiId: acker.pkiId },
        { endpoint: nacker.endpoint, pkiId: nacker.pkiId },
      );
      assert.equal(res.ackCount, 1);
      assert.equal(res.nackCount, 1);
      assert.equal(res.toString(), '{"failures":{"not today":1},"successes":1}');
      assert.equal(res.results.find((r) => r.error)?.error?.code, ErrorCode.Nack);
    });

    it("handshake() (probe) to it returns its identity and registers nothing on either side", async () => {
      const { ours, foreign } = await pair(tls);
      const { pkiId } = await ours.comm.handshake({ endpoint: foreign.endpoint });
      assert.equal(pkiIdHex(pkiId), foreign.pkiId.toString("hex"));
      assert.equal(foreign.connectionCount, 0);
      assert.equal(ours.comm.connections().length, 0);
    });

    it("its probe handshake to us is answered and not registered", async () => {
      const { ours, foreign } = await pair(tls);
      const info = await foreign.connect(ours.endpoint, { probe: true });
      assert.equal(pkiIdHex(info.pkiId), pkiIdHex(ours.comm.pkiId));
      await new Promise((r) => setTimeout(r, 100));
      assert.equal(ours.comm.connections().length, 0);
    });
  });
}

describe("with a foreign peer that has Fabric's quirk Q2", () => {
  it("a reconnect under the same PKI-ID is torn down by its clean-up, and the next send succeeds", async () => {
    const { ours: first, foreign } = await pair(true, { quirkQ2: true });
    // A second instance with the same identity: it reconnects while the first connection is still registered.
    const second = await startPeer({ material: first.material });
    closers.push(() => second.close());
    const peer = { endpoint: foreign.endpoint, pkiId: foreign.pkiId };
    await first.comm.send(dataMessage(1), peer);
    await foreign.waitFor(() => foreign.received.some((r) => r.nonce === 1n), 5000);
    await second.comm.send(dataMessage(2), peer);
    await foreign.waitFor(() => foreign.q2Teardowns > 0, 5000);
    // The torn-down connection fails on a later write; sends go on until one arrives on a fresh connection.
    let delivered = false;
    for (let i = 3n; i < 60n && !delivered; i++) {
      await second.comm.send(dataMessage(i), peer);
      await new Promise((r) => setTimeout(r, 100));
      delivered = foreign.received.some((r) => r.nonce >= 3n);
    }
    assert.ok(delivered, "a send after the tear-down reached the foreign peer");
  });
});

describe("messages from the foreign peer", () => {
  it("an ack it sends for an unknown nonce is swallowed, not delivered", async () => {
    const { ours, foreign } = await pair(true);
    const sub = ours.comm.accept();
    await foreign.connect(ours.endpoint);
    const ack = create(GossipMessageSchema, { nonce: 7n, content: { case: "ack", value: { error: "" } } });
    foreign.sendPayload(pkiIdHex(ours.comm.pkiId), serializeGossipMessage(ack));
    foreign.sendPayload(pkiIdHex(ours.comm.pkiId), serializeGossipMessage(dataMessage(8)));
    const first = await firstMatch(sub, () => true, 5000);
    assert.equal(first.message.nonce, 8n);
    sub.close();
  });
});

/** Collects the comm's connection events until it stops. */
function recordConnectionEvents(comm: TestPeer["comm"]): { events: ConnectionEvent[]; done: Promise<void> } {
  const events: ConnectionEvent[] = [];
  const done = (async () => {
    for await (const ev of comm.connectionEvents) events.push(ev);
  })();
  return { events, done };
}

/** Dials that survive a loaded machine (the helper's default is 1 s). */
const slowDial = { dialTimeoutMs: 10_000 };

describe('with a foreign peer that ends streams like Fabric (UNKNOWN "EOF" after our half-close)', () => {
  it("our graceful close after sending is a normal close, promptly, not an error", async () => {
    const { ours, foreign } = await pair(true, { fabricEof: true }, { options: slowDial });
    const rec = recordConnectionEvents(ours.comm);
    const peer = { endpoint: foreign.endpoint, pkiId: foreign.pkiId };
    for (let i = 1; i <= 3; i++) await ours.comm.send(dataMessage(i), peer);
    await foreign.waitFor(() => foreign.received.filter((r) => r.contentField === 8).length === 3, 5000);
    const t0 = performance.now();
    await ours.comm.stop();
    await rec.done;
    const ms = performance.now() - t0;
    const closes = rec.events.filter((e) => e.type === "disconnected");
    assert.equal(closes.length, 1);
    assert.equal(closes[0]?.error, undefined, `closed with ${closes[0]?.error?.message}`);
    assert.ok(ms < 1000, `stop() took ${ms.toFixed(0)} ms`);
  });

  it("a refusal of our identity (UNKNOWN with its reason) is still reported", async () => {
    const { ours, foreign } = await pair(true, { fabricEof: true, refuseAll: "authentication failure" }, { options: slowDial });
    const rec = recordConnectionEvents(ours.comm);
    const dead: GossipError[] = [];
    const deadDone = (async () => {
      for await (const ev of ours.comm.presumedDead) dead.push(ev.error);
    })();
    await ours.comm.send(dataMessage(1), { endpoint: foreign.endpoint, pkiId: foreign.pkiId });
    await foreign.waitFor(() => foreign.handshakeErrors.length > 0, 5000);
    // The refusal ends the registered connection, or (when it overtakes our handshake's read) the dial.
    const reported = () => [...rec.events.filter((e) => e.type === "disconnected").map((e) => e.error), ...dead];
    await eventually(() => reported().length > 0, 5000, "the refusal reported");
    await ours.comm.stop();
    await Promise.all([rec.done, deadDone]);
    const errors = reported();
    assert.equal(errors.length, 1, `one refusal reported, got ${errors.map((e) => e?.message).join("; ")}`);
    assert.equal(errors[0]?.code, ErrorCode.Remote);
    // Fabric sends only a gRPC status: no remoteCode, the status in the cause.
    assert.equal(errors[0]?.remoteCode, undefined);
    const cause = errors[0]?.cause;
    assert.ok(cause instanceof GrpcStatusError && cause.status === GrpcStatus.Unknown, String(cause));
    assert.match(errors[0]?.message ?? "", /authentication failure/);
  });
});
