// Floods and abuse (issue 5, items 1 and 2) on real sockets and real HTTP/2:
// 1,000 streams that never handshake, the handshake rate per address, HTTP/2
// rapid reset, PING and SETTINGS floods, oversized headers, an oversized
// envelope after a valid handshake, and the per-PKI-ID connection limit. Each
// incident ends with a gRPC status or an HTTP/2 error code, is counted in
// Prometheus, logs at most one line (a capturing pino stream counts them),
// delivers nothing, and leaves a legitimate peer sending and receiving.
//
// The abusers connect from other loopback addresses (127.0.0.2-9) than the
// legitimate peer (127.0.0.1): the handshake rate limit is per source address.
import assert from "node:assert/strict";
import * as http2 from "node:http2";
import { createRequire } from "node:module";
import { Writable } from "node:stream";
import { after, before, describe, it } from "node:test";
import type * as fabricTypes from "@hyperledger/fabric-protos";
import { pino } from "pino";
import { serializeGossipMessage } from "../../src/core/envelope.js";
import type { Logger } from "../../src/core/logger.js";
import { createPeerMaterial } from "../../src/pki/certificates.js";
import { ForeignPeer } from "../helpers/foreign-peer.js";
import { grpcFrame, grpcHeaders, type RawResponse, rawRequest } from "../helpers/h2.js";
import * as F from "../helpers/h2-frames.js";
import { caFor, collect, dataMessage, eventually, metricValue, startPeer, type TestPeer } from "../helpers/peers.js";

const fabric = createRequire(import.meta.url)("@hyperledger/fabric-protos") as typeof fabricTypes;
const gossipPath = "/gossip.Gossip/GossipStream";

interface LogLine {
  level: number;
  msg: string;
  [k: string]: unknown;
}

/** A pino logger writing JSON lines into an array (what Fastify's logger would print). */
function capturePino(): { logger: Logger; lines: LogLine[]; since(mark: number): LogLine[] } {
  const lines: LogLine[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const l of chunk.toString("utf8").split("\n")) if (l.trim()) lines.push(JSON.parse(l) as LogLine);
      cb();
    },
  });
  const logger = pino({ level: "debug" }, sink) as unknown as Logger;
  return { logger, lines, since: (mark) => lines.slice(mark).filter((l) => l.level >= 40) };
}

/** Asserts at most one warn-or-worse line per distinct message among `lines`. */
function assertOneLinePerIncident(lines: LogLine[], what: string): void {
  const byMsg = new Map<string, number>();
  for (const l of lines) byMsg.set(l.msg, (byMsg.get(l.msg) ?? 0) + 1);
  for (const [msg, n] of byMsg) assert.ok(n <= 1, `${what}: "${msg}" logged ${n} times`);
}

const portOf = (p: TestPeer) => Number(p.endpoint.slice(p.endpoint.lastIndexOf(":") + 1));
const to = (p: TestPeer) => ({ endpoint: p.endpoint, pkiId: p.comm.pkiId });
const refused = (p: TestPeer, reason: string) => metricValue(p, "gossip_comm_refused_total", { reason });
const inboundHandshakes = (p: TestPeer, outcome: string) =>
  metricValue(p, "gossip_comm_handshakes_total", { direction: "inbound", outcome });
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A raw h2c client session from `localAddress`. */
function rawSession(p: TestPeer, localAddress: string): http2.ClientHttp2Session {
  // http2.connect hands its options to net.connect, which binds the local address.
  // Node's client refuses to send header blocks over 64 KiB unless told otherwise.
  const s = http2.connect(`http://${p.endpoint}`, { localAddress, maxSendHeaderBlockLength: 1 << 20 } as http2.ClientSessionOptions);
  s.on("error", () => {});
  return s;
}

let nonce = 1000;

/**
 * The legitimate peer `legit` (already connected to `server`) sends to it and
 * receives from it, within `ms`: what a flood must not prevent.
 */
async function assertExchange(server: TestPeer, legit: TestPeer, ms = 5000): Promise<void> {
  const atServer = server.comm.accept();
  const atLegit = legit.comm.accept();
  try {
    const n1 = ++nonce;
    const n2 = ++nonce;
    await legit.comm.send(dataMessage(n1), to(server));
    await server.comm.send(dataMessage(n2), to(legit));
    const [got] = await collect(atServer, 1, ms);
    const [back] = await collect(atLegit, 1, ms);
    assert.equal(got?.message.nonce, BigInt(n1), "the server received the legitimate peer's message");
    assert.equal(back?.message.nonce, BigInt(n2), "the legitimate peer received the server's message");
  } finally {
    atServer.close();
    atLegit.close();
  }
}

describe("1,000 GossipStreams that never handshake", () => {
  const log = capturePino();
  let server: TestPeer;
  let legit: TestPeer;

  before(async () => {
    server = await startPeer({
      tls: false,
      // The per-address limits are raised so that the global cap on unauthenticated streams is what binds.
      options: {
        connTimeoutMs: 2000,
        maxUnauthenticatedStreams: 256,
        maxHandshakesPerSecondPerAddress: 100_000,
        maxUnauthenticatedStreamsPerAddress: 100_000,
      },
      plugin: { metrics: true, logger: log.logger },
    });
    legit = await startPeer({ tls: false });
    await assertExchange(server, legit);
  });
  after(async () => {
    await legit?.close();
    await server?.close();
  });

  it("refuses beyond maxUnauthenticatedStreams (RESOURCE_EXHAUSTED) and maxConcurrentStreams (REFUSED_STREAM), cuts the rest at connTimeout, counts, logs once, and a connected peer keeps working", async () => {
    const sub = server.comm.accept((m) => m.connection.endpoint.startsWith("127.0.0.2"));
    const mark = log.lines.length;
    const refusedBefore = await refused(server, "rate_limited");
    const timeoutsBefore = await inboundHandshakes(server, "handshake_timeout");
    const t0 = performance.now();

    // 9 connections x 100 streams through Node's client (it keeps within the
    // server's maxConcurrentStreams of 100) ...
    const sessions = Array.from({ length: 9 }, () => rawSession(server, "127.0.0.2"));
    const calls: Promise<RawResponse>[] = [];
    for (const s of sessions) {
      for (let i = 0; i < 100; i++) calls.push(rawRequest(s, gossipPath, grpcHeaders, [], { endRequest: false, timeoutMs: 15_000 }));
    }
    // ... and one raw connection that ignores the limit: 150 streams, 50 over it.
    const raw = new F.RawH2Connection(portOf(server), { localAddress: "127.0.0.2" });
    await raw.connected;
    for (let i = 0; i < 150; i++) raw.write(F.headersFrames(1 + 2 * i, F.grpcRequestBlock(server.endpoint)));

    // 1,000 streams reached the server: 256 admitted into the handshake, the rest refused at once.
    let gauge = 0;
    let refusedNow = 0;
    const deadline = Date.now() + 10_000;
    for (;;) {
      gauge = await metricValue(server, "gossip_comm_unauthenticated_streams");
      refusedNow = (await refused(server, "rate_limited")) - refusedBefore;
      if (gauge + refusedNow >= 1000 || Date.now() > deadline) break;
      await sleep(20);
    }
    const inFlood = performance.now() - t0;
    if (inFlood < 1900) {
      // Nothing admitted has timed out yet: the cap holds exactly.
      assert.equal(gauge, 256, "unauthenticated gauge at the cap");
      assert.equal(refusedNow, 744, "refusals counted as rate_limited");
    }
    assert.ok(gauge <= 256, `unauthenticated gauge ${gauge} within the cap`);

    // During the flood a connected peer sends and receives.
    await assertExchange(server, legit);

    // The raw connection's streams over maxConcurrentStreams were refused by the HTTP/2 layer.
    await raw.until(() => [...raw.resets().values()].filter((c) => c === F.H2Error.RefusedStream).length >= 50, 5000, "50 REFUSED_STREAM");
    const refusedStreams = [...raw.resets().values()].filter((c) => c === F.H2Error.RefusedStream).length;
    assert.equal(refusedStreams, 50);

    // Every stream ends: refused with RESOURCE_EXHAUSTED (8), or cut at connTimeout with DEADLINE_EXCEEDED (4).
    const results = await Promise.all(calls);
    const statuses = new Map<number | undefined, number>();
    for (const r of results) statuses.set(r.grpcStatus, (statuses.get(r.grpcStatus) ?? 0) + 1);
    assert.deepEqual([...statuses.keys()].sort(), [4, 8], `statuses ${JSON.stringify([...statuses])}`);
    const cutAt = performance.now() - t0;
    assert.ok(cutAt < 2000 + 6000, `all streams ended ${Math.round(cutAt)} ms after the flood began`);
    await eventually(() => server.comm.stats().unauthenticatedStreams === 0, 5000, "unauthenticated streams back to 0");
    const timeouts = (await inboundHandshakes(server, "handshake_timeout")) - timeoutsBefore;
    const refusals = (await refused(server, "rate_limited")) - refusedBefore;
    assert.equal(timeouts + refusals, 1000, `timeouts ${timeouts} + refusals ${refusals}`);
    assert.ok(timeouts >= 256, `${timeouts} admitted streams cut at connTimeout`);

    // Nothing reached a subscriber, and the log holds one line per kind of incident.
    assert.equal((await collect(sub, 1, 100)).length, 0);
    sub.close();
    const lines = log.since(mark);
    assertOneLinePerIncident(lines, "flood");
    const refusedLine = lines.find((l) => l.msg === "inbound stream refused");
    assert.ok(refusedLine, "the refusal was logged");
    assert.equal(refusedLine.code, "rate_limited");
    assert.match(String(refusedLine.address), /^127\.0\.0\.2:/);
    assert.ok(lines.some((l) => l.msg === "handshake failed" && l.code === "handshake_timeout"));

    for (const s of sessions) s.close();
    raw.destroy();
    await assertExchange(server, legit);
  });
});

describe("abuse against a peer with default limits", () => {
  const log = capturePino();
  let server: TestPeer;
  let legit: TestPeer;
  const maxMessageBytes = 4096;

  before(async () => {
    server = await startPeer({
      tls: false,
      options: {
        connTimeoutMs: 1000,
        maxMessageBytes,
        maxConnectionsPerPeer: 2,
        drainTimeoutMs: 3000,
        serverKeepaliveIntervalMs: 500,
        serverKeepaliveTimeoutMs: 1000,
        // Above the 50 handshakes the rate test's bucket admits, so that the rate is what binds there.
        maxUnauthenticatedStreamsPerAddress: 64,
      },
      plugin: { metrics: true, logger: log.logger },
    });
    legit = await startPeer({ tls: false });
    await assertExchange(server, legit);
  });
  after(async () => {
    await legit?.close();
    await server?.close();
  });

  it("handshakes per source address per second: beyond 50/s refused with RESOURCE_EXHAUSTED, counted, another address unaffected", async () => {
    const mark = log.lines.length;
    const before = await refused(server, "rate_limited");
    const t0 = performance.now();
    const sessions = [rawSession(server, "127.0.0.3"), rawSession(server, "127.0.0.3")];
    const calls: Promise<RawResponse>[] = [];
    for (const s of sessions)
      for (let i = 0; i < 60; i++) calls.push(rawRequest(s, gossipPath, grpcHeaders, [], { endRequest: false, timeoutMs: 10_000 }));
    // A peer at another address connects (and handshakes) during the flood.
    const newcomer = await startPeer({ tls: false });
    try {
      await assertExchange(server, newcomer);
      const results = await Promise.all(calls);
      const elapsed = (performance.now() - t0) / 1000;
      const refusedCount = results.filter((r) => r.grpcStatus === 8).length;
      const admitted = results.filter((r) => r.grpcStatus === 4).length;
      assert.equal(refusedCount + admitted, 120, "every stream refused (8) or cut at connTimeout (4)");
      // A bucket of 50 tokens refilled at 50/s: the streams admitted are bounded by the time the flood took.
      assert.ok(admitted >= 50 && admitted <= 50 + Math.ceil(50 * elapsed), `admitted ${admitted} in ${elapsed.toFixed(2)} s`);
      assert.equal((await refused(server, "rate_limited")) - before, refusedCount, "each refusal counted");
      const lines = log.since(mark);
      assertOneLinePerIncident(lines, "handshake rate");
      const line = lines.find((l) => l.msg === "inbound stream refused");
      assert.match(String(line?.err), /maxHandshakesPerSecondPerAddress 50/);
    } finally {
      for (const s of sessions) s.close();
      await newcomer.close();
    }
  });

  it("unauthenticated streams per source address: beyond the cap refused with RESOURCE_EXHAUSTED, counted, other addresses admitted", async () => {
    const perAddress = await startPeer({
      tls: false,
      options: { connTimeoutMs: 1000, maxUnauthenticatedStreamsPerAddress: 8 },
      plugin: { metrics: true, logger: log.logger },
    });
    const mark = log.lines.length;
    const session = rawSession(perAddress, "127.0.0.6");
    const other = rawSession(perAddress, "127.0.0.7");
    try {
      const calls: Promise<RawResponse>[] = [];
      for (let i = 0; i < 20; i++) calls.push(rawRequest(session, gossipPath, grpcHeaders, [], { endRequest: false, timeoutMs: 10_000 }));
      for (const deadline = Date.now() + 5000; (await refused(perAddress, "rate_limited")) < 12; await sleep(20)) {
        assert.ok(Date.now() < deadline, "12 refusals counted within 5 s");
      }
      assert.equal(await refused(perAddress, "rate_limited"), 12);
      assert.equal(perAddress.comm.stats().unauthenticatedStreams, 8, "8 admitted from 127.0.0.6");
      // Another address is still admitted while 127.0.0.6 holds its 8.
      const otherCall = rawRequest(other, gossipPath, grpcHeaders, [], { endRequest: false, timeoutMs: 10_000 });
      await eventually(() => perAddress.comm.stats().unauthenticatedStreams === 9, 5000, "127.0.0.7 admitted");
      const results = await Promise.all(calls);
      assert.equal(results.filter((r) => r.grpcStatus === 8).length, 12);
      assert.equal(results.filter((r) => r.grpcStatus === 4).length, 8, "the admitted ones cut at connTimeout");
      assert.equal((await otherCall).grpcStatus, 4);
      // One line per incident and address: 127.0.0.6's refusals and timeouts, 127.0.0.7's timeout.
      const lines = log.since(mark);
      assertOneLinePerIncident(
        lines.filter((l) => String(l.address).startsWith("127.0.0.6")),
        "per-address cap",
      );
      assertOneLinePerIncident(
        lines.filter((l) => String(l.address).startsWith("127.0.0.7")),
        "the other address",
      );
      assert.match(String(lines.find((l) => l.msg === "inbound stream refused")?.err), /maxUnauthenticatedStreamsPerAddress 8/);
    } finally {
      session.close();
      other.close();
      await perAddress.close();
    }
  });

  it("HTTP/2 rapid reset (HEADERS + RST_STREAM in a loop): GOAWAY ENHANCE_YOUR_CALM and the connection closed after maxStreamResetsPerSecond, counted, one log line, server responsive", async () => {
    const mark = log.lines.length;
    const before = await refused(server, "too_many_resets");
    const raw = new F.RawH2Connection(portOf(server), { localAddress: "127.0.0.4" });
    await raw.connected;
    const t0 = Date.now();
    let sent = 0;
    for (; sent < 10_000 && !raw.isClosed && Date.now() - t0 < 5000; sent++) {
      const id = 1 + 2 * sent;
      if (!raw.write(Buffer.concat([F.headersFrames(id, F.grpcRequestBlock(server.endpoint)), F.rstStream(id)]))) {
        await Promise.race([raw.drained(), sleep(50)]);
      }
      if (sent % 500 === 499) await sleep(1); // let the server's answers in
    }
    await raw.until(() => raw.isClosed, 5000, "server closes the connection");
    const goAway = raw.goAway();
    assert.ok(goAway, "a GOAWAY before the close");
    assert.equal(goAway.code, F.H2Error.EnhanceYourCalm);
    assert.ok(goAway.lastStreamId < 2 * 2000, `GOAWAY after ${goAway.lastStreamId} (stream id): the cost was bounded`);
    assert.equal((await refused(server, "too_many_resets")) - before, 1, "one incident counted");
    const lines = log.since(mark);
    assertOneLinePerIncident(lines, "rapid reset");
    assert.ok(lines.some((l) => l.msg.includes("rapid reset") && String(l.address).startsWith("127.0.0.4")));
    await assertExchange(server, legit);
  });

  it("a legitimate client that cancels a few streams is not cut", async () => {
    const s = rawSession(server, "127.0.0.8");
    try {
      for (let i = 0; i < 20; i++) {
        const st = s.request({ ":method": "POST", ":path": gossipPath, ...grpcHeaders });
        st.on("error", () => {});
        await new Promise((r) => st.once("response", r));
        st.close(http2.constants.NGHTTP2_CANCEL);
      }
      await sleep(100);
      assert.equal(s.closed || s.destroyed, false, "session still open");
      const res = await rawRequest(s, "/gossip.Gossip/Ping", { "content-type": "application/json" }, [Buffer.from("{}")]);
      assert.equal(res.headers[":status"], 200);
    } finally {
      s.close();
    }
  });

  for (const kind of ["PING", "SETTINGS"] as const) {
    it(`a flood of ${kind} frames: the HTTP/2 layer detects it (GOAWAY, connection closed), counted, one log line, others unaffected`, async () => {
      const mark = log.lines.length;
      const before = await refused(server, "malformed_frame");
      const raw = new F.RawH2Connection(portOf(server), { localAddress: kind === "PING" ? "127.0.0.5" : "127.0.0.9" });
      await raw.connected;
      const f = kind === "PING" ? F.ping() : F.settings([[0x3, 100]]);
      const burst = Buffer.concat(Array.from({ length: 1000 }, () => f));
      const t0 = Date.now();
      for (let i = 0; i < 100 && !raw.isClosed && Date.now() - t0 < 5000; i++) {
        if (!raw.write(burst)) await Promise.race([raw.drained(), sleep(50)]);
      }
      await raw.until(() => raw.isClosed, 5000, "server closes the flooding connection");
      assert.equal(raw.goAway()?.code, F.H2Error.InternalError, "nghttp2's flood detection answers GOAWAY INTERNAL_ERROR");
      assert.ok(raw.acks[kind === "PING" ? "ping" : "settings"] < 100_000, "not every frame was answered");
      assert.equal((await refused(server, "malformed_frame")) - before, 1, "counted once");
      const lines = log.since(mark);
      assertOneLinePerIncident(lines, `${kind} flood`);
      const line = lines.find((l) => l.msg === "HTTP/2 session error");
      assert.match(String(line?.err), /Flooding was detected/);
      await assertExchange(server, legit);
    });
  }

  it("a PING flood paced to read every ACK costs the server bounded work: the connected peer's messages keep flowing", async () => {
    const raw = new F.RawH2Connection(portOf(server), { localAddress: "127.0.0.5" });
    await raw.connected;
    const pinging = (async () => {
      const t0 = Date.now();
      for (let i = 0; i < 40 && !raw.isClosed && Date.now() - t0 < 3000; i++) {
        raw.write(Buffer.concat(Array.from({ length: 250 }, () => F.ping())));
        await raw.until(() => raw.acks.ping >= (i + 1) * 250 || raw.isClosed, 3000, "ACKs");
      }
    })();
    const t0 = performance.now();
    await assertExchange(server, legit, 3000);
    const ms = performance.now() - t0;
    await pinging;
    assert.ok(ms < 2000, `exchange took ${Math.round(ms)} ms during the PING flood`);
    raw.destroy();
  });

  it("oversized headers (100 KB in 10 fields): RESOURCE_EXHAUSTED (8) for gRPC, HTTP 431 for Connect, counted, one log line, server alive", async () => {
    const mark = log.lines.length;
    const before = await refused(server, "headers_too_large");
    const big: http2.OutgoingHttpHeaders = {};
    for (let i = 0; i < 10; i++) big[`x-big-${i}`] = "a".repeat(10_000);
    const s = rawSession(server, "127.0.0.6");
    try {
      const sub = server.comm.accept((m) => m.connection.endpoint.startsWith("127.0.0.6"));
      const grpc = await rawRequest(s, gossipPath, { ...grpcHeaders, ...big }, [], { endRequest: false });
      assert.equal(grpc.grpcStatus, 8);
      assert.match(decodeURIComponent(String(grpc.headers["grpc-message"])), /maxHeaderListBytes 16384/);
      const connect = await rawRequest(s, "/gossip.Gossip/Ping", { "content-type": "application/json", ...big }, [Buffer.from("{}")]);
      assert.equal(connect.headers[":status"], 431);
      assert.equal((await refused(server, "headers_too_large")) - before, 2);
      assert.equal((await collect(sub, 1, 100)).length, 0);
      sub.close();
    } finally {
      s.close();
    }
    const lines = log.since(mark);
    assertOneLinePerIncident(lines, "oversized headers");
    assert.ok(lines.some((l) => l.msg === "request refused" && l.code === "headers_too_large" && l.address === "127.0.0.6"));
    await assertExchange(server, legit);
  });

  it("oversized headers sent before acknowledging SETTINGS (raw) are refused the same way", async () => {
    const before = await refused(server, "headers_too_large");
    const raw = new F.RawH2Connection(portOf(server), { localAddress: "127.0.0.6", ackSettings: false });
    await raw.connected;
    const extra: [string, string][] = Array.from({ length: 10 }, (_, i) => [`x-big-${i}`, "a".repeat(10_000)]);
    raw.write(F.headersFrames(1, F.grpcRequestBlock(server.endpoint, gossipPath, extra)));
    await eventually(() => raw.frames.some((f) => f.type === F.FrameType.Headers && f.streamId === 1), 3000, "response headers");
    assert.equal((await refused(server, "headers_too_large")) - before, 1);
    raw.destroy();
  });

  it("one header field of 100 KB: nghttp2 answers GOAWAY COMPRESSION_ERROR, and the PING watchdog closes the connection nghttp2 left open", async () => {
    const raw = new F.RawH2Connection(portOf(server), { localAddress: "127.0.0.7" });
    await raw.connected;
    raw.write(F.headersFrames(1, F.grpcRequestBlock(server.endpoint, gossipPath, [["x-big", "a".repeat(100_000)]])));
    await raw.until(() => raw.goAway() !== undefined, 3000, "GOAWAY");
    assert.equal(raw.goAway()?.code, 0x9, "COMPRESSION_ERROR");
    // Interval 500 ms + timeout 1000 ms: closed well within 5 s.
    await raw.until(() => raw.isClosed, 5000, "server closes the socket");
    await assertExchange(server, legit);
  });

  it("an envelope over maxMessageBytes after a valid handshake: RESOURCE_EXHAUSTED (8), counted, one log line with PKI-ID and address, nothing delivered", async () => {
    const mark = log.lines.length;
    const before = await refused(server, "message_too_large");
    const m = createPeerMaterial({ mspId: "Org1MSP", ca: caFor("Org1MSP"), commonName: "big.sender" });
    const client = await ForeignPeer.start({
      mspId: "Org1MSP",
      identityCert: m.identity.certPem,
      identityKey: m.identity.keyPem,
      trustedRoots: { Org1MSP: [caFor("Org1MSP").certPem] },
    });
    const sub = server.comm.accept((msg) => msg.connection.pkiId.length > 0 && Buffer.from(msg.connection.pkiId).equals(client.pkiId));
    try {
      const raw = client.openRawStream(server.endpoint);
      raw.stream.write(client.connEstablish());
      const small = new fabric.gossip.Envelope();
      small.setPayload(serializeGossipMessage(dataMessage(7)));
      raw.stream.write(small);
      const [first] = await collect(sub, 1, 3000);
      assert.equal(first?.message.nonce, 7n, "the handshake was valid and a small message went through");
      const big = new fabric.gossip.Envelope();
      big.setPayload(serializeGossipMessage(dataMessage(8, new Uint8Array(2 * maxMessageBytes))));
      raw.stream.write(big);
      const status = (await Promise.race([raw.ended, sleep(3000).then(() => "open")])) as { code?: number };
      assert.equal(status.code, 8);
      assert.equal((await collect(sub, 1, 200)).length, 0, "the oversized message was not delivered");
      assert.equal((await refused(server, "message_too_large")) - before, 1);
      const lines = log.since(mark);
      assertOneLinePerIncident(lines, "oversized envelope");
      const line = lines.find((l) => l.code === "message_too_large");
      assert.ok(line, "logged");
      assert.equal(line.pkiId, client.pkiId.toString("hex"));
      assert.match(String(line.address), /^127\.0\.0\.1:\d+$/);
    } finally {
      sub.close();
      await client.close();
    }
    await assertExchange(server, legit);
  });

  it("connections per PKI-ID: beyond maxConnectionsPerPeer (2, open plus closing) refused with RESOURCE_EXHAUSTED, counted, logged once", async () => {
    const mark = log.lines.length;
    const before = await refused(server, "rate_limited");
    const m = createPeerMaterial({ mspId: "Org1MSP", ca: caFor("Org1MSP"), commonName: "many.conns" });
    const client = await ForeignPeer.start({
      mspId: "Org1MSP",
      identityCert: m.identity.certPem,
      identityKey: m.identity.keyPem,
      trustedRoots: { Org1MSP: [caFor("Org1MSP").certPem] },
    });
    // Node's raw client keeps its side of a stream open after the server's
    // status (grpc-js would close it), so replaced connections stay "closing".
    const session = http2.connect(`http://${server.endpoint}`);
    session.on("error", () => {});
    try {
      const streams = [];
      for (let i = 0; i < 4; i++) {
        const st = session.request({ ":method": "POST", ":path": gossipPath, ...grpcHeaders });
        st.on("error", () => {});
        let status: string | undefined;
        let data = 0;
        st.on("response", (h) => (status = (h["grpc-status"] as string | undefined) ?? status));
        st.on("trailers", (t) => (status = t["grpc-status"] as string | undefined));
        st.on("data", (d: Buffer) => (data += d.length));
        st.write(grpcFrame(Buffer.from(client.connEstablish().serializeBinary())));
        streams.push({ st, status: () => status, data: () => data });
        // The server's handshake came back; then our handshake has been judged.
        await eventually(() => data > 0, 3000, "server handshake");
        await sleep(150);
      }
      // The first registers; the second replaces it (the first drains, still counted); the rest are over the limit.
      const codes = streams.map((x) => x.status());
      assert.deepEqual(codes.slice(2), ["8", "8"], `statuses ${JSON.stringify(codes)}`);
      assert.equal(codes[1], undefined, "the newest allowed connection stays open");
      assert.equal((await refused(server, "rate_limited")) - before, 2);
      const lines = log.since(mark);
      assertOneLinePerIncident(lines, "per-PKI limit");
      const line = lines.find((l) => l.msg === "inbound connection refused");
      assert.equal(line?.pkiId, client.pkiId.toString("hex"));
      assert.match(String(line?.err), /maxConnectionsPerPeer 2/);
      assert.match(String(line?.address), /^127\.0\.0\.1:\d+$/);
    } finally {
      session.destroy();
      await client.close();
    }
    await assertExchange(server, legit);
  });
});
