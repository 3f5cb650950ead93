// pkiIdFromHex decodes by hand (it runs per membership send): held to
// Buffer's hex decoding, and to refusing what is not hex.
// bytesEqual (its shortcut for views of the same bytes) held to Buffer.equals.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import { bytesEqual, hexOfBytes, pkiIdFromHex, pkiIdHex } from "../../src/core/identity.js";

describe("pkiIdFromHex", () => {
  it("gives the bytes Buffer decodes, in an array of its own, for hex of either case", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 48 }), fc.boolean(), (bytes, upper) => {
        const text = Buffer.from(bytes).toString("hex");
        const id = pkiIdFromHex(upper ? text.toUpperCase() : text);
        assert.deepEqual(id, new Uint8Array(bytes));
        assert.equal(id.byteOffset, 0);
        assert.equal(id.buffer.byteLength, bytes.length);
        assert.equal(pkiIdHex(id), text);
      }),
    );
  });

  it("throws TypeError for an odd length or any character that is not a hex digit", () => {
    for (const bad of ["a", "abc", "0g", "g0", " 0", "0-", "zz", "0x12", "é1"]) {
      assert.throws(() => pkiIdFromHex(bad), TypeError, bad);
    }
    fc.assert(
      fc.property(fc.string({ minLength: 1, maxLength: 12 }), (s) => {
        const valid = s.length % 2 === 0 && /^[0-9a-fA-F]*$/.test(s);
        if (valid) assert.deepEqual(pkiIdFromHex(s), new Uint8Array(Buffer.from(s, "hex")));
        else assert.throws(() => pkiIdFromHex(s), TypeError);
      }),
    );
  });
});

describe("hexOfBytes", () => {
  it("gives Buffer's lower-case hex of any bytes, views into larger buffers included, and never caches", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 200 }), fc.nat(8), (bytes, offset) => {
        const big = new Uint8Array(offset + bytes.length + 3).fill(0xee);
        big.set(bytes, offset);
        const view = big.subarray(offset, offset + bytes.length);
        const text = Buffer.from(bytes).toString("hex");
        assert.equal(hexOfBytes(view), text);
        view.reverse();
        assert.equal(hexOfBytes(view), Buffer.from(bytes).reverse().toString("hex"), "bytes changed in place give their new hex");
      }),
    );
  });
});

describe("bytesEqual", () => {
  it("agrees with Buffer.equals for views anywhere in one buffer or in two (views of the same bytes are equal without reading them)", () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 1, maxLength: 40 }), fc.nat(), fc.nat(), fc.nat(), fc.boolean(), (bytes, i, j, n, apart) => {
        const a0 = i % bytes.length;
        const b0 = j % bytes.length;
        const length = n % (bytes.length - Math.max(a0, b0) + 1);
        const a = bytes.subarray(a0, a0 + length);
        const b = (apart ? Uint8Array.from(bytes) : bytes).subarray(b0, b0 + length);
        assert.equal(bytesEqual(a, b), Buffer.from(a).equals(Buffer.from(b)));
      }),
    );
  });
});
