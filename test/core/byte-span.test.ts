// Where bytes lie in a buffer, kept as one number (or, past exactness, as
// its two fields): the view made from it is always the bytes it was made of.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import { spanOf, viewOfSpan } from "../../src/core/byte-span.js";

describe("byte spans", () => {
  it("give back the same offset and length in any buffer up to 64 KiB, as one small integer", () => {
    fc.assert(
      fc.property(
        fc
          .integer({ min: 0, max: 65_536 })
          .chain((size) =>
            fc
              .integer({ min: 0, max: size })
              .chain((at) => fc.tuple(fc.constant(size), fc.constant(at), fc.integer({ min: 0, max: size - at }))),
          ),
        ([size, at, length]) => {
          const span = spanOf(at, length, size);
          assert.equal(typeof span, "number");
          const view = viewOfSpan(new ArrayBuffer(size), span);
          assert.equal(view.byteOffset, at);
          assert.equal(view.length, length);
        },
      ),
    );
    assert.ok(
      Number.isInteger(spanOf(1100, 900, 46_000)) && (spanOf(1100, 900, 46_000) as number) < 2 ** 31,
      "a handshake's is a small integer",
    );
  });

  it("keep offset and length as they are where one number would not be exact (100 MiB, bytes near its end)", () => {
    const size = 100 * 2 ** 20;
    const buffer = new ArrayBuffer(size);
    for (const [at, length] of [
      [size - 5, 5],
      [size, 0],
      [size - 1024, 1000],
      [0, size],
      [3, 7],
    ] as const) {
      const view = viewOfSpan(buffer, spanOf(at, length, size));
      assert.equal(view.byteOffset, at, `at ${at}`);
      assert.equal(view.length, length, `length at ${at}`);
    }
    assert.equal(typeof spanOf(size - 5, 5, size), "object", "not one number past exactness");
    assert.equal(typeof spanOf(3, 7, size), "number", "one number near the start");
  });
});
