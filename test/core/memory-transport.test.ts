import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { create } from "@bufbuild/protobuf";
import { Comm } from "../../src/core/comm.js";
import { encodeUnsignedEnvelope, parseGossipMessage } from "../../src/core/envelope.js";
import { ErrorCode, GossipError } from "../../src/core/errors.js";
import { MemoryNetwork } from "../../src/core/memory-transport.js";
import type { WireStream } from "../../src/core/transport.js";
import { VirtualClock } from "../../src/core/virtual-clock.js";
import { X509CryptoService } from "../../src/core/x509-crypto.js";
import { EmptySchema, GossipMessage_Tag, GossipMessageSchema } from "../../src/gen/gossip/message_pb.js";
import { createPeerMaterial } from "../../src/pki/certificates.js";
import { caFor } from "../helpers/peers.js";

const frame = (nonce: number) =>
  encodeUnsignedEnvelope(
    create(GossipMessageSchema, {
      nonce: BigInt(nonce),
      tag: GossipMessage_Tag.EMPTY,
      content: { case: "empty", value: create(EmptySchema) },
    }),
  );

async function pair(net: MemoryNetwork, clock: VirtualClock): Promise<{ client: WireStream; server: WireStream }> {
  let server: WireStream | undefined;
  net.listen("b:1", (s) => {
    server = s;
  });
  const client = await net.dialer("a").openStream("b:1", { signal: new AbortController().signal });
  await clock.advance(0);
  assert.ok(server);
  return { client, server };
}

async function readAll(s: WireStream): Promise<number[]> {
  const out: number[] = [];
  for await (const batch of s.incoming) for (const e of batch) out.push(e.payload.length);
  return out;
}

describe("VirtualClock", () => {
  it("fires timers in time order, same-instant timers in the order set, and not before their time", async () => {
    const clock = new VirtualClock();
    const fired: string[] = [];
    clock.setTimeout(() => fired.push("b@20"), 20);
    clock.setTimeout(() => fired.push("a@10"), 10);
    clock.setTimeout(() => fired.push("c@20"), 20);
    const h = clock.setTimeout(() => fired.push("cleared"), 5);
    clock.clearTimeout(h);
    await clock.advance(19);
    assert.deepEqual(fired, ["a@10"]);
    assert.equal(clock.now(), 19);
    await clock.advance(1);
    assert.deepEqual(fired, ["a@10", "b@20", "c@20"]);
    assert.equal(clock.pending, 0);
  });

  it("keeps firing in order when most timers are cleared, and does not keep the cleared ones", async () => {
    const clock = new VirtualClock();
    const fired: number[] = [];
    const expected: { at: number; i: number }[] = [];
    for (let i = 0; i < 5000; i++) {
      const at = (i * 7919) % 1000; // many timers share an instant: their order is the order set
      const h = clock.setTimeout(() => fired.push(i), at);
      if (i % 5 === 0) expected.push({ at, i });
      else clock.clearTimeout(h);
    }
    assert.equal(clock.pending, 1000);
    // Cleared entries are dropped from the timer heap once they outnumber the live ones (a timeout per message would grow it).
    const heap = (clock as unknown as { heap: unknown[] }).heap;
    assert.ok(heap.length <= 2 * clock.pending + 1024, `heap holds ${heap.length} entries for ${clock.pending} timers`);
    await clock.advance(1000);
    expected.sort((a, b) => a.at - b.at || a.i - b.i);
    assert.deepEqual(
      fired,
      expected.map((e) => e.i),
    );
    assert.equal(clock.pending, 0);
  });

  it("fires timers set by timers within the same advance, and lets async chains settle between them", async () => {
    const clock = new VirtualClock();
    const seen: number[] = [];
    const tick = async () => {
      await Promise.resolve();
      await new Promise((r) => setImmediate(r));
      seen.push(clock.now());
      if (seen.length < 5) clock.setTimeout(() => void tick(), 1000);
    };
    clock.setTimeout(() => void tick(), 1000);
    await clock.advance(10_000);
    assert.deepEqual(seen, [1000, 2000, 3000, 4000, 5000]);
  });

  it("advanceUntil reports the virtual time taken and throws when the condition never holds", async () => {
    const clock = new VirtualClock();
    let ready = false;
    clock.setTimeout(() => {
      ready = true;
    }, 25_000);
    assert.equal(await clock.advanceUntil(() => ready, { stepMs: 1000 }), 25_000);
    await assert.rejects(
      clock.advanceUntil(() => false, { maxMs: 5000 }),
      /not reached within 5000 ms/,
    );
  });
});

describe("MemoryNetwork", () => {
  it("carries frames in order with half-close both ways, then closes", async () => {
    const clock = new VirtualClock();
    const net = new MemoryNetwork({ clock });
    const { client, server } = await pair(net, clock);
    const got = readAll(server);
    for (let i = 0; i < 50; i++) await client.write([frame(i)]);
    client.end();
    await clock.advance(0);
    assert.equal((await got).length, 50);
    const back = readAll(client);
    server.end();
    assert.deepEqual(await back, []);
    await server.closed;
    await client.closed;
    assert.equal(net.openStreams, 0);
  });

  it("holds a writer that outruns a stalled reader at the window, and releases it as the reader reads", async () => {
    const clock = new VirtualClock();
    const net = new MemoryNetwork({ clock, windowBytes: 1000 });
    const { client, server } = await pair(net, clock);
    const f = frame(1);
    let written = 0;
    const writer = (async () => {
      for (let i = 0; i < 200; i++) {
        await client.write([f]);
        written++;
      }
    })();
    await clock.advance(100);
    assert.ok(written * f.length <= 1000 + f.length, `wrote ${written} frames past a 1000-byte window`);
    assert.ok(written < 200);
    let read = 0;
    for await (const batch of server.incoming) {
      read += batch.length;
      if (read === 200) break;
    }
    await writer;
    assert.equal(written, 200);
    client.abort();
  });

  it("a server's abort with an error reaches the client as a refusal, with the server's code as remoteCode", async () => {
    const clock = new VirtualClock();
    const net = new MemoryNetwork({ clock });
    const { client, server } = await pair(net, clock);
    server.abort(new GossipError(ErrorCode.BadSignature, "bad signature"));
    await assert.rejects(
      readAll(client),
      (e: unknown) => e instanceof GossipError && e.code === ErrorCode.Remote && e.remoteCode === ErrorCode.BadSignature,
    );
    await assert.rejects(client.write([frame(1)]), (e: unknown) => e instanceof GossipError && e.code === ErrorCode.Closed);
  });

  it("refuses dials to nobody at once, times dials across a partition out on the clock, and cuts partitioned streams", async () => {
    const clock = new VirtualClock();
    const net = new MemoryNetwork({ clock, dialTimeoutMs: 3000 });
    const signal = new AbortController().signal;
    await assert.rejects(
      net.dialer("a").openStream("nobody:1", { signal }),
      (e: unknown) => e instanceof GossipError && e.code === ErrorCode.DialFailed,
    );
    const { client } = await pair(net, clock);
    const reading = readAll(client);
    net.partition(["a"], ["b"]);
    await assert.rejects(reading, (e: unknown) => e instanceof GossipError && e.code === ErrorCode.Canceled);
    const failed: GossipError[] = [];
    void net
      .dialer("a")
      .ping("b:1", { signal })
      .catch((e: GossipError) => failed.push(e));
    await clock.advance(2999);
    assert.equal(failed.length, 0);
    await clock.advance(1);
    assert.equal(failed[0]?.code, ErrorCode.DialTimeout);
    net.heal();
    await net.dialer("a").ping("b:1", { signal });
  });

  for (const latencyMs of [0, 3]) {
    it(`delivers the frames of each write in order, whatever the writer does with its array after (latency ${latencyMs} ms)`, async () => {
      const clock = new VirtualClock();
      const net = new MemoryNetwork({ clock, latencyMs });
      let server: WireStream | undefined;
      net.listen("b:1", (st) => {
        server = st;
      });
      let client: WireStream | undefined;
      void net
        .dialer("a")
        .openStream("b:1", { signal: new AbortController().signal })
        .then((c) => {
          client = c;
        });
      await clock.advanceUntil(() => client !== undefined && server !== undefined, { stepMs: 1, maxMs: 100 });
      assert.ok(client && server);
      const nonces: bigint[] = [];
      let done = false;
      const incoming = server.incoming;
      const reading = (async () => {
        for await (const batch of incoming) {
          for (const e of batch) nonces.push(parseGossipMessage(e.payload).nonce);
        }
        done = true;
      })();
      const frames = [frame(1), frame(2)];
      await client.write(frames);
      frames.length = 0;
      frames.push(frame(9));
      await client.write([frame(3)]);
      frames[0] = frame(8);
      client.end();
      server.end();
      await clock.advanceUntil(() => done, { stepMs: 1, maxMs: 100 });
      await reading;
      assert.deepEqual(nonces, [1n, 2n, 3n]);
    });
  }

  it("runs a Comm: two peers authenticate and exchange messages without sockets or real time", async () => {
    const clock = new VirtualClock();
    const net = new MemoryNetwork({ clock, latencyMs: 1 });
    const make = (host: string) => {
      const m = createPeerMaterial({ mspId: "Org1MSP", ca: caFor("Org1MSP") });
      const crypto = new X509CryptoService({
        mspId: "Org1MSP",
        certificate: m.identity.certPem,
        privateKey: m.identity.keyPem,
        trustedRoots: { Org1MSP: [caFor("Org1MSP").certPem] },
      });
      const comm = new Comm({ crypto, dialer: net.dialer(host), clock });
      net.listen(`${host}:7051`, (s) => void comm.handleStream(s));
      return comm;
    };
    const a = make("a");
    const b = make("b");
    const sub = b.accept();
    const received: bigint[] = [];
    const reading = (async () => {
      for await (const m of sub) {
        received.push(m.message.nonce);
        if (received.length === 3) break;
      }
    })();
    for (const n of [1n, 2n, 3n]) {
      void a.send(
        create(GossipMessageSchema, { nonce: n, tag: GossipMessage_Tag.EMPTY, content: { case: "empty", value: create(EmptySchema) } }),
        {
          endpoint: "b:7051",
          pkiId: b.pkiId,
        },
      );
    }
    await clock.advanceUntil(() => received.length === 3, { stepMs: 1, maxMs: 1000 });
    await reading;
    assert.deepEqual(received, [1n, 2n, 3n]);
    assert.equal(a.connections().length, 1);
    const stopping = Promise.all([a.stop(), b.stop()]);
    await clock.advanceUntil(() => net.openStreams === 0, { stepMs: 10, maxMs: 30_000 });
    await stopping;
  });
});
