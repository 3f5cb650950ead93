// How the gRPC wire stream hands frames to HTTP/2: batches given within one
// tick leave in one framed chunk, the 64 KiB bound writes at once and waits
// for 'drain', ending the stream writes what it holds first, and a fan-out
// frames each batch once for every stream.
import assert from "node:assert/strict";
import type { EventEmitter } from "node:events";
import { PassThrough } from "node:stream";
import { describe, it } from "node:test";
import { allocFrame } from "../../src/codec/frame-slab.js";
import { ErrorCode, GossipError } from "../../src/core/errors.js";
import { writeTaken } from "../../src/core/transport.js";
import { encodeFrames } from "../../src/grpc/framing.js";
import { Http2WireStream } from "../../src/grpc/wire-stream.js";

class FakeStream extends Http2WireStream {
  readonly chunks: Buffer[] = [];
  buffered = 0;
  accept = true;
  ended = false;
  /** The HTTP/2 stream stand-in: it carries 'data', 'drain' and 'close'. */
  readonly drain: EventEmitter;

  constructor() {
    const source = new PassThrough();
    super(
      { remoteAddress: "127.0.0.1:1", tls: false, remoteCertHash: undefined, localCertHash: undefined },
      { maxMessageBytes: 1 << 20, recvBuffSize: 20, gzip: false },
      source,
    );
    this.drain = source;
  }

  end(): void {
    this.flushHeld();
    this.ended = true;
  }

  abort(): void {}

  protected writable(): boolean {
    return !this.ended;
  }

  /** Whether the HTTP/2 stream was corked when each chunk was written (corked chunks leave in one vectored write). */
  readonly corked: boolean[] = [];

  protected writeChunk(buf: Buffer): boolean {
    this.corked.push((this.drain as PassThrough).writableCorked > 0);
    this.chunks.push(buf);
    this.buffered += buf.length;
    return this.accept;
  }

  protected bufferedBytes(): number {
    return this.buffered;
  }

  protected closeError(): GossipError {
    return new GossipError(ErrorCode.Closed, "closed");
  }
}

const frame = (n: number, fill: number) => new Uint8Array(n).fill(fill);
const tick = () => new Promise<void>((resolve) => process.nextTick(resolve));

describe("gRPC wire stream writes", () => {
  it("batches given within one tick leave in one chunk, in order", async () => {
    const s = new FakeStream();
    const a = frame(10, 1);
    const b = frame(20, 2);
    const c = frame(30, 3);
    assert.equal(s.write([a, b]), writeTaken);
    assert.equal(s.write([c]), writeTaken);
    assert.equal(s.chunks.length, 0, "nothing written before the tick ends");
    await tick();
    assert.equal(s.chunks.length, 1);
    assert.deepEqual(s.chunks[0], encodeFrames([a, b, c]));
    s.buffered = 0; // HTTP/2 took it: idle again
    s.write([a]);
    await tick();
    assert.equal(s.chunks.length, 2, "the next tick's batch is a chunk of its own");
    assert.deepEqual(s.chunks[1], encodeFrames([a]));
  });

  it("while an earlier chunk is still buffered, the batches of later ticks of the same turn join one chunk", async () => {
    const s = new FakeStream();
    const a = frame(16 * 1024, 1);
    const b = frame(20, 2);
    const c = frame(30, 3);
    s.write([a]);
    await tick();
    assert.equal(s.chunks.length, 1, "an idle stream writes at the end of the tick");
    // The first chunk (an HTTP/2 frame's worth) is still in the stream's buffer: busy.
    s.write([b]);
    await tick();
    s.write([c]);
    await tick();
    assert.equal(s.chunks.length, 1, "held over the ticks of this turn");
    await new Promise<void>((resolve) => setImmediate(resolve));
    assert.equal(s.chunks.length, 2);
    assert.deepEqual(s.chunks[1], encodeFrames([b, c]), "one chunk, in order");
    s.buffered = 0;
    s.write([a]);
    await tick();
    assert.equal(s.chunks.length, 3, "idle again: written within the tick");
  });

  it("a lone message whose predecessor is still being flushed is written within the tick (no wait for the check phase)", async () => {
    const s = new FakeStream();
    s.write([frame(1024, 1)]);
    await tick();
    assert.equal(s.chunks.length, 1);
    // The previous 1 KiB reply is still in the stream's buffer: not busy enough to hold the next.
    s.write([frame(1024, 2)]);
    await tick();
    assert.equal(s.chunks.length, 2, "written at the end of the tick, as an echo's reply must be");
  });

  it("at the 64 KiB bound writes everything held at once, then waits for 'drain'", async () => {
    const s = new FakeStream();
    s.accept = false;
    const big = frame(20_000, 7);
    for (let i = 0; i < 3; i++) assert.equal(s.write([big]), writeTaken);
    assert.equal(s.chunks.length, 0);
    let drained = false;
    const waiting = s.write([big]).then(() => {
      drained = true;
    });
    assert.equal(s.chunks.length, 1, "written at once");
    assert.deepEqual(s.chunks[0], encodeFrames([big, big, big, big]));
    await tick();
    assert.equal(drained, false, "waits while the stream's buffer is full");
    s.buffered = 0;
    s.drain.emit("drain");
    await waiting;
    assert.equal(drained, true);
    await tick();
    assert.equal(s.chunks.length, 1, "the queued end-of-tick write found nothing left");
  });

  it("streams given the same frames (a fan-out) share one framed chunk; any other batch is framed anew", async () => {
    const [s1, s2, s3, s4] = [new FakeStream(), new FakeStream(), new FakeStream(), new FakeStream()];
    const a = frame(10, 1);
    const b = frame(20, 2);
    const c = frame(20, 3);
    s1.write([a, b]);
    s2.write([a]);
    s2.write([b]);
    s3.write([a, c]);
    s4.write([a, b]);
    await tick();
    assert.deepEqual(s1.chunks[0], encodeFrames([a, b]));
    assert.equal(s2.chunks[0], s1.chunks[0], "the same frames in the same order: the same chunk");
    assert.deepEqual(s3.chunks[0], encodeFrames([a, c]), "same length, one frame differs: framed anew");
    assert.deepEqual(s4.chunks[0], encodeFrames([a, b]));
    assert.notEqual(s4.chunks[0], s1.chunks[0], "only the previous chunk is kept");
  });

  it("ending the stream writes what it holds first", () => {
    const s = new FakeStream();
    const a = frame(5, 9);
    s.write([a]);
    s.end();
    assert.equal(s.chunks.length, 1);
    assert.deepEqual(s.chunks[0], encodeFrames([a]));
  });

  it("frames that lie framed in several slabs go out as views of them, in one corked (vectored) write, in order", async () => {
    const s = new FakeStream();
    const slabbed = (size: number, fill: number) => {
      const f = allocFrame(size);
      f.fill(fill);
      return f;
    };
    // 3 KiB frames: a 16 KiB slab holds 5, so 12 of them span 3 slabs.
    const frames = Array.from({ length: 12 }, (_, i) => slabbed(3000, i));
    s.write(frames.slice(0, 7));
    s.write(frames.slice(7));
    await tick();
    assert.ok(s.chunks.length >= 3, `one view per slab run, got ${s.chunks.length}`);
    assert.ok(
      s.corked.every((c) => c),
      "all in one corked write",
    );
    assert.equal((s.drain as PassThrough).writableCorked, 0, "uncorked after");
    for (const c of s.chunks)
      assert.ok(
        frames.some((f) => f.buffer === c.buffer),
        "a view of a slab, not a copy",
      );
    assert.deepEqual(Buffer.concat(s.chunks), encodeFrames(frames.map((f) => Uint8Array.from(f))));
  });
});
