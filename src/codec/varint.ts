/**
 * Varints and length prefixes: the one set of helpers for protobuf's base-128
 * integers, shared by the compiled codec and the hand-written Envelope codec.
 *
 * Sizes and writes take unsigned values: a `number` must be an integer in
 * [0, 2^53), a `bigint` in [0, 2^64). Callers map signed values first (see
 * `u64Of` in the encoder), as protobuf does.
 */

/** Bytes of the varint of `n`, an integer in [0, 2^53). */
export function varintSize(n: number): number {
  if (n < 0x80) return 1;
  if (n < 0x4000) return 2;
  if (n < 0x200000) return 3;
  if (n < 0x10000000) return 4;
  let size = 5;
  n = Math.floor(n / 0x800000000);
  while (n > 0) {
    size++;
    n = Math.floor(n / 128);
  }
  return size;
}

/** Writes the varint of `n` (an integer in [0, 2^53)) at `at`; returns the offset after it. */
export function writeVarint(buf: Uint8Array, at: number, n: number): number {
  while (n >= 0x80) {
    buf[at++] = (n & 0x7f) | 0x80;
    n = Math.floor(n / 128);
  }
  buf[at++] = n;
  return at;
}

/**
 * Scratch that splits a bigint into two 32-bit halves without bigint
 * arithmetic: shifting and masking made two bigints per byte written, and
 * every alive message carries a 9-byte inc_num.
 */
const halves = new DataView(new ArrayBuffer(8));

/** Bytes of the varint of `v`, a bigint in [0, 2^64). */
export function bigVarintSize(v: bigint): number {
  halves.setBigUint64(0, v, true);
  const hi = halves.getUint32(4, true);
  if (hi === 0) return varintSize(halves.getUint32(0, true));
  // 32 bits of lo plus the significant bits of hi, 7 a byte.
  return Math.ceil((64 - Math.clz32(hi)) / 7);
}

/** Writes the varint of `v` (a bigint in [0, 2^64)) at `at`; returns the offset after it. */
export function writeBigVarint(buf: Uint8Array, at: number, v: bigint): number {
  halves.setBigUint64(0, v, true);
  let lo = halves.getUint32(0, true);
  let hi = halves.getUint32(4, true);
  while (hi !== 0 || lo > 0x7f) {
    buf[at++] = (lo & 0x7f) | 0x80;
    lo = ((lo >>> 7) | (hi << 25)) >>> 0;
    hi >>>= 7;
  }
  buf[at++] = lo;
  return at;
}

/** Bytes of the varint of an unsigned 64-bit value held as a number (below 2^53) or a bigint. */
export function anyVarintSize(v: number | bigint): number {
  return typeof v === "number" ? varintSize(v) : bigVarintSize(v);
}

/** Writes the varint of an unsigned 64-bit value held as a number (below 2^53) or a bigint. */
export function writeAnyVarint(buf: Uint8Array, at: number, v: number | bigint): number {
  return typeof v === "number" ? writeVarint(buf, at, v) : writeBigVarint(buf, at, v);
}

/** Bytes of a length-delimited value of `len` bytes: its length prefix and the bytes. */
export function delimitedSize(len: number): number {
  return varintSize(len) + len;
}

/** Writes `value` with its length prefix at `at`; returns the offset after it. */
export function writeDelimited(buf: Uint8Array, at: number, value: Uint8Array): number {
  at = writeVarint(buf, at, value.length);
  buf.set(value, at);
  return at + value.length;
}
