// The inbound walk (stream → admission → handshake → store) and the routing
// of what a connection receives, each constructed alone on the in-memory
// transport with a virtual clock: no Comm around them.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { create } from "@bufbuild/protobuf";
import type { CommOptions } from "../../src/core/config.js";
import { encodeEnvelope, encodeUnsignedEnvelope, noopSign, serializeGossipMessage, signMessage } from "../../src/core/envelope.js";
import { authenticationCodes, ErrorCode, GossipError } from "../../src/core/errors.js";
import { handshake } from "../../src/core/handshake.js";
import { bytesEqual, pkiIdHex } from "../../src/core/identity.js";
import { MemoryNetwork } from "../../src/core/memory-transport.js";
import type { ReceivedMessage } from "../../src/core/received-message.js";
import type { WireStream } from "../../src/core/transport.js";
import { VirtualClock } from "../../src/core/virtual-clock.js";
import { AcknowledgementSchema, ConnEstablishSchema, type Envelope, GossipMessageSchema } from "../../src/gen/gossip/message_pb.js";
import { coreParts } from "../helpers/core-parts.js";
import { dataMessage } from "../helpers/messages.js";
import { TestCrypto } from "../helpers/test-crypto.js";

/** An Inbound with its store and router, listening at `us:7051`. */
function setup(options: CommOptions = {}) {
  const clock = new VirtualClock();
  const net = new MemoryNetwork({ clock });
  const { ctx, acks, demux, store, inbound, counts, refused, stop } = coreParts({ clock, crypto: new TestCrypto({ name: "us" }), options });
  const served: Promise<void>[] = [];
  net.listen("us:7051", (s) => served.push(inbound.serve(s)));
  const received: ReceivedMessage[] = [];
  const sub = demux.subscribe(() => true);
  void (async () => {
    for await (const m of sub) received.push(m);
  })();
  /** A stream from `host` to us. */
  const open = (host = "them") => net.dialer(host).openStream("us:7051", { signal: new AbortController().signal });
  /** Our side's part of a handshake from the remote's end. */
  const shake = (stream: WireStream, crypto = new TestCrypto(), probe = false) =>
    handshake(stream, { crypto, pkiId: crypto.pkiId, probe, connTimeoutMs: 60_000, clock });
  const shutdown = async () => {
    const stopped = stop();
    await clock.advanceUntil(() => net.openStreams === 0, { maxMs: 60_000 });
    await stopped;
    await Promise.all(served);
    assert.equal(clock.pending, 0, "no timer left");
  };
  return { clock, net, ctx, acks, store, inbound, counts, refused, received, open, shake, shutdown };
}

const isCode = (code: ErrorCode) => (e: unknown) => e instanceof GossipError && e.code === code;

/** Reads `stream` until it ends; resolves with how it ended. */
async function drainRead(stream: WireStream): Promise<GossipError | "end"> {
  try {
    for await (const _ of stream.incoming) {
      // discard
    }
    return "end";
  } catch (e) {
    return GossipError.from(e);
  }
}

describe("Inbound", () => {
  it("authenticates, registers, and routes: data to subscribers, acks to the registry (by the connection's PKI-ID)", async () => {
    const h = setup();
    const remote = new TestCrypto();
    const s = await h.open();
    const hs = await h.shake(s, remote);
    assert.ok(bytesEqual(hs.pkiId, h.ctx.pkiId));
    await h.clock.advance(0);
    assert.equal(h.store.connections().length, 1);
    assert.equal(h.store.connections()[0]?.info.direction, "inbound");
    const ack = h.acks.expect(42n, pkiIdHex(remote.pkiId), 1000);
    const ackOf42 = create(GossipMessageSchema, {
      nonce: 42n,
      content: { case: "ack", value: create(AcknowledgementSchema, { error: "" }) },
    });
    await s.write([encodeUnsignedEnvelope(dataMessage(7)), encodeUnsignedEnvelope(ackOf42)]);
    await h.clock.advance(0);
    assert.equal(await ack, "");
    assert.deepEqual(
      h.received.map((m) => m.message.nonce),
      [7n],
      "the ack is not delivered to subscribers",
    );
    assert.ok(bytesEqual(h.received[0]?.connection.pkiId, remote.pkiId));
    s.end();
    await h.shutdown();
  });

  it("a peer's connections each keep its identity within their handshake's buffer; the store keeps one per peer", async () => {
    const h = setup();
    const remote = new TestCrypto();
    const first = await h.open();
    await h.shake(first, remote);
    await h.clock.advance(0);
    const identityOfFirst = h.ctx.identities.get(remote.pkiId);
    assert.ok(identityOfFirst !== undefined && bytesEqual(identityOfFirst, remote.identity));
    const second = await h.open();
    await h.shake(second, remote);
    await h.clock.advance(0);
    const conns = h.store.connections();
    assert.ok(conns.length >= 1);
    for (const c of conns) {
      assert.deepEqual(c.info.identity, remote.identity);
      assert.equal(c.info.identity.buffer, c.info.auth.signedData.buffer, "a view of the handshake's buffer, no copy of its own");
    }
    assert.equal(h.ctx.identities.get(remote.pkiId), identityOfFirst, "the store's, the first it learned");
    first.end();
    second.end();
    await h.shutdown();
  });

  it("refuses streams beyond maxUnauthenticatedStreamsPerAddress and maxUnauthenticatedStreams with RESOURCE_EXHAUSTED", async () => {
    const h = setup({ maxUnauthenticatedStreams: 3, maxUnauthenticatedStreamsPerAddress: 2 });
    const silent = [await h.open("x"), await h.open("x")]; // in the handshake, saying nothing
    await h.clock.advance(0);
    assert.equal(h.inbound.inHandshake, 2);
    const third = await h.open("x");
    const r = await drainRead(third);
    assert.ok(r instanceof GossipError && r.code === ErrorCode.RateLimited && r.remoteCode === ErrorCode.RateLimited, String(r));
    silent.push(await h.open("y"));
    const overall = await h.open("z");
    const r2 = await drainRead(overall);
    assert.ok(r2 instanceof GossipError && r2.code === ErrorCode.RateLimited, String(r2));
    assert.deepEqual(h.refused, [ErrorCode.RateLimited, ErrorCode.RateLimited]);
    for (const s of silent) s.abort();
    await h.clock.advance(0);
    assert.equal(h.inbound.inHandshake, 0, "released when they end");
    await h.shutdown();
  });

  it("rate-limits handshakes per address with a token bucket on the clock", async () => {
    const h = setup({ maxHandshakesPerSecondPerAddress: 2 });
    const ok = [await h.open("x"), await h.open("x")];
    await h.clock.advance(0);
    const third = await h.open("x");
    assert.ok(isCode(ErrorCode.RateLimited)(await drainRead(third)));
    await h.clock.advance(500); // one token back
    const fourth = await h.open("x");
    await h.clock.advance(0);
    assert.equal(h.inbound.inHandshake, 3);
    for (const s of [...ok, fourth]) s.abort();
    await h.shutdown();
  });

  it("a silent stream fails the handshake at connTimeout, counted and released", async () => {
    const h = setup({ connTimeoutMs: 2000 });
    const s = await h.open();
    const reading = drainRead(s);
    await h.clock.advance(1999);
    assert.equal(h.inbound.inHandshake, 1);
    await h.clock.advance(1);
    const r = await reading;
    assert.ok(r instanceof GossipError, String(r));
    assert.equal(h.inbound.inHandshake, 0);
    await h.shutdown();
  });

  it("a forged handshake (signed by another key) is refused with UNAUTHENTICATED and counted as a handshake failure", async () => {
    const h = setup();
    const claimed = new TestCrypto();
    const forger = new TestCrypto();
    const s = await h.open();
    const msg = create(GossipMessageSchema, {
      content: {
        case: "conn",
        value: create(ConnEstablishSchema, { pkiId: claimed.pkiId, identity: claimed.identity, tlsCertHash: new Uint8Array(0) }),
      },
    });
    const env = signMessage(forger, msg);
    await s.write([encodeEnvelope(env)]);
    const r = await drainRead(s);
    assert.ok(r instanceof GossipError && r.remoteCode !== undefined && authenticationCodes.has(r.remoteCode), String(r));
    assert.equal(h.counts.handshakeFailures, 1);
    assert.equal(h.store.connections().length, 0);
    await h.shutdown();
  });

  it("a probe is answered and not registered; a prober that stays is let go after connTimeout", async () => {
    const h = setup({ connTimeoutMs: 2000 });
    const s = await h.open();
    const hs = await h.shake(s, new TestCrypto(), true);
    assert.ok(bytesEqual(hs.pkiId, h.ctx.pkiId));
    await h.clock.advance(0);
    assert.equal(h.store.connections().length, 0);
    await h.clock.advance(1999);
    assert.equal(h.net.openStreams, 1, "the prober may still close it itself");
    await h.clock.advance(1);
    assert.equal(h.net.openStreams, 0);
    await h.shutdown();
  });

  it("on stop, streams in the handshake are refused and new ones are refused at once", async () => {
    const h = setup();
    const s = await h.open();
    await h.clock.advance(0);
    const reading = drainRead(s);
    h.ctx.stop();
    h.inbound.refuseHandshaking();
    const r = await reading;
    assert.ok(r instanceof GossipError && r.code === ErrorCode.Closed, String(r));
    const late = await h.open();
    assert.ok(isCode(ErrorCode.Closed)(await drainRead(late)));
    await h.shutdown();
  });

  it("ReadFromStream: a payload that is not a GossipMessage, then a stream error, is one refusal and delivers nothing", async () => {
    const h = setup();
    const remote = new TestCrypto();
    const connMsg = create(GossipMessageSchema, {
      tag: 1,
      content: { case: "conn", value: { pkiId: remote.pkiId, identity: remote.identity } },
    });
    const payload = serializeGossipMessage(connMsg);
    const hsEnv: Envelope = { $typeName: "gossip.Envelope", payload, signature: remote.sign(payload), secretEnvelope: undefined };
    const bad: Envelope = { ...noopSign(connMsg), payload: new Uint8Array([0x01]) };
    let resolveClosed: () => void = () => {};
    const stream: WireStream = {
      remoteAddress: "memory:1",
      tls: false,
      remoteCertHash: undefined,
      localCertHash: undefined,
      incoming: (async function* () {
        yield [hsEnv];
        yield [bad];
        throw new GossipError(ErrorCode.Canceled, "stream broke");
      })(),
      write: () => Promise.resolve(),
      end: () => resolveClosed(),
      abort: () => resolveClosed(),
      closed: new Promise<void>((r) => (resolveClosed = r)),
    };
    await h.inbound.serve(stream);
    await h.clock.advance(0);
    assert.equal(h.received.length, 0);
    assert.deepEqual(h.refused, [ErrorCode.MalformedMessage], "exactly one error reported");
    await h.shutdown();
  });
});
