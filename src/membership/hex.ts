/**
 * Hex of bytes that live briefly (PKI-IDs parsed out of messages): core's
 * `pkiIdHex` caches per array in a WeakMap, which for arrays seen once costs
 * a copy and a weak entry each (measurable GC in large simulations).
 */
export function hex(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString("hex");
}
