/**
 * The transport compliance suite: the scenarios every transport under core
 * (`WireStream` + `Dialer`, src/core/transport.ts) must pass the same way, run
 * by one test file per transport (as js-libp2p's interface-compliance-tests do
 * for its transports). A transport that deviates fails here, whichever it is.
 *
 * Every wait is bounded (`within`), every loop bounded in count.
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { after, before, describe, it, type TestContext } from "node:test";
import { create, toBinary } from "@bufbuild/protobuf";
import { ErrorCode, GossipError } from "../../src/core/errors.js";
import type { Dialer, WireReader, WireStream } from "../../src/core/transport.js";
import { type Envelope, EnvelopeSchema } from "../../src/gen/gossip/message_pb.js";

/** A connected stream: both ends of one GossipStream. */
export interface StreamPair {
  readonly client: WireStream;
  readonly server: WireStream;
}

/** The dialer side of a transport, for the Dialer scenarios. */
export interface DialerHarness {
  readonly dialer: Dialer;
  /** An endpoint where nothing listens (a dial is refused at once). */
  refusedEndpoint(): Promise<string>;
  /**
   * An endpoint that swallows the dial (no answer, as behind a partition).
   * `dialTimeoutMs` of the harness's dialer must be short (at most 2 s).
   */
  unreachableEndpoint(): Promise<string>;
}

/** What a test file gives the suite for one transport. */
export interface TransportHarness {
  /**
   * Opens a stream and returns both ends once the server end has been
   * handed to the server (a `streamTimeoutMs` becomes the stream's deadline).
   * The server end's `incoming` is not iterated until the test does: that is
   * a stalled reader.
   */
  open(options?: { streamTimeoutMs?: number }): Promise<StreamPair>;
  /** The endpoint `open()` dials (`host:port`). */
  readonly endpoint: string;
  /** SHA-256 of the client's and of the server's DER leaf when the transport is TLS. */
  readonly certHashes?: {
    readonly client: Uint8Array;
    readonly server: Uint8Array;
  };
  /**
   * Bytes a writer may get ahead of a reader that does not read, at most
   * (flow-control windows and buffers of both ends); the suite writes four
   * times as much.
   */
  readonly maxAheadBytes: number;
  /**
   * True when the client end decodes what it writes (a typed client, as the
   * Connect adapter's), so that bytes that are not an Envelope cannot be sent.
   */
  readonly typedWrites?: boolean;
  /** The Dialer scenarios; absent when the transport has no dialer of its own (Connect protocol). */
  readonly dialer?: DialerHarness;
  /** Releases everything the harness opened. */
  close(): Promise<void>;
}

/** Rejects when `p` does not settle within `ms`. */
export async function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: not within ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([p, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** An envelope whose payload starts with `n` (big-endian) and is `size` bytes long. */
export function numbered(n: number, size = 8): Uint8Array {
  const payload = new Uint8Array(Math.max(4, size));
  new DataView(payload.buffer).setUint32(0, n);
  return toBinary(EnvelopeSchema, create(EnvelopeSchema, { payload }));
}

function numberOf(e: Envelope): number {
  return new DataView(e.payload.buffer, e.payload.byteOffset, e.payload.byteLength).getUint32(0);
}

/** How the scenarios read a stream: its `incoming` iterable, or pushed to a reader (`readBy`). */
type Reading = "incoming" | "readBy";

/**
 * `s`'s incoming envelopes pushed through `readBy`, as an iterable: every
 * batch's delivery is held until the consumer asks for the next one, so that
 * a consumer that stops pulling holds the remote back as with `incoming`.
 * Fails the iteration when the stream breaks the reader's contract (a call
 * within `readBy`, an empty batch, a call after the end or the failure).
 */
export function pushed(s: WireStream): AsyncIterable<readonly Envelope[]> {
  const readBy = s.readBy?.bind(s);
  assert.ok(readBy, "the stream has no readBy");
  type Item = { batch: readonly Envelope[] } | { end: true } | { error: GossipError };
  const queue: Item[] = [];
  let wake: (() => void) | undefined;
  let release: (() => void) | undefined;
  let inReadBy = false;
  let over = false;
  let broken: string | undefined;
  const arrive = (item: Item, what: string) => {
    if (inReadBy) broken ??= `${what} within readBy`;
    if (over) broken ??= `${what} after the end or the failure`;
    if (!("batch" in item)) over = true;
    queue.push(item);
    wake?.();
  };
  const reader: WireReader = {
    onBatch(batch) {
      if (batch.length === 0) broken ??= "an empty batch";
      arrive({ batch }, "onBatch");
      return new Promise<void>((r) => (release = r));
    },
    onEnd: () => arrive({ end: true }, "onEnd"),
    onError: (error) => arrive({ error }, "onError"),
  };
  let started = false;
  return {
    [Symbol.asyncIterator]: () => ({
      async next(): Promise<IteratorResult<readonly Envelope[]>> {
        if (!started) {
          started = true;
          inReadBy = true;
          readBy(reader);
          inReadBy = false;
        }
        const r = release;
        release = undefined;
        r?.();
        while (queue.length === 0 && broken === undefined) await new Promise<void>((w) => (wake = w));
        if (broken !== undefined) throw new Error(`readBy contract: ${broken}`);
        const item = queue.shift() as Item;
        if ("batch" in item) return { value: item.batch, done: false };
        if ("end" in item) return { value: undefined, done: true };
        throw item.error;
      },
    }),
  };
}

/** Reads `s` to its end: the numbers of the envelopes and how many batches they came in. */
async function readAll(s: WireStream, reading: Reading): Promise<{ numbers: number[]; batches: number }> {
  const numbers: number[] = [];
  let batches = 0;
  for await (const batch of reading === "incoming" ? s.incoming : pushed(s)) {
    assert.ok(batch.length > 0, "a batch is never empty");
    batches++;
    for (const e of batch) numbers.push(numberOf(e));
  }
  return { numbers, batches };
}

/** The error `p` rejects with (fails when it resolves). */
async function rejection(p: Promise<unknown>, ms: number, what: string): Promise<GossipError> {
  try {
    await within(p, ms, what);
  } catch (e) {
    if (e instanceof GossipError) return e;
    throw e;
  }
  assert.fail(`${what}: resolved, expected a GossipError`);
}

const range = (n: number, from = 0) => Array.from({ length: n }, (_, i) => from + i);
const wait = 10_000;
const addressPattern = /^(\[[0-9a-fA-F:.]+\]|[^:[\]]+):\d{1,5}$/;
const sha256 = (b: Uint8Array) => new Uint8Array(createHash("sha256").update(b).digest());

/**
 * What the reader at the other end sees when a server aborts with a code:
 * the transport carries the code (`remoteCode`) and the reader's own `code`
 * says what it means for it.
 */
const refusals: readonly (readonly [ErrorCode, ErrorCode])[] = [
  [ErrorCode.BadSignature, ErrorCode.Remote],
  [ErrorCode.InvalidIdentity, ErrorCode.Remote],
  [ErrorCode.RateLimited, ErrorCode.RateLimited],
  [ErrorCode.MessageTooLarge, ErrorCode.RateLimited],
  [ErrorCode.HandshakeTimeout, ErrorCode.HandshakeTimeout],
  [ErrorCode.Stopping, ErrorCode.Closed],
  [ErrorCode.MalformedMessage, ErrorCode.Remote],
  [ErrorCode.Nack, ErrorCode.Remote],
];

/**
 * Registers the compliance scenarios for one transport. Every stream
 * scenario runs once reading through `incoming` and, with `readBy` (the
 * default), once more through `WireStream.readBy`; a transport declared
 * with it must have it on both ends. Without it the connection reads the
 * stream through `incoming` alone, so the second round does not apply.
 */
export function describeTransport(name: string, factory: () => Promise<TransportHarness>, options: { readBy?: boolean } = {}): void {
  const readings = options.readBy === false ? (["incoming"] as const) : (["incoming", "readBy"] as const);
  describe(`transport compliance: ${name}`, () => {
    let h: TransportHarness;
    const open: StreamPair[] = [];
    before(async () => {
      h = await factory();
    });
    after(async () => {
      for (const p of open) {
        p.client.abort();
        p.server.abort();
      }
      await h?.close();
    });
    const pair = async (options?: { streamTimeoutMs?: number }): Promise<StreamPair> => {
      const p = await within(h.open(options), wait, "open a stream");
      open.push(p);
      return p;
    };
    const settled = (p: StreamPair) => within(Promise.all([p.client.closed, p.server.closed]), wait, "both ends closed");

    for (const reading of readings) {
      describe(`read through ${reading}`, () => {
        /** A connected pair; with `readBy`, both ends must have it. */
        const pairFor = async (_t: TestContext, options?: { streamTimeoutMs?: number }): Promise<StreamPair | undefined> => {
          const p = await pair(options);
          if (reading === "readBy") assert.ok(p.client.readBy !== undefined && p.server.readBy !== undefined, "a stream end has no readBy");
          return p;
        };
        const read = (s: WireStream) => readAll(s, reading);
        const iterate = (s: WireStream) => (reading === "incoming" ? s.incoming : pushed(s));

        it("carries many envelopes in order both ways, each write in at most one batch, then half-closes client first", async (t) => {
          const p = await pairFor(t);
          if (!p) return;
          const toServer = read(p.server);
          for (const i of range(500)) await within(p.client.write([numbered(i)]), wait, "client write");
          for (let i = 500; i < 2000; i += 100)
            await within(p.client.write(range(100, i).map((n) => numbered(n))), wait, "client batch write");
          p.client.end();
          const got = await within(toServer, wait, "server reads to the end");
          assert.deepEqual(got.numbers, range(2000));
          assert.ok(got.batches <= 2000);
          // The server still writes after the client's half-close (a gRPC server streams after the request side ended).
          const toClient = read(p.client);
          for (let i = 0; i < 1000; i += 50) await within(p.server.write(range(50, i).map((n) => numbered(n))), wait, "server write");
          p.server.end();
          assert.deepEqual((await within(toClient, wait, "client reads to the end")).numbers, range(1000));
          await settled(p);
        });

        it("half-closes server first: the client sees the end, and closed settles once the client ends too", async (t) => {
          const p = await pairFor(t);
          if (!p) return;
          const toClient = read(p.client);
          await within(p.server.write([numbered(1), numbered(2)]), wait, "server write");
          p.server.end();
          assert.deepEqual((await within(toClient, wait, "client reads to the end")).numbers, [1, 2]);
          const toServer = read(p.server);
          p.client.end();
          assert.deepEqual((await within(toServer, wait, "server reads to the end")).numbers, []);
          await settled(p);
        });

        it("closed does not settle while only one side has ended", async (t) => {
          const p = await pairFor(t);
          if (!p) return;
          const toServer = read(p.server);
          p.client.end();
          await within(toServer, wait, "server sees the client's end");
          let closed = false;
          void p.client.closed.then(() => (closed = true));
          await new Promise((r) => setTimeout(r, 50));
          assert.equal(closed, false, "the stream closed while the server had not ended its side");
          p.server.end();
          await settled(p);
        });

        it("rejects a write after end() or abort() with Closed", async (t) => {
          const p = await pairFor(t);
          if (!p) return;
          p.client.end();
          const afterEnd = await rejection(p.client.write([numbered(1)]), wait, "write after end");
          assert.equal(afterEnd.code, ErrorCode.Closed);
          p.server.abort();
          const afterAbort = await rejection(p.server.write([numbered(1)]), wait, "write after abort");
          assert.equal(afterAbort.code, ErrorCode.Closed);
          await settled(p);
          assert.equal((await rejection(p.client.write([numbered(1)]), wait, "write after close")).code, ErrorCode.Closed);
        });

        for (const [code, seen] of refusals) {
          it(`a server's abort(${code}) reaches the client as ${seen} with remoteCode ${code}, after what was written before`, async (t) => {
            const p = await pairFor(t);
            if (!p) return;
            await within(p.server.write([numbered(7)]), wait, "server write");
            const received: number[] = [];
            const reading = (async () => {
              for await (const batch of iterate(p.client)) for (const e of batch) received.push(numberOf(e));
            })();
            // Let the envelope arrive before the abort, as a refusal after a message would.
            const deadline = Date.now() + wait;
            while (received.length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
            p.server.abort(new GossipError(code, `refused with ${code}`));
            const e = await rejection(reading, wait, "client reading");
            assert.deepEqual(received, [7]);
            assert.equal(e.code, seen, e.message);
            assert.equal(e.remoteCode, code, e.message);
            await settled(p);
            const own = await rejection(read(p.server), wait, "the server's reader after its own abort");
            assert.equal(own.code, code, "the aborting end's reader sees its own error");
          });
        }

        it("a server's abort() without an error ends the client's incoming cleanly", async (t) => {
          const p = await pairFor(t);
          if (!p) return;
          const toClient = read(p.client);
          await within(p.server.write([numbered(3)]), wait, "server write");
          p.server.abort();
          assert.deepEqual((await within(toClient, wait, "client reads to the end")).numbers, [3]);
          await settled(p);
        });

        it("a client's abort, with or without an error, reaches the server as Canceled (no remoteCode) and closes both ends", async (t) => {
          for (const error of [undefined, new GossipError(ErrorCode.UnexpectedPeer, "wrong peer")]) {
            const p = await pairFor(t);
            if (!p) return;
            const toServer = read(p.server);
            p.client.abort(error);
            const e = await rejection(toServer, wait, "server reading");
            assert.equal(e.code, ErrorCode.Canceled, e.message);
            assert.equal(e.remoteCode, undefined);
            await settled(p);
            if (error) {
              const local = await rejection(read(p.client), wait, "client reading after its own abort");
              assert.equal(local.code, ErrorCode.UnexpectedPeer, "the aborting end's reader sees its own error");
            }
          }
        });

        it("refuses bytes that are not an Envelope: the server's reader fails with MalformedMessage, the client's sees the refusal", async (t) => {
          if (h.typedWrites) return t.skip("the client cannot send them");
          const p = await pairFor(t);
          if (!p) return;
          const received: number[] = [];
          const toServer = (async () => {
            for await (const batch of iterate(p.server)) for (const e of batch) received.push(numberOf(e));
          })();
          const toClient = read(p.client);
          // Field 1 (payload) announced with 5 bytes, then only 1: truncated protobuf.
          await within(p.client.write([numbered(1), Uint8Array.from([0x0a, 0x05, 0x01])]), wait, "client write");
          const s = await rejection(toServer, wait, "server reading");
          assert.equal(s.code, ErrorCode.MalformedMessage, s.message);
          assert.deepEqual(received, [1], "the envelope before the bad one is delivered");
          const c = await rejection(toClient, wait, "client reading");
          assert.equal(c.code, ErrorCode.Remote, c.message);
          assert.equal(c.remoteCode, ErrorCode.MalformedMessage, c.message);
          await settled(p);
        });

        it("holds a writer that outruns a stalled reader (bounded memory), and resumes it when the reader reads", async (t) => {
          const p = await pairFor(t);
          if (!p) return;
          const size = 16 * 1024;
          const total = Math.ceil((4 * h.maxAheadBytes) / size);
          let written = 0;
          let failed: unknown;
          const writer = (async () => {
            for (let i = 0; i < total; i++) {
              await p.client.write([numbered(i, size)]);
              written++;
            }
            p.client.end();
          })().catch((e: unknown) => {
            failed = e;
          });
          // Wait until the writer stops making progress.
          let last = -1;
          const deadline = Date.now() + wait;
          while (written !== last && written < total && Date.now() < deadline) {
            last = written;
            await new Promise((r) => setTimeout(r, 100));
          }
          assert.equal(failed, undefined);
          assert.ok(written < total, `the writer wrote all ${total} envelopes to a reader that does not read`);
          assert.ok(written * size <= h.maxAheadBytes, `the writer got ${written * size} bytes ahead (bound ${h.maxAheadBytes})`);
          const got = await within(read(p.server), 2 * wait, "server reads to the end");
          await within(writer, wait, "writer resumes and finishes");
          assert.equal(failed, undefined);
          assert.deepEqual(got.numbers, range(total));
          p.server.end();
          await settled(p);
        });

        it("gives the stream's deadline: the client's reader fails with HandshakeTimeout, the server's with Canceled", async (t) => {
          const started = Date.now();
          const p = await pairFor(t, { streamTimeoutMs: 300 });
          if (!p) return;
          const [c, s] = await Promise.all([
            rejection(read(p.client), wait, "client reading"),
            rejection(read(p.server), wait, "server reading"),
          ]);
          assert.ok(Date.now() - started >= 250, "the deadline fired early");
          assert.equal(c.code, ErrorCode.HandshakeTimeout, c.message);
          assert.equal(s.code, ErrorCode.Canceled, s.message);
          await settled(p);
        });

        it("reports remote addresses as host:port (the client's is the endpoint dialed) and the TLS facts of both ends", async (t) => {
          const p = await pairFor(t);
          if (!p) return;
          assert.equal(p.client.remoteAddress, h.endpoint);
          assert.match(p.server.remoteAddress, addressPattern);
          assert.notEqual(p.server.remoteAddress, h.endpoint);
          const tls = h.certHashes !== undefined;
          assert.equal(p.client.tls, tls);
          assert.equal(p.server.tls, tls);
          if (h.certHashes) {
            assert.deepEqual(p.client.remoteCertHash, h.certHashes.server);
            assert.deepEqual(p.client.localCertHash, h.certHashes.client);
            assert.deepEqual(p.server.remoteCertHash, h.certHashes.client);
            assert.deepEqual(p.server.localCertHash, h.certHashes.server);
          } else {
            for (const v of [p.client.remoteCertHash, p.client.localCertHash, p.server.remoteCertHash, p.server.localCertHash]) {
              assert.equal(v, undefined);
            }
          }
          p.client.abort();
          await settled(p);
        });

        if (reading === "readBy") {
          it("takes over from incoming after a first batch (as a connection after its handshake), with nothing lost", async (t) => {
            const p = await pairFor(t);
            if (!p) return;
            const incoming = p.server.incoming[Symbol.asyncIterator]();
            await within(p.client.write([numbered(0)]), wait, "client write");
            const first = await within(incoming.next(), wait, "the first batch");
            assert.deepEqual(first.done ? [] : first.value.map(numberOf), [0]);
            for (let i = 1; i < 300; i += 50) await within(p.client.write(range(50, i).map((n) => numbered(n))), wait, "client write");
            p.client.end();
            const rest: number[] = [];
            for await (const batch of pushed(p.server)) {
              for (const e of batch) rest.push(numberOf(e));
            }
            assert.deepEqual(rest, range(300, 1));
            p.server.end();
            await settled(p);
          });
        }
      });
    }

    describe("Dialer", () => {
      const signal = () => AbortSignal.timeout(wait);
      it("pings a live endpoint", async (t) => {
        if (!h.dialer) return t.skip("no dialer");
        await within(h.dialer.dialer.ping(h.endpoint, { signal: signal() }), wait, "ping");
      });
      it("refuses a dial to an endpoint where nothing listens with DialFailed, for streams and pings", async (t) => {
        if (!h.dialer) return t.skip("no dialer");
        const endpoint = await h.dialer.refusedEndpoint();
        const e = await rejection(h.dialer.dialer.openStream(endpoint, { signal: signal() }), wait, "dial");
        assert.equal(e.code, ErrorCode.DialFailed, e.message);
        const ping = await rejection(h.dialer.dialer.ping(endpoint, { signal: signal() }), wait, "ping");
        assert.equal(ping.code, ErrorCode.DialFailed, ping.message);
      });
      it("times out a dial that gets no answer with DialTimeout", async (t) => {
        if (!h.dialer) return t.skip("no dialer");
        const endpoint = await h.dialer.unreachableEndpoint();
        const e = await rejection(h.dialer.dialer.openStream(endpoint, { signal: signal() }), wait, "dial");
        assert.equal(e.code, ErrorCode.DialTimeout, e.message);
      });
      it("stops a dial when its signal aborts, with Stopping", async (t) => {
        if (!h.dialer) return t.skip("no dialer");
        const endpoint = await h.dialer.unreachableEndpoint();
        const ac = new AbortController();
        const dialing = h.dialer.dialer.openStream(endpoint, {
          signal: ac.signal,
        });
        setTimeout(() => ac.abort(new GossipError(ErrorCode.Stopping, "comm is stopping")), 20);
        const e = await rejection(dialing, wait, "dial");
        assert.equal(e.code, ErrorCode.Stopping, e.message);
      });
    });
  });
}

export { sha256 as certHash };
