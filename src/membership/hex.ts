/**
 * Hex of bytes that live briefly (PKI-IDs parsed out of messages): core's
 * `pkiIdHex` caches per array in a WeakMap, which for arrays seen once costs
 * a copy and a weak entry each (measurable GC in large simulations).
 */
export function hex(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString("hex");
}

/** Value of one lower-case hex digit's char code. */
function nibble(c: number): number {
  return c <= 57 ? c - 48 : c - 87;
}

/** The bytes of a lower-case hex string (one the membership made with {@link hex}), in a small array of their own. */
export function bytesOfHex(h: string): Uint8Array {
  const out = new Uint8Array(h.length >>> 1);
  for (let i = 0; i < out.length; i++) out[i] = (nibble(h.charCodeAt(2 * i)) << 4) | nibble(h.charCodeAt(2 * i + 1));
  return out;
}
