// Encoded messages placed back to back in a slab, each after its frame
// header, are written as they lie (no copy), and only when every header
// and every offset checks out; anything else is framed by copying.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { allocFrame, framePrefixBytes } from "../../src/codec/frame-slab.js";
import { encodeFrames } from "../../src/grpc/framing.js";

/** What framing by copying writes (frames outside any slab: plain arrays of their own). */
function copied(frames: readonly Uint8Array[]): Buffer {
  return encodeFrames(frames.map((f) => Uint8Array.from(f)));
}

function filled(size: number, fill: number): Uint8Array {
  const f = allocFrame(size);
  f.fill(fill);
  return f;
}

describe("frame slab", () => {
  it("consecutive messages are framed where they lie: a view of the slab, byte for byte the copy", () => {
    const frames = [filled(10, 1), filled(300, 2), filled(1, 3)];
    const chunk = encodeFrames(frames);
    assert.equal(chunk.buffer, frames[0]?.buffer, "the slab's memory, not a copy");
    assert.equal(chunk.byteOffset, (frames[0]?.byteOffset ?? 0) - framePrefixBytes);
    assert.deepEqual(chunk, copied(frames));
  });

  it("messages that are not adjacent, or not after their own header, are copied", () => {
    const a = filled(10, 1);
    filled(5, 9); // in between: a and c are no longer adjacent
    const c = filled(20, 3);
    const gap = encodeFrames([a, c]);
    assert.notEqual(gap.buffer, a.buffer);
    assert.deepEqual(gap, copied([a, c]));
    const d = filled(30, 4);
    const part = d.subarray(0, 29); // right place, but its header says 30
    const wrongHeader = encodeFrames([part]);
    assert.notEqual(wrongHeader.buffer, d.buffer);
    assert.deepEqual(wrongHeader, copied([part]));
    const reordered = [filled(4, 5), filled(4, 6)].reverse();
    assert.deepEqual(encodeFrames(reordered), copied(reordered));
  });

  it("a run of received messages is written from the received chunk; a compressed frame's header never matches", () => {
    const frames = [Uint8Array.of(1, 2, 3), Uint8Array.of(4), new Uint8Array(70_000).fill(5)];
    const received = copied(frames);
    const views: Uint8Array[] = [];
    let at = 0;
    for (const f of frames) {
      views.push(new Uint8Array(received.buffer, received.byteOffset + at + framePrefixBytes, f.length));
      at += framePrefixBytes + f.length;
    }
    const chunk = encodeFrames(views);
    assert.equal(chunk.buffer, received.buffer);
    assert.deepEqual(chunk, received);
    received[0] = 1; // the first frame's flag: compressed
    const again = encodeFrames(views);
    assert.notEqual(again.buffer, received.buffer);
    assert.equal(again[0], 0, "framed anew, uncompressed");
  });

  it("large messages get memory of their own and are framed by copying", () => {
    const big = filled(20_000, 7);
    const small = filled(10, 8);
    assert.deepEqual(encodeFrames([big, small]), copied([big, small]));
  });
});
