// pkiIdFromHex decodes by hand (it runs per membership send): held to
// Buffer's hex decoding, and to refusing what is not hex.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import { hexOfBytes, pkiIdFromHex, pkiIdHex } from "../../src/core/identity.js";

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
