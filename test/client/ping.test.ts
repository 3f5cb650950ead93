// GossipClient.ping() against a loopback h2c server whose answer each test
// sets: what a caller is told for every kind of answer (success, refusals,
// gRPC errors, malformed bodies, resets, silence, aborts), what goes on the
// wire, and the connection bookkeeping around a call (connect-node's stream
// count, reconnection when the connection is gone).
import assert from "node:assert/strict";
import type { EventEmitter } from "node:events";
import * as http2 from "node:http2";
import type { AddressInfo } from "node:net";
import { after, before, describe, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { GossipClient } from "../../src/client/gossip-client.js";
import { GuardedSessionManager } from "../../src/client/session-manager.js";
import { ErrorCode, GossipError } from "../../src/core/errors.js";

type Answer = (stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders) => void;

const empty = Buffer.from([0, 0, 0, 0, 0]);
const grpcHeaders = { ":status": 200, "content-type": "application/grpc" };

/** Answers like a gRPC server: headers, `body`, grpc-status 0 in the trailers. */
const answerWith =
  (...body: Buffer[]): Answer =>
  (stream) => {
    stream.respond(grpcHeaders, { waitForTrailers: true });
    stream.once("wantTrailers", () => stream.sendTrailers({ "grpc-status": "0" }));
    for (const b of body) stream.write(b);
    stream.end();
  };
const ok = answerWith(empty);

let server: http2.Http2Server;
let endpoint: string;
let answer: Answer = ok;
const seen: http2.IncomingHttpHeaders[] = [];
const serverSessions = new Set<http2.ServerHttp2Session>();
const held: http2.ServerHttp2Stream[] = [];
const clients: GossipClient[] = [];

before(async () => {
  server = http2.createServer();
  server.on("session", (s) => {
    serverSessions.add(s);
    s.on("close", () => serverSessions.delete(s));
    s.on("error", () => {});
  });
  server.on("stream", (stream, headers) => {
    stream.on("error", () => {});
    seen.push(headers);
    // The request body (one empty frame) is read, then answered.
    stream.resume();
    stream.once("end", () => {
      if (!stream.destroyed) answer(stream, headers);
    });
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  endpoint = `127.0.0.1:${(server.address() as AddressInfo).port}`;
});

after(async () => {
  for (const c of clients) c.close();
  for (const s of held) if (!s.destroyed) s.destroy();
  for (const s of serverSessions) s.destroy();
  await new Promise<void>((r) => server.close(() => r()));
});

async function client(options: { connTimeoutMs?: number; maxMessageBytes?: number } = {}): Promise<GossipClient> {
  const c = await GossipClient.connect(endpoint, { options });
  clients.push(c);
  return c;
}

/** The error `p` rejects with: a PingFailed GossipError. */
async function pingFailure(p: Promise<unknown>): Promise<GossipError> {
  try {
    await p;
  } catch (e) {
    assert.ok(e instanceof GossipError, `expected a GossipError, got ${String(e)}`);
    assert.equal(e.code, ErrorCode.PingFailed, e.message);
    return e;
  }
  assert.fail("expected the ping to fail");
}

const causeCode = (e: GossipError): unknown => (e.cause instanceof GossipError ? e.cause.code : undefined);

describe("GossipClient.ping answers", () => {
  it("resolves on an empty message with grpc-status 0, also 32 at a time on one connection", async () => {
    answer = ok;
    const c = await client();
    await c.ping();
    await Promise.all(Array.from({ length: 32 }, () => c.ping()));
  });

  it("resolves on an Empty split over two DATA frames, and on an Empty carrying unknown fields", async () => {
    const c = await client();
    answer = (stream) => {
      stream.respond(grpcHeaders, { waitForTrailers: true });
      stream.once("wantTrailers", () => stream.sendTrailers({ "grpc-status": "0" }));
      stream.write(empty.subarray(0, 2));
      setTimeout(() => stream.end(empty.subarray(2)), 20);
    };
    await c.ping();
    answer = answerWith(Buffer.from([0, 0, 0, 0, 3, 0x08, 0x96, 0x01]));
    await c.ping();
    answer = answerWith(empty.subarray(0, 3), Buffer.from([0, 2, 0x08, 0x01]));
    await c.ping();
  });

  it("resolves on a response without a message (grpc-status 0 only)", async () => {
    answer = answerWith();
    const c = await client();
    await c.ping();
  });

  it("rejects two messages, a truncated frame, bad frame flags and an oversized frame as malformed", async () => {
    const c = await client({ maxMessageBytes: 1024 });
    answer = answerWith(empty, empty);
    assert.match((await pingFailure(c.ping())).message, /failed: malformed response$/);
    answer = answerWith(Buffer.concat([empty, empty]));
    assert.match((await pingFailure(c.ping())).message, /failed: malformed response$/);
    answer = answerWith(Buffer.from([0, 0, 0, 0, 9, 1, 2]));
    assert.match((await pingFailure(c.ping())).message, /failed: malformed response$/);
    answer = answerWith(Buffer.from([0, 0, 0]));
    assert.match((await pingFailure(c.ping())).message, /failed: malformed response$/);
    answer = answerWith(Buffer.from([2, 0, 0, 0, 0]));
    assert.match((await pingFailure(c.ping())).message, /invalid gRPC frame flags 0x2/);
    answer = answerWith(Buffer.from([0, 0, 0, 0x10, 0]));
    assert.match((await pingFailure(c.ping())).message, /message size 4096 is larger than configured maxMessageBytes 1024/);
    // A good ping on the same connection afterwards.
    answer = ok;
    await c.ping();
  });

  it("reports an HTTP refusal and a wrong content type with the Remote error as the cause", async () => {
    const c = await client();
    answer = (stream) => {
      stream.respond({ ":status": 404 });
      stream.end();
    };
    let e = await pingFailure(c.ping());
    assert.match(e.message, /answered HTTP 404 to Ping/);
    assert.equal(causeCode(e), ErrorCode.Remote);
    answer = (stream) => {
      stream.respond({ ":status": 200, "content-type": "text/plain" });
      stream.end("hello");
    };
    e = await pingFailure(c.ping());
    assert.match(e.message, /answered content-type text\/plain to Ping/);
    assert.equal(causeCode(e), ErrorCode.Remote);
  });

  it("reports a gRPC error status from the trailers and from a trailers-only response, typed by the status", async () => {
    const c = await client();
    answer = (stream) => {
      stream.respond(grpcHeaders, { waitForTrailers: true });
      stream.once("wantTrailers", () => stream.sendTrailers({ "grpc-status": "14", "grpc-message": "going%20away" }));
      stream.end();
    };
    let e = await pingFailure(c.ping());
    assert.match(e.message, /gRPC status 14: going away/);
    assert.ok(e.cause instanceof GossipError);
    answer = (stream) => {
      stream.respond({ ...grpcHeaders, "grpc-status": "7", "grpc-message": "denied" }, { endStream: true });
    };
    e = await pingFailure(c.ping());
    assert.match(e.message, /gRPC status 7: denied/);
    assert.ok(e.cause instanceof GossipError);
    answer = (stream) => {
      stream.respond(grpcHeaders, { waitForTrailers: true });
      stream.once("wantTrailers", () => stream.sendTrailers({ "grpc-status": "x" }));
      stream.end(empty);
    };
    e = await pingFailure(c.ping());
    assert.match(e.message, /invalid grpc-status/);
  });

  it("rejects a response that ends without a gRPC status, and a reset stream", async () => {
    const c = await client();
    answer = (stream) => {
      stream.respond(grpcHeaders);
      stream.end(empty);
    };
    assert.match((await pingFailure(c.ping())).message, /stream closed without a gRPC status/);
    answer = (stream) => stream.close(http2.constants.NGHTTP2_INTERNAL_ERROR);
    await pingFailure(c.ping());
  });
});

describe("GossipClient.ping deadlines and aborts", () => {
  it("times out after timeoutMs with 'timed out', resets the stream, and sends grpc-timeout for each timeout", async () => {
    const c = await client({ connTimeoutMs: 2000 });
    answer = (stream) => held.push(stream);
    const t0 = performance.now();
    const e = await pingFailure(c.ping(150));
    const ms = performance.now() - t0;
    assert.match(e.message, /timed out$/);
    assert.ok(ms >= 130 && ms < 1500, `timed out after ${ms} ms`);
    const stream = held.at(-1);
    assert.ok(stream);
    await new Promise<void>((r) => (stream.closed ? r() : stream.once("close", () => r())));
    assert.equal(stream.rstCode, http2.constants.NGHTTP2_CANCEL);
    answer = ok;
    seen.length = 0;
    await c.ping();
    await c.ping(150);
    await c.ping(150);
    await c.ping();
    assert.deepEqual(
      seen.map((h) => h["grpc-timeout"]),
      ["2000m", "150m", "150m", "2000m"],
    );
    for (const h of seen) {
      assert.equal(h[":path"], "/gossip.Gossip/Ping");
      assert.equal(h[":method"], "POST");
      assert.equal(h["content-type"], "application/grpc+proto");
      assert.equal(h.te, "trailers");
      // Nothing beyond what gRPC needs and the deadline: each header costs the server CPU per Ping (issue 12).
      assert.deepEqual(Object.keys(h).sort(), [":authority", ":method", ":path", ":scheme", "content-type", "grpc-timeout", "te"]);
    }
  });

  it("times out each of several calls at the default timeout at its own deadline (one shared timer), and answered calls still resolve", async () => {
    const c = await client({ connTimeoutMs: 300 });
    await c.ping();
    // The first and third calls are held, the second answered: each held
    // call fails at its own start + 300 ms, not at the first call's.
    let n = 0;
    answer = (stream, headers) => (n++ === 1 ? ok(stream, headers) : held.push(stream));
    const timed = (p: Promise<void>) => {
      const t0 = performance.now();
      return p.then(
        () => ({ ok: true, ms: performance.now() - t0 }),
        (e: unknown) => ({ ok: false, ms: performance.now() - t0, e }),
      );
    };
    const first = timed(c.ping());
    await sleep(120);
    const second = timed(c.ping());
    await sleep(20);
    const third = timed(c.ping());
    const t3 = performance.now();
    const r1 = await first;
    assert.ok(performance.now() - t3 < 250, "the first call did not wait for the third's deadline");
    const [r2, r3] = await Promise.all([second, third]);
    assert.equal(r1.ok, false);
    assert.match(String((r1 as { e: Error }).e?.message), /timed out$/);
    assert.ok(r1.ms >= 280 && r1.ms < 1500, `first timed out after ${r1.ms} ms`);
    assert.equal(r2.ok, true, "the answered call resolved");
    assert.equal(r3.ok, false);
    assert.match(String((r3 as { e: Error }).e?.message), /timed out$/);
    assert.ok(r3.ms >= 280 && r3.ms < 1500, `third timed out after ${r3.ms} ms`);
    answer = ok;
    await c.ping();
  });

  it("rejects at once with an aborted signal, and resets the stream when the signal aborts mid-call", async () => {
    const c = await client();
    const before = seen.length;
    const reason = new Error("stop");
    let e = await pingFailure(c.ping(undefined, AbortSignal.abort(reason)));
    assert.match(e.message, /aborted/);
    assert.equal(e.cause, reason);
    assert.equal(seen.length, before, "nothing was sent");
    answer = (stream) => held.push(stream);
    const ac = new AbortController();
    const p = c.ping(5000, ac.signal);
    await waitFor(() => seen.length > before);
    const t0 = performance.now();
    ac.abort(reason);
    e = await pingFailure(p);
    assert.ok(performance.now() - t0 < 500);
    assert.match(e.message, /aborted/);
    assert.equal(e.cause, reason);
    const stream = held.at(-1);
    assert.ok(stream);
    await new Promise<void>((r) => (stream.closed ? r() : stream.once("close", () => r())));
    assert.equal(stream.rstCode, http2.constants.NGHTTP2_CANCEL);
    answer = ok;
  });
});

describe("GossipClient.ping connection bookkeeping", () => {
  it("counts the call as an open stream of the connection while it runs (connect-node's keepalive and idle tracking)", async () => {
    const c = await client();
    assert.equal(c.state(), "idle");
    const before = seen.length;
    answer = (stream) => held.push(stream);
    const p = c.ping(5000);
    await waitFor(() => seen.length > before);
    assert.equal(c.state(), "open");
    const stream = held.at(-1);
    assert.ok(stream);
    ok(stream, {});
    await p;
    assert.equal(c.state(), "idle");
    answer = ok;
  });

  it("reconnects when the server closed the connection, and after close()", async () => {
    const c = await client();
    await c.ping();
    for (const s of serverSessions) s.destroy();
    await waitFor(() => c.state() === "closed" || c.state() === "error");
    await c.ping();
    assert.equal(c.state(), "idle");
    c.close();
    await c.ping();
  });

  it("Pings in flight when the server sends a graceful GOAWAY finish, and the next Ping goes on a new connection", async () => {
    const c = await client();
    await c.ping();
    const before = seen.length;
    answer = (stream) => held.push(stream);
    const inFlight = [c.ping(5000), c.ping(5000), c.ping(5000)];
    await waitFor(() => seen.length >= before + 3);
    assert.equal(c.state(), "open");
    for (const s of serverSessions) s.close(); // GOAWAY NO_ERROR: open streams may finish
    await sleep(20);
    for (const s of held.splice(-3)) ok(s, {});
    await Promise.all(inFlight);
    answer = ok;
    await c.ping();
    await waitFor(() => c.state() === "idle");
    await c.ping();
    assert.equal(c.state(), "idle");
  });

  it("Pings that time out or are aborted in flight leave the connection idle (each stream reported closed once)", async () => {
    const c = await client();
    await c.ping();
    answer = (stream) => held.push(stream);
    const controller = new AbortController();
    const calls = [c.ping(150), c.ping(150), c.ping(5000, controller.signal), c.ping(5000, controller.signal)];
    assert.equal(c.state(), "open");
    controller.abort();
    const results = await Promise.allSettled(calls);
    assert.ok(results.every((r) => r.status === "rejected"));
    await waitFor(() => c.state() === "idle");
    answer = ok;
    await c.ping();
    assert.equal(c.state(), "idle");
  });

  it("waits for a connection still being re-established, then pings on it", async () => {
    const c = await client();
    for (const s of serverSessions) s.destroy();
    await waitFor(() => c.state() === "closed" || c.state() === "error");
    await Promise.all(Array.from({ length: 4 }, () => c.ping()));
  });
});

describe("GuardedSessionManager.requestNow (Ping's synchronous stream opening)", () => {
  const headers = { ":method": "POST", ":path": "/gossip.Gossip/Ping", "content-type": "application/grpc", te: "trailers" };
  const managers: GuardedSessionManager[] = [];
  after(() => {
    for (const m of managers) m.abort();
  });
  const manager = (pingIntervalMs = 60_000) => {
    const m = new GuardedSessionManager(`http://${endpoint}`, { pingIntervalMs, pingTimeoutMs: 5000 }, {}, 1024 * 1024);
    managers.push(m);
    return m;
  };
  /** Ends `stream` with an empty frame and waits for its close. */
  const finish = async (stream: http2.ClientHttp2Stream) => {
    stream.on("error", () => {});
    stream.resume();
    const closed = new Promise<void>((r) => stream.once("close", () => r()));
    stream.end(empty);
    await closed;
  };

  it("opens nothing before the first connection, and after abort()", async () => {
    const m = manager();
    assert.equal(m.requestNow(headers), undefined);
    assert.equal(m.state(), "closed", "requestNow does not start connecting");
    assert.notEqual(await m.connectVerified(), "error");
    m.abort();
    assert.equal(m.requestNow(headers), undefined);
  });

  it("on a ready connection opens a stream at once, counted by connect-node until it closes", async () => {
    answer = ok;
    const m = manager();
    assert.notEqual(await m.connectVerified(), "error");
    const stream = m.requestNow(headers);
    assert.ok(stream);
    assert.equal(m.state(), "open");
    await finish(stream);
    assert.equal(m.state(), "idle");
  });

  it("unaryFlight: the calls in flight count as one open stream until the last one closed", async () => {
    answer = ok;
    const m = manager();
    assert.equal(m.unaryFlight(), undefined, "no connection yet");
    assert.notEqual(await m.connectVerified(), "error");
    const flight = m.unaryFlight();
    assert.ok(flight);
    assert.equal(m.unaryFlight(), flight, "one flight per connection");
    const a = flight.open(headers);
    const b = flight.open(headers);
    assert.ok(a && b);
    assert.equal(m.state(), "open");
    await finish(a);
    flight.done();
    assert.equal(m.state(), "open", "one call still in flight");
    await finish(b);
    flight.done();
    assert.equal(m.state(), "idle");
    const c = flight.open(headers);
    assert.ok(c, "the flight opens again after it emptied");
    assert.equal(m.state(), "open");
    await finish(c);
    flight.done();
    assert.equal(m.state(), "idle");
    m.abort();
    assert.equal(m.unaryFlight(), undefined, "none after abort()");
  });

  it("unaryFlight: a flight emptied and refilled many times (sequential Pings) keeps no listener of connect-node's behind", async () => {
    answer = ok;
    const m = manager();
    assert.notEqual(await m.connectVerified(), "error");
    const warnings: Error[] = [];
    const onWarning = (w: Error) => warnings.push(w);
    process.on("warning", onWarning);
    try {
      let flight: ReturnType<typeof m.unaryFlight>;
      for (let i = 0; i < 15; i++) {
        flight = m.unaryFlight();
        assert.ok(flight);
        const stream = flight.open(headers);
        assert.ok(stream);
        await finish(stream);
        flight.done();
        assert.equal(m.state(), "idle");
      }
      // The stand-in connect-node holds as the flight's open stream: every
      // registration adds its listeners, each must be gone once the flight emptied.
      const token = (flight as unknown as { token: EventEmitter }).token;
      assert.equal(token.listenerCount("response"), 0);
      assert.equal(token.listenerCount("close"), 0);
      await sleep(10);
      assert.deepEqual(
        warnings.filter((w) => w.name === "MaxListenersExceededWarning").map((w) => w.message),
        [],
      );
    } finally {
      process.off("warning", onWarning);
    }
  });

  it("unaryFlight: answered calls keep the connection verified past the keepalive interval", async () => {
    answer = ok;
    // As below: after 300 ms without a sign of life connect-node wants to verify.
    const m = manager(300);
    assert.notEqual(await m.connectVerified(), "error");
    for (let i = 0; i < 6; i++) {
      await sleep(100);
      const flight = m.unaryFlight();
      assert.ok(flight, `call ${i}: the last answer marked the connection alive`);
      const stream = flight.open(headers);
      assert.ok(stream);
      stream.once("response", () => flight.alive());
      await finish(stream);
      flight.done();
    }
  });

  it("leaves a connection that needs verifying (idle for longer than the keepalive interval) to request()", async () => {
    answer = ok;
    // No keepalive PINGs on an idle connection (pingIdleConnection is off
    // here), so after the interval connect-node wants to verify it first.
    const m = manager(300);
    assert.notEqual(await m.connectVerified(), "error");
    await sleep(400);
    assert.equal(m.requestNow(headers), undefined);
    const stream = await m.request("POST", "/gossip.Gossip/Ping", headers, {});
    await finish(stream);
    const again = m.requestNow(headers);
    assert.ok(again, "verified (and answered): requestNow opens again");
    await finish(again);
  });

  it("leaves a connection the server closed to request(), which reconnects", async () => {
    answer = ok;
    const m = manager();
    assert.notEqual(await m.connectVerified(), "error");
    for (const s of serverSessions) s.destroy();
    await waitFor(() => m.state() === "closed" || m.state() === "error");
    assert.equal(m.requestNow(headers), undefined);
    await finish(await m.request("POST", "/gossip.Gossip/Ping", headers, {}));
    assert.equal(m.state(), "idle");
    const stream = m.requestNow(headers);
    assert.ok(stream);
    await finish(stream);
  });
});

/** Polls `f` every 5 ms, for at most 2 s. */
async function waitFor(f: () => boolean): Promise<void> {
  for (let i = 0; i < 400 && !f(); i++) await sleep(5);
  assert.ok(f(), "condition not reached within 2 s");
}
