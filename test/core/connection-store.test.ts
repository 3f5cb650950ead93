// The connection store's rules, first on the store itself (constructed
// directly, with connections over scripted streams and a virtual clock), then
// between comms on the in-memory transport: one connection per PKI-ID, dial
// coalescing, the simultaneous-dial tie-break, newest replaces oldest, and the
// absence of Fabric's quirks Q1 and Q2.
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { describe, it } from "node:test";
import fc from "fast-check";
import { resolveCommConfig } from "../../src/core/config.js";
import { Connection } from "../../src/core/connection.js";
import { ConnectionStore } from "../../src/core/connection-store.js";
import { ErrorCode, GossipError } from "../../src/core/errors.js";
import { type HexTaggedPeer, pkiIdFromHex, pkiIdHex, type RemotePeer, remotePkiHex } from "../../src/core/identity.js";
import { noopMetrics } from "../../src/core/metrics.js";
import type { WireStream } from "../../src/core/transport.js";
import { writeTaken } from "../../src/core/transport.js";
import { VirtualClock } from "../../src/core/virtual-clock.js";
import type { Envelope } from "../../src/gen/gossip/message_pb.js";
import { type MemPeer, memTest, target } from "../helpers/memory-peers.js";
import { dataMessage } from "../helpers/messages.js";

const hexOf = (name: string) => createHash("sha256").update(name).digest("hex");
/** PKI-IDs in a known order. */
const SMALL = `00${hexOf("small").slice(2)}`;
const LARGE = `ff${hexOf("large").slice(2)}`;
const OTHER = `80${hexOf("other").slice(2)}`;

/** A stream that carries nothing: it ends when we end or abort it. */
function quietStream(): WireStream & { readonly ended: boolean } {
  let close: () => void = () => {};
  const closed = new Promise<void>((r) => (close = r));
  let wake: (() => void) | undefined;
  let done = false;
  const finish = () => {
    done = true;
    wake?.();
    close();
  };
  return {
    remoteAddress: "remote:1",
    tls: false,
    remoteCertHash: undefined,
    localCertHash: undefined,
    incoming: {
      [Symbol.asyncIterator]: () => ({
        next: () =>
          done
            ? Promise.resolve({ done: true as const, value: undefined })
            : new Promise<IteratorResult<readonly Envelope[]>>((r) => (wake = () => r({ done: true, value: undefined }))),
      }),
    },
    write: () => writeTaken,
    end: finish,
    abort: finish,
    closed,
    get ended() {
      return done;
    },
  };
}

function harness(o: { self?: string; maxPerPeer?: number; windowMs?: number } = {}) {
  const clock = new VirtualClock();
  const config = resolveCommConfig({ drainTimeoutMs: 100 });
  const conn = (pkiHex: string, direction: "inbound" | "outbound"): Connection => {
    const stream = quietStream();
    const incoming = stream.incoming[Symbol.asyncIterator]();
    const pkiId = pkiIdFromHex(pkiHex);
    const hs = {
      pkiId,
      identity: new Uint8Array(1),
      signedData: new Uint8Array(0),
      signature: new Uint8Array(0),
      probe: false,
      incoming,
      pending: [],
    };
    return new Connection(
      stream,
      hs,
      { pkiId, pkiIdHex: pkiIdHex(pkiId), identity: hs.identity, endpoint: "remote:1", auth: hs, direction },
      {
        config,
        metrics: noopMetrics,
        clock,
        hooks: { onMessage: () => undefined, onWriteError: () => {}, onReadError: () => {}, onClosed: (c) => store.connectionClosed(c) },
      },
    );
  };
  const dials: { peer: RemotePeer; signal: AbortSignal; resolve(c: Connection): void; reject(e: unknown): void }[] = [];
  const registered: Connection[] = [];
  const unregistered: Connection[] = [];
  const store = new ConnectionStore({
    dial: (peer, signal) => new Promise((resolve, reject) => dials.push({ peer, signal, resolve, reject })),
    maxConnectionsPerPeer: o.maxPerPeer ?? 3,
    selfPkiHex: o.self ?? SMALL,
    simultaneousWindowMs: o.windowMs ?? 5000,
    clock,
    onRegistered: (c) => registered.push(c),
    onUnregistered: (c) => unregistered.push(c),
  });
  return { clock, conn, store, dials, registered, unregistered };
}

describe("ConnectionStore", () => {
  it("coalesces concurrent dials to one destination (PKI-ID, or endpoint when none) into one dial", async () => {
    const h = harness();
    const peer = { endpoint: "b:1", pkiId: pkiIdFromHex(LARGE) };
    const both = [h.store.getOrDial(peer), h.store.getOrDial(peer)];
    assert.equal(h.dials.length, 1);
    const byEndpoint = h.store.getOrDial({ endpoint: "b:1" });
    assert.equal(h.dials.length, 2, "an endpoint-only dial is keyed by endpoint");
    const c = h.conn(LARGE, "outbound");
    h.dials[0]?.resolve(c);
    const [x, y] = await Promise.all(both);
    assert.equal(x, c);
    assert.equal(y, c);
    h.dials[1]?.resolve(h.conn(LARGE, "outbound"));
    await byEndpoint;
    await h.store.shutdown();
  });

  it("no quirk Q1: after a dial by endpoint, lookups by that endpoint and by the PKI-ID find the connection", async () => {
    const h = harness();
    const pending = h.store.getOrDial({ endpoint: "b:1" });
    const c = h.conn(LARGE, "outbound");
    h.dials[0]?.resolve(c);
    assert.equal(await pending, c);
    assert.equal(h.store.lookup({ endpoint: "b:1" }), c);
    assert.equal(h.store.lookup({ endpoint: "elsewhere:1", pkiId: pkiIdFromHex(LARGE) }), c);
    assert.equal(await h.store.getOrDial({ endpoint: "b:1" }), c);
    assert.equal(h.dials.length, 1, "no second dial");
    await h.store.shutdown();
  });

  it("lookups by a reused PKI-ID array follow replacements, closes and bytes changed in place", async () => {
    const h = harness();
    const large = h.conn(LARGE, "inbound");
    const other = h.conn(OTHER, "inbound");
    h.store.register(large);
    h.store.register(other);
    const peer = { endpoint: "", pkiId: pkiIdFromHex(LARGE) };
    assert.equal(h.store.lookup(peer), large);
    assert.equal(h.store.lookup(peer), large, "the same array again");
    peer.pkiId.set(pkiIdFromHex(OTHER));
    assert.equal(h.store.lookup(peer), other, "the array now holds another PKI-ID");
    const newer = h.conn(OTHER, "inbound");
    h.clock.setTimeout(() => {}, 0);
    h.store.register(newer);
    assert.equal(h.store.lookup(peer), newer, "a replacement is found at once");
    newer.abort();
    await newer.closed;
    assert.equal(h.store.lookup(peer), undefined, "a closed connection is not found");
    await h.store.shutdown();
  });

  it("a reused PKI-ID Buffer changed in place is not mistaken for its past (the hit keeps a copy, not a view)", async () => {
    const h = harness();
    const large = h.conn(LARGE, "inbound");
    const other = h.conn(OTHER, "inbound");
    h.store.register(large);
    h.store.register(other);
    const peer = { endpoint: "", pkiId: Buffer.from(pkiIdFromHex(LARGE)) };
    assert.equal(h.store.lookup(peer), large);
    assert.equal(h.store.lookup(peer), large, "the same Buffer again");
    peer.pkiId.set(pkiIdFromHex(OTHER));
    assert.equal(h.store.lookup(peer), other, "the Buffer now holds another PKI-ID");
    peer.pkiId.set(pkiIdFromHex(LARGE));
    assert.equal(h.store.lookup(peer), large, "and back");
    await h.store.shutdown();
  });

  it("a peer carrying its PKI-ID's hex is found by it, without its bytes being read, and dials with them when not connected", async () => {
    const h = harness();
    let reads = 0;
    const tagged = (hex: string, endpoint: string): HexTaggedPeer => ({
      [remotePkiHex]: hex,
      endpoint,
      get pkiId() {
        reads++;
        return pkiIdFromHex(hex);
      },
    });
    const large = h.conn(LARGE, "inbound");
    h.store.register(large);
    assert.equal(h.store.lookup(tagged(LARGE, "elsewhere:1")), large, "found by its hex, whatever the endpoint");
    assert.equal(await h.store.getOrDial(tagged(LARGE, "b:1")), large);
    assert.equal(reads, 0, "a connected peer's bytes are not read");
    assert.equal(h.store.lookup(tagged(OTHER, "b:1")), undefined, "another hex is not the connection at b:1's endpoint");
    const pending = h.store.getOrDial(tagged(OTHER, "c:1"));
    const again = h.store.getOrDial(tagged(OTHER, "c:1"));
    assert.equal(h.dials.length, 1, "one dial, keyed by the hex");
    assert.deepEqual(h.dials[0]?.peer.pkiId, pkiIdFromHex(OTHER), "the dial gets the bytes");
    const other = h.conn(OTHER, "outbound");
    h.dials[0]?.resolve(other);
    assert.equal(await pending, other);
    assert.equal(await again, other);
    assert.equal(h.store.lookup(tagged(OTHER, "")), other);
    await h.store.shutdown();
  });

  it("no quirk Q2: a newer connection replaces the older, and the older's close removes nothing but itself", async () => {
    const h = harness();
    const older = h.conn(LARGE, "inbound");
    const newer = h.conn(LARGE, "inbound");
    h.store.register(older);
    h.clock.setTimeout(() => {}, 0);
    h.store.register(newer);
    assert.equal(older.state, "draining");
    await h.clock.advance(200);
    await older.closed;
    assert.deepEqual(h.unregistered, [older]);
    assert.equal(
      h.store.lookup({ endpoint: "", pkiId: pkiIdFromHex(LARGE) }),
      newer,
      "the replacement survives its predecessor's clean-up",
    );
    assert.equal(h.store.current(older), newer, "a sender holding the old one is pointed at the new one");
    await h.store.shutdown();
  });

  for (const [self, winner] of [
    [SMALL, "outbound"],
    [LARGE, "inbound"],
  ] as const) {
    it(`simultaneous dial: with our PKI-ID ${self === SMALL ? "smaller" : "larger"}, the ${winner} connection (dialed by the smaller) wins, whichever registers first`, async () => {
      for (const order of ["outbound first", "inbound first"]) {
        const h = harness({ self });
        const remote = OTHER;
        const out = h.conn(remote, "outbound");
        const inb = h.conn(remote, "inbound");
        const pending = h.store.getOrDial({ endpoint: "b:1", pkiId: pkiIdFromHex(remote) });
        if (order === "inbound first") {
          h.store.register(inb);
          h.dials[0]?.resolve(out);
        } else {
          h.dials[0]?.resolve(out);
          await pending;
          h.store.register(inb);
        }
        const used = await pending;
        const win = winner === "outbound" ? out : inb;
        const lose = winner === "outbound" ? inb : out;
        // (When our dial registered first, its caller got it before the peer's arrived: current() leads it on.)
        assert.equal(h.store.current(used), win, `${order}: the dial's caller is led to the winner`);
        assert.equal(h.store.lookup({ endpoint: "b:1", pkiId: pkiIdFromHex(remote) }), win, order);
        assert.notEqual(lose.state, "open", `${order}: the loser drains`);
        assert.equal(win.state, "open");
        await h.store.shutdown();
      }
    });
  }

  it("outside the simultaneous window the newest connection wins, whatever its direction", async () => {
    const h = harness({ self: SMALL, windowMs: 5000 });
    const out = h.conn(OTHER, "outbound");
    const pending = h.store.getOrDial({ endpoint: "b:1", pkiId: pkiIdFromHex(OTHER) });
    h.dials[0]?.resolve(out);
    await pending;
    await h.clock.advance(5000);
    const inb = h.conn(OTHER, "inbound");
    h.store.register(inb);
    assert.equal(out.state, "draining", "our outbound would win the tie-break, but it is old");
    assert.equal(h.store.lookup({ endpoint: "b:1" }), inb, "sends by endpoint follow the peer to its new connection");
    await h.store.shutdown();
  });

  it("a dial that fails while the peer's own connection arrived serves the send with that connection", async () => {
    const h = harness();
    const peer = { endpoint: "b:1", pkiId: pkiIdFromHex(OTHER) };
    const pending = h.store.getOrDial(peer);
    const inb = h.conn(OTHER, "inbound");
    h.store.register(inb);
    h.dials[0]?.reject(new GossipError(ErrorCode.DialFailed, "refused"));
    assert.equal(await pending, inb);
    const failing = h.store.getOrDial({ endpoint: "c:1", pkiId: pkiIdFromHex(LARGE) });
    h.dials[1]?.reject(new GossipError(ErrorCode.DialFailed, "refused"));
    await assert.rejects(failing, (e: unknown) => e instanceof GossipError && e.code === ErrorCode.DialFailed);
    await h.store.shutdown();
  });

  it("limits connections per PKI-ID (open plus closing) with RateLimited", async () => {
    const h = harness({ maxPerPeer: 1 });
    h.store.register(h.conn(OTHER, "inbound"));
    assert.throws(
      () => h.store.register(h.conn(OTHER, "inbound")),
      (e: unknown) => e instanceof GossipError && e.code === ErrorCode.RateLimited,
    );
    h.store.register(h.conn(LARGE, "inbound")); // another peer is not limited
    assert.equal(h.store.connections().length, 2);
    await h.store.shutdown();
  });

  it("a connection that closed before it was registered is unregistered at once; one that closes later, once", async () => {
    const h = harness();
    const early = h.conn(LARGE, "outbound");
    early.abort();
    await early.closed;
    h.store.register(early);
    assert.deepEqual(h.registered, [early]);
    assert.deepEqual(h.unregistered, [early]);
    assert.equal(h.store.connections().length, 0);
    assert.equal(h.store.lookup({ endpoint: "b:1", pkiId: pkiIdFromHex(LARGE) }), undefined);
    const later = h.conn(LARGE, "outbound");
    h.store.register(later);
    assert.deepEqual(h.store.connections(), [later]);
    later.abort();
    await later.closed;
    assert.deepEqual(h.unregistered, [early, later]);
    assert.equal(h.store.connections().length, 0);
    const unregistered = h.conn(OTHER, "inbound");
    unregistered.abort();
    await unregistered.closed;
    assert.deepEqual(h.unregistered, [early, later], "a connection it never registered is not its to forget");
    await h.store.shutdown();
  });

  it("shutdown aborts a dial begun after every earlier dial settled (the abort signal is made again for it)", async () => {
    const h = harness();
    const first = h.store.getOrDial({ endpoint: "b:1", pkiId: pkiIdFromHex(LARGE) });
    h.dials[0]?.resolve(h.conn(LARGE, "outbound"));
    await first;
    const failed = h.store.getOrDial({ endpoint: "c:1", pkiId: pkiIdFromHex(OTHER) });
    h.dials[1]?.reject(new GossipError(ErrorCode.DialFailed, "refused"));
    await assert.rejects(failed);
    const dialing = h.store.getOrDial({ endpoint: "c:1", pkiId: pkiIdFromHex(OTHER) });
    assert.equal(h.dials.length, 3, "dialed anew");
    const signal = h.dials[2]?.signal;
    assert.equal(signal?.aborted, false);
    const stopped = h.store.shutdown();
    assert.equal(signal?.aborted, true);
    h.dials[2]?.reject(new GossipError(ErrorCode.Stopping, "aborted"));
    await assert.rejects(dialing, (e: unknown) => e instanceof GossipError && e.code === ErrorCode.Stopping);
    await h.clock.advance(200);
    await stopped;
  });

  it("shutdown aborts dials in progress, drains every connection, and refuses what comes after", async () => {
    const h = harness();
    const c = h.conn(OTHER, "inbound");
    h.store.register(c);
    const dialing = h.store.getOrDial({ endpoint: "b:1", pkiId: pkiIdFromHex(LARGE) });
    const signal = h.dials[0]?.signal;
    const late = h.conn(LARGE, "outbound");
    const stopped = h.store.shutdown();
    assert.equal(signal?.aborted, true);
    h.dials[0]?.resolve(late); // a dial that completes anyway is closed, not registered
    await assert.rejects(dialing, (e: unknown) => e instanceof GossipError && e.code === ErrorCode.Stopping);
    await h.clock.advance(200);
    await stopped;
    assert.equal(c.state, "closed");
    assert.equal(late.state, "closed");
    assert.deepEqual(h.registered, [c]);
    assert.equal(h.store.connections().length, 0);
    await assert.rejects(h.store.getOrDial({ endpoint: "b:1" }), (e: unknown) => e instanceof GossipError && e.code === ErrorCode.Stopping);
    assert.throws(
      () => h.store.register(h.conn(OTHER, "inbound")),
      (e: unknown) => e instanceof GossipError && e.code === ErrorCode.Stopping,
    );
  });
});

const connected = (p: MemPeer) => p.events.filter((e) => e.type === "connected").length;

describe("connections between comms (in memory)", () => {
  memTest("simultaneous dial: both sides keep the one connection dialed by the smaller PKI-ID, and nothing is lost", async (c) => {
    for (let pair = 0; pair < 5; pair++) {
      const a = c.peer();
      const b = c.peer();
      void a.comm.send(dataMessage(1), target(b));
      void b.comm.send(dataMessage(2), target(a));
      await c.until(() => a.received.length === 1 && b.received.length === 1);
      await c.until(() => a.comm.connections().length === 1 && b.comm.connections().length === 1);
      const aDialsWinner = Buffer.from(a.comm.pkiId).toString("hex") < Buffer.from(b.comm.pkiId).toString("hex");
      assert.deepEqual(
        a.comm.connections().map((x) => x.direction),
        [aDialsWinner ? "outbound" : "inbound"],
      );
      assert.deepEqual(
        b.comm.connections().map((x) => x.direction),
        [aDialsWinner ? "inbound" : "outbound"],
      );
      // ...and it carries traffic both ways without another dial.
      void a.comm.send(dataMessage(3), target(b));
      void b.comm.send(dataMessage(4), target(a));
      await c.until(() => a.received.length === 2 && b.received.length === 2);
      assert.equal(a.dials.count, 1);
      assert.equal(b.dials.count, 1);
    }
  });

  memTest("first contact by sendWithAck from both sides at once (a simultaneous dial): both acknowledged", async (c) => {
    for (let pair = 0; pair < 5; pair++) {
      const a = c.peer({ ack: true });
      const b = c.peer({ ack: true });
      const [ra, rb] = await Promise.all([
        a.comm.sendWithAck(dataMessage(1), 5000, 1, target(b)),
        b.comm.sendWithAck(dataMessage(2), 5000, 1, target(a)),
      ]);
      assert.equal(ra.ackCount, 1, `pair ${pair}, a→b: ${ra.toString()}`);
      assert.equal(rb.ackCount, 1, `pair ${pair}, b→a: ${rb.toString()}`);
    }
  });

  memTest("peers that send to each other in step converge to one connection per pair (no endless redial, unlike Fabric)", async (c) => {
    const peers = [c.peer(), c.peer(), c.peer()];
    const rounds = 10;
    for (let r = 0; r < rounds; r++) {
      for (const p of peers) for (const q of peers) if (p !== q) void p.comm.send(dataMessage(r), target(q));
      await c.advance(50);
    }
    await c.until(() => peers.every((p) => p.received.length === rounds * 2));
    assert.ok(
      peers.every((p) => p.comm.connections().length === 2),
      "one connection per pair",
    );
    for (const [i, p] of peers.entries()) assert.ok(connected(p) <= 4, `peer ${i} registered ${connected(p)} connections for 2 neighbours`);
  });

  memTest("no quirk Q1 between comms: ten sends by endpoint only share one dial and arrive in order", async (c) => {
    const a = c.peer();
    const b = c.peer();
    for (let i = 0; i < 10; i++) {
      void a.comm.send(dataMessage(i), { endpoint: b.endpoint });
      await c.advance(10);
    }
    void a.comm.send(dataMessage(10), target(b));
    await c.until(() => b.received.length === 11);
    assert.deepEqual(
      b.received.map((m) => m.message.nonce),
      Array.from({ length: 11 }, (_, i) => BigInt(i)),
    );
    assert.equal(a.dials.count, 1);
  });

  memTest("no quirk Q2 between comms: a peer that reconnects under the same PKI-ID keeps its new connection", async (c) => {
    const b = c.peer();
    const a1 = c.peer();
    const a2 = c.peer({ crypto: a1.crypto }); // same identity, same PKI-ID
    void a1.comm.send(dataMessage(1), target(b));
    await c.until(() => b.received.length === 1);
    void a2.comm.send(dataMessage(2), target(b));
    await c.until(() => b.received.length === 2 && a1.comm.connections().length === 0);
    for (let i = 3; i < 23; i++) void a2.comm.send(dataMessage(i), target(b));
    await c.until(() => b.received.length === 22);
    assert.deepEqual(
      a2.events.map((e) => e.type),
      ["connected"],
      "a2 never lost its connection",
    );
    assert.equal(a2.dials.count, 1);
    assert.equal(b.comm.connections().length, 1);
  });

  memTest("maxConnectionsPerPeer: a second connection under a registered PKI-ID is refused with RESOURCE_EXHAUSTED", async (c) => {
    const b = c.peer({ options: { maxConnectionsPerPeer: 1 } });
    const a1 = c.peer();
    const a2 = c.peer({ crypto: a1.crypto });
    void a1.comm.send(dataMessage(1), target(b));
    await c.until(() => b.received.length === 1);
    void a2.comm.send(dataMessage(2), target(b));
    await c.until(() => a2.events.some((e) => e.type === "disconnected"));
    const refused = a2.events.find((e) => e.type === "disconnected");
    assert.equal(refused?.error?.remoteCode, ErrorCode.RateLimited, `${refused?.error?.code}: ${refused?.error?.message}`);
    assert.equal(b.received.length, 1, "nothing of the refused connection was delivered");
    assert.equal(b.comm.connections().length, 1);
  });
});

describe("ConnectionStore against a model", () => {
  // The store keeps, per connection, the endpoints that lead to it (so that
  // replacing or closing one costs what it has, not every endpoint known):
  // a plain model of the maps says what every lookup must answer after any
  // sequence of registrations, replacements and closes.
  const pkis = [SMALL, LARGE, OTHER];
  const endpoints = ["a:1", "b:1", "c:1", "d:1"];
  const op = fc.oneof(
    fc.record({
      kind: fc.constant("register" as const),
      pki: fc.integer({ min: 0, max: 2 }),
      ep: fc.option(fc.integer({ min: 0, max: 3 }), { nil: undefined }),
    }),
    fc.record({ kind: fc.constant("closeByPki" as const), pki: fc.integer({ min: 0, max: 2 }) }),
    fc.record({ kind: fc.constant("closeByEndpoint" as const), ep: fc.integer({ min: 0, max: 3 }) }),
    fc.record({ kind: fc.constant("abort" as const), nth: fc.nat() }),
  );

  it("an endpoint dialed anew to another peer stays with it when the first peer's connection is replaced", async () => {
    const h = harness({ windowMs: 0 });
    const x = h.conn(SMALL, "inbound");
    const y = h.conn(LARGE, "inbound");
    const z = h.conn(SMALL, "inbound");
    h.store.register(x, "a:1");
    h.store.register(y, "a:1"); // a:1 now answers as LARGE
    h.store.register(z); // SMALL's replacement inherits SMALL's endpoints only
    await h.clock.advance(200);
    assert.equal(h.store.lookup({ endpoint: "a:1" }), y);
    await h.store.shutdown();
  });

  it("lookups by PKI-ID and by endpoint follow replacements and closes as the model says", async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(op, { minLength: 10, maxLength: 40, size: "max" }), async (ops) => {
        // No simultaneous-dial window: the newest registration always wins, as in Fabric.
        const h = harness({ windowMs: 0, maxPerPeer: 1000 });
        const byPki = new Map<string, Connection>();
        const byEp = new Map<string, Connection>();
        const dropEndpointsOf = (c: Connection) => {
          for (const [ep, x] of byEp) if (x === c) byEp.delete(ep);
        };
        const live: Connection[] = [];
        for (const o of ops) {
          if (o.kind === "register") {
            const pki = pkis[o.pki] as string;
            const c = h.conn(pki, "inbound");
            const ep = o.ep === undefined ? undefined : (endpoints[o.ep] as string);
            h.store.register(c, ep);
            live.push(c);
            const old = byPki.get(pki);
            byPki.set(pki, c);
            if (ep !== undefined) byEp.set(ep, c);
            if (old !== undefined) for (const [e, x] of byEp) if (x === old) byEp.set(e, c);
          } else if (o.kind === "closeByPki") {
            const pki = pkis[o.pki] as string;
            const c = byPki.get(pki);
            assert.equal(h.store.closeByPki(pki), c !== undefined);
            if (c) {
              byPki.delete(pki);
              dropEndpointsOf(c);
            }
          } else if (o.kind === "closeByEndpoint") {
            const ep = endpoints[o.ep] as string;
            const c = byEp.get(ep);
            const current = c === undefined ? undefined : byPki.get(c.pkiHex);
            assert.equal(h.store.closeByEndpoint(ep), current !== undefined);
            if (current) {
              byPki.delete(current.pkiHex);
              dropEndpointsOf(current);
            }
          } else if (live.length > 0) {
            const c = live[o.nth % live.length] as Connection;
            c.abort();
            await c.closed;
            if (byPki.get(c.pkiHex) === c) byPki.delete(c.pkiHex);
            dropEndpointsOf(c);
          }
          // Drains finish (the quiet streams end at once) and their clean-ups run.
          await h.clock.advance(200);
          for (const ep of endpoints) {
            const want = byEp.get(ep);
            assert.equal(h.store.lookup({ endpoint: ep }), want?.state === "open" ? want : undefined, `endpoint ${ep}`);
          }
          for (const pki of pkis) {
            const want = byPki.get(pki);
            assert.equal(h.store.lookup({ endpoint: "x:1", pkiId: pkiIdFromHex(pki) }), want?.state === "open" ? want : undefined);
          }
        }
        await h.store.shutdown();
      }),
      { numRuns: 200 },
    );
  });
  it("connections() and the per-peer limit count every registered connection, draining ones included, as the model says", async () => {
    const regOp = fc.oneof(
      fc.record({ kind: fc.constant("register" as const), pki: fc.integer({ min: 0, max: 1 }), outbound: fc.boolean() }),
      fc.record({ kind: fc.constant("closeByPki" as const), pki: fc.integer({ min: 0, max: 1 }) }),
      fc.record({ kind: fc.constant("abort" as const), nth: fc.nat() }),
      fc.record({ kind: fc.constant("advance" as const), ms: fc.constantFrom(0, 50, 200) }),
    );
    await fc.assert(
      fc.asyncProperty(fc.array(regOp, { minLength: 5, maxLength: 40 }), fc.boolean(), async (ops, simultaneous) => {
        // A window that covers the whole run makes the tie-break keep the old connection (losers are extras too).
        const h = harness({ maxPerPeer: 2, windowMs: simultaneous ? 1e9 : 0 });
        const added: Connection[] = [];
        const registered = () => added.filter((c) => !h.unregistered.includes(c));
        for (const o of ops) {
          if (o.kind === "register") {
            const pki = [SMALL, LARGE][o.pki] as string;
            const c = h.conn(pki, o.outbound ? "outbound" : "inbound");
            const count = registered().filter((x) => x.pkiHex === pki).length;
            let refused = false;
            try {
              h.store.register(c);
              added.push(c);
            } catch (e) {
              assert.ok(e instanceof GossipError && e.code === ErrorCode.RateLimited);
              refused = true;
              c.abort();
            }
            assert.equal(refused, count >= 2, `with ${count} registered for the PKI-ID`);
          } else if (o.kind === "closeByPki") {
            h.store.closeByPki([SMALL, LARGE][o.pki] as string);
          } else if (o.kind === "abort") {
            const live = registered();
            const c = live[o.nth % Math.max(1, live.length)];
            if (c !== undefined) {
              c.abort();
              await c.closed;
            }
          } else {
            await h.clock.advance(o.ms);
          }
          const want = new Set(registered());
          const got = h.store.connections();
          assert.equal(got.length, want.size, "each registered connection once");
          assert.deepEqual(new Set(got), want);
        }
        await h.store.shutdown();
        assert.deepEqual(h.store.connections(), []);
        assert.equal(new Set(h.unregistered).size, h.unregistered.length, "each unregistered once");
        assert.equal(h.unregistered.length, added.length);
      }),
      { numRuns: 200 },
    );
  });
});
