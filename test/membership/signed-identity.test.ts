// Identity pull items kept without their identity (signed-identity.ts): the
// identity put back gives the bytes as signed, byte for byte.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import { cutIdentity, joinIdentity } from "../../src/membership/signed-identity.js";

describe("signed identity items", () => {
  it("cutting an identity out of a frame and putting it back gives the frame", () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ maxLength: 300 }),
        fc.uint8Array({ minLength: 1, maxLength: 900 }),
        fc.uint8Array({ maxLength: 300 }),
        (before, identity, after) => {
          const frame = Uint8Array.from([...before, ...identity, ...after]);
          const item = cutIdentity(frame, identity);
          assert.ok(item !== undefined);
          assert.equal(item.length, frame.length - identity.length + 4, "the identity's bytes are not kept");
          assert.equal(item.byteOffset, 0);
          assert.equal(item.buffer.byteLength, item.length, "in a buffer of its own");
          // The mapper's array may be another one with the same bytes (a connection's).
          assert.deepEqual(joinIdentity(item, Uint8Array.from(identity)), frame);
        },
      ),
      { numRuns: 300 },
    );
  });

  it("a view into a larger buffer is cut from its own bytes only", () => {
    const big = Uint8Array.from({ length: 64 }, (_, i) => i);
    const frame = big.subarray(10, 40);
    const identity = big.subarray(20, 25);
    const item = cutIdentity(frame, identity);
    assert.ok(item !== undefined);
    assert.deepEqual(joinIdentity(item, identity), frame);
  });

  it("refuses an identity the frame does not hold, or an empty one", () => {
    assert.equal(cutIdentity(Uint8Array.of(1, 2, 3), Uint8Array.of(4)), undefined);
    assert.equal(cutIdentity(Uint8Array.of(1, 2, 3), new Uint8Array(0)), undefined);
  });
});
