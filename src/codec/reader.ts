/**
 * Reads the wire format within bounds for the compiled decoder. Stricter than
 * protobuf-es' `BinaryReader`: whatever it does not read exactly as
 * protobuf-es would (a tag that overflows 32 bits, a value that runs past its
 * enclosing message, invalid UTF-8, varints over 56 bits where a number is
 * read) throws the fallback, so protobuf-es decodes (or rejects) the input.
 */
import { fallback } from "./fallback.js";
import { readUtf8 } from "./utf8.js";

/** Scratch for {@link Reader.varint64}: two 32-bit halves read back as one uint64. */
const halves = new DataView(new ArrayBuffer(8));

export class Reader {
  pos = 0;
  constructor(
    readonly buf: Uint8Array,
    /** End of the message being read; moved in and out around nested ones. */
    public end: number,
  ) {}

  /** A varint as a number, unsigned; exact below 2^56 (larger ones fall back). */
  varint(): number {
    const buf = this.buf;
    let b = buf[this.pos++] as number;
    if (b < 0x80 && this.pos <= this.end) return b;
    let result = b & 0x7f;
    let mul = 128;
    for (let i = 1; i < 8; i++) {
      if (this.pos >= this.end) throw fallback;
      b = buf[this.pos++] as number;
      result += (b & 0x7f) * mul;
      if (b < 0x80) return result;
      mul *= 128;
    }
    throw fallback;
  }

  /**
   * A field's key (number * 8 + wire type). protobuf-es rejects keys of more
   * than 5 bytes or over 32 bits even when an overlong encoding holds a small
   * value, so those fall back (and fail there).
   */
  tag(): number {
    const start = this.pos;
    const key = this.varint();
    if (key > 0xffffffff || this.pos - start > 5) throw fallback;
    return key;
  }

  /** A varint's low 32 bits (protobuf's int32/uint32/enum reading, up to 10 bytes). */
  varint32(): number {
    const buf = this.buf;
    let lo = 0;
    for (let i = 0; i < 10; i++) {
      if (this.pos >= this.end) throw fallback;
      const b = buf[this.pos++] as number;
      if (i < 5) lo |= (b & 0x7f) << (7 * i);
      if (b < 0x80) return lo;
    }
    throw fallback;
  }

  /**
   * A 64-bit varint as a bigint (unsigned; bits beyond 64 of a 10-byte varint
   * dropped, as protobuf-es). Read as two 32-bit halves and turned into one
   * bigint at the end: building it byte by byte made ~4 bigints a byte, and
   * every alive message carries a 9-byte inc_num (ns since 1970).
   */
  varint64(): bigint {
    const buf = this.buf;
    const end = this.end;
    let pos = this.pos;
    let lo = 0;
    let b: number;
    for (let shift = 0; shift < 28; shift += 7) {
      if (pos >= end) throw fallback;
      b = buf[pos++] as number;
      lo |= (b & 0x7f) << shift;
      if (b < 0x80) {
        this.pos = pos;
        return BigInt(lo);
      }
    }
    if (pos >= end) throw fallback;
    b = buf[pos++] as number;
    lo |= (b & 0x0f) << 28;
    let hi = (b & 0x7f) >> 4;
    if (b >= 0x80) {
      // Bytes 6 to 10 carry bits 35-63; the 10th byte's bits beyond bit 63 fall off the 32-bit shift.
      for (let shift = 3; ; shift += 7) {
        if (shift > 31 || pos >= end) throw fallback;
        b = buf[pos++] as number;
        hi |= (b & 0x7f) << shift;
        if (b < 0x80) break;
      }
    }
    this.pos = pos;
    halves.setUint32(0, lo >>> 0, true);
    halves.setUint32(4, hi >>> 0, true);
    return halves.getBigUint64(0, true);
  }

  /** A length prefix that must fit in the current message. */
  length(): number {
    const len = this.varint();
    if (len > this.end - this.pos) throw fallback;
    return len;
  }

  /** A bytes value: a view into the input, as protobuf-es returns. */
  bytes(): Uint8Array {
    const len = this.length();
    const start = this.pos;
    this.pos = start + len;
    return this.buf.subarray(start, start + len);
  }

  string(): string {
    const len = this.length();
    const start = this.pos;
    this.pos = start + len;
    return readUtf8(this.buf, start, start + len);
  }
}
