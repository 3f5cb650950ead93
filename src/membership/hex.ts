/**
 * Hex of bytes that live briefly (PKI-IDs parsed out of messages): core's
 * `pkiIdHex` caches per array in a WeakMap, which for arrays seen once costs
 * a copy and a weak entry each (measurable GC in large simulations). Core's
 * `hexOfBytes` writes through a scratch buffer: no Buffer is made around the
 * bytes (a Buffer per alive message received, and its hexSlice, cost about
 * twice as much).
 */
export { hexOfBytes as hex } from "../core/identity.js";
