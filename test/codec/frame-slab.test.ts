// Encoded messages placed back to back in a slab, each after its frame
// header, are written as they lie (no copy), and only when every header
// and every offset checks out; anything else is framed by copying.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import { allocFrame, framePrefixBytes } from "../../src/codec/frame-slab.js";
import { encodeFrames, framePieces } from "../../src/grpc/framing.js";

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

  it("framePieces: runs that lie framed in place are views of their memory, the messages between them one copy; together byte for byte the copy", () => {
    const a = filled(10, 1);
    const b = filled(20, 2);
    const own = Uint8Array.of(7, 7, 7); // not in a slab: copied
    const own2 = Uint8Array.of(8);
    const c = filled(30, 3);
    filled(5, 9); // in between: c and d are not adjacent
    const d = filled(40, 4);
    const frames = [a, b, own, own2, c, d];
    const pieces = framePieces(frames);
    assert.equal(pieces.length, 4, "a+b, own+own2 (one copy), c, d");
    assert.equal(pieces[0]?.buffer, a.buffer, "a run: the slab's memory");
    assert.equal(pieces[0]?.byteOffset, a.byteOffset - framePrefixBytes);
    assert.notEqual(pieces[1]?.buffer, own.buffer);
    assert.equal(pieces[2]?.buffer, c.buffer);
    assert.equal(pieces[3]?.buffer, d.buffer);
    assert.deepEqual(Buffer.concat(pieces), copied(frames));
    const inOneSlab = [filled(3, 1), filled(4, 2)];
    assert.equal(framePieces(inOneSlab).length, 1);
    assert.deepEqual(framePieces([]), []);
  });

  it("framePieces: a message whose header in front of it does not match is copied, not written from its memory", () => {
    const d = filled(30, 4);
    const part = d.subarray(0, 29);
    const e = filled(6, 5);
    const pieces = framePieces([part, e]);
    assert.equal(pieces.length, 2);
    assert.notEqual(pieces[0]?.buffer, d.buffer);
    assert.equal(pieces[1]?.buffer, e.buffer);
    assert.deepEqual(Buffer.concat(pieces), copied([part, e]));
  });
});

describe("framePieces (property)", () => {
  it("for any mix of slab frames, their parts, copies, repeats and orders: pieces are byte for byte the copy, and no piece is an empty view", () => {
    fc.assert(
      fc.property(
        fc.array(
          fc.record({
            kind: fc.constantFrom("slab", "own", "part", "repeat", "big"),
            size: fc.integer({ min: 0, max: 5000 }),
            fill: fc.integer({ min: 0, max: 255 }),
          }),
          { maxLength: 24 },
        ),
        (specs) => {
          const frames: Uint8Array[] = [];
          for (const s of specs) {
            const prev = frames.at(-1);
            if (s.kind === "repeat" && prev !== undefined) frames.push(prev);
            else if (s.kind === "part" && prev !== undefined && prev.length > 0) frames.push(prev.subarray(0, prev.length - 1));
            else if (s.kind === "own") frames.push(new Uint8Array(s.size % 300).fill(s.fill));
            else frames.push(filled(s.kind === "big" ? s.size : s.size % 600, s.fill));
          }
          const pieces = framePieces(frames);
          assert.deepEqual(Buffer.concat(pieces), copied(frames));
          for (const p of pieces) assert.ok(p.length >= framePrefixBytes, "every piece holds at least one frame");
        },
      ),
      { numRuns: 300 },
    );
  });
});
