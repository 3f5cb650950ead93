/**
 * The PKI-ID, timestamp and tag of a serialized alive message, read without
 * decoding it. Membership decides on those two alone whether a message is
 * new (Fabric's msgStore check comes before anything else), and most alive
 * messages a peer receives are not: each membership response repeats every
 * member, and gossip delivers each alive message about three times. Decoding
 * each of them into objects only to drop it was most of membership's
 * garbage.
 *
 * Conservative by construction: it answers only for the plain shape protobuf
 * serializers write (one-byte keys of the known fields, each submessage
 * once, an ASCII endpoint, a one-byte tag, no unknown fields), for which
 * `fromBinary` succeeds and gives a GossipMessage with this tag whose
 * `aliveMsg` has a membership with this PKI-ID and this timestamp. Anything else returns undefined and the caller decodes the
 * message as usual. Checked against protobuf-es by the differential tests
 * of test/codec.
 *
 * @private Internal code, not part of the public API.
 */

/** What {@link peekAlive} reads. */
export interface AlivePeek {
  /** The member's PKI-ID: a view into the input, never empty. */
  readonly pkiId: Uint8Array;
  readonly incNum: bigint;
  readonly seqNum: bigint;
  /** The GossipMessage's tag (0 when absent), as `fromBinary` reads it. */
  readonly tag: number;
}

const noBytes = new Uint8Array(0);

/** Scratch for a uint64 read as two 32-bit halves. */
const halves = new DataView(new ArrayBuffer(8));

/** Cursor over the input; a negative `pos` means "not the plain shape". */
class Cursor {
  pos = 0;
  buf: Uint8Array = noBytes;

  /** Points the cursor at `buf[start]`; returns it. */
  at(buf: Uint8Array, start: number): this {
    this.buf = buf;
    this.pos = start;
    return this;
  }

  /** A varint of at most 5 bytes below 2^32 (keys, lengths), or -1. */
  small(end: number): number {
    let v = 0;
    for (let shift = 0; shift < 35; shift += 7) {
      if (this.pos >= end) return -1;
      const b = this.buf[this.pos++] as number;
      v += (b & 0x7f) * 2 ** shift;
      if (b < 0x80) return v <= 0xffffffff ? v : -1;
    }
    return -1;
  }

  /** Skips a varint of at most 10 bytes; false when it does not end in time. */
  skipVarint(end: number): boolean {
    for (let i = 0; i < 10; i++) {
      if (this.pos >= end) return false;
      if ((this.buf[this.pos++] as number) < 0x80) return true;
    }
    return false;
  }

  /** A uint64 varint of at most 10 bytes (bits beyond 64 dropped, as protobuf-es), or undefined. */
  u64(end: number): bigint | undefined {
    let lo = 0;
    let hi = 0;
    for (let i = 0; i < 10; i++) {
      if (this.pos >= end) return undefined;
      const b = this.buf[this.pos++] as number;
      const bits = b & 0x7f;
      if (i < 4) lo |= bits << (7 * i);
      else if (i === 4) {
        lo |= (bits & 0x0f) << 28;
        hi = bits >> 4;
      } else hi |= bits << (7 * i - 32);
      if (b < 0x80) {
        halves.setUint32(0, lo >>> 0, true);
        halves.setUint32(4, hi >>> 0, true);
        return halves.getBigUint64(0, true);
      }
    }
    return undefined;
  }

  /** The end of a length-delimited value starting here, or -1 when it does not fit before `end`. */
  delimited(end: number): number {
    const len = this.small(end);
    if (len < 0 || len > end - this.pos) return -1;
    return this.pos + len;
  }
}

const cursor = new Cursor();

/**
 * The PKI-ID and timestamp of the alive message serialized in `payload` (a
 * GossipMessage), or undefined when `payload` is not in the plain shape
 * described in the module comment: the caller then decodes it.
 */
export function peekAlive(payload: Uint8Array): AlivePeek | undefined {
  // One cursor for every call (peekAlive is synchronous): it reads most alive messages received.
  const peek = peekWith(cursor.at(payload, 0), payload);
  cursor.buf = noBytes; // keeps no received buffer alive
  return peek;
}

function peekWith(c: Cursor, payload: Uint8Array): AlivePeek | undefined {
  const end = payload.length;
  let alive = -1;
  let aliveEnd = -1;
  let tag = 0;
  while (c.pos < end) {
    const key = payload[c.pos++] as number;
    if (key === 0x08) {
      if (!c.skipVarint(end)) return undefined; // nonce
    } else if (key === 0x18) {
      // The tag: one byte, as serializers write every Tag value (the last one counts, as in fromBinary).
      if (c.pos >= end || (payload[c.pos] as number) >= 0x80) return undefined;
      tag = payload[c.pos++] as number;
    } else if (key === 0x12) {
      const e = c.delimited(end); // channel
      if (e < 0) return undefined;
      c.pos = e;
    } else if (key === 0x2a && alive < 0) {
      aliveEnd = c.delimited(end);
      if (aliveEnd < 0) return undefined;
      alive = c.pos;
      c.pos = aliveEnd;
    } else {
      return undefined;
    }
  }
  if (alive < 0) return undefined;
  c.pos = alive;
  let member = -1;
  let memberEnd = -1;
  let time = -1;
  let timeEnd = -1;
  while (c.pos < aliveEnd) {
    const key = payload[c.pos++] as number;
    const e = key === 0x0a || key === 0x12 || key === 0x22 ? c.delimited(aliveEnd) : -1;
    if (e < 0) return undefined;
    if (key === 0x0a) {
      if (member >= 0) return undefined; // a second membership merges into the first
      member = c.pos;
      memberEnd = e;
    } else if (key === 0x12) {
      if (time >= 0) return undefined;
      time = c.pos;
      timeEnd = e;
    }
    c.pos = e; // identity: any bytes
  }
  if (member < 0 || time < 0) return undefined;
  let pkiId: Uint8Array | undefined;
  c.pos = member;
  while (c.pos < memberEnd) {
    const key = payload[c.pos++] as number;
    const e = key === 0x0a || key === 0x12 || key === 0x1a ? c.delimited(memberEnd) : -1;
    if (e < 0) return undefined;
    if (key === 0x0a) {
      // The endpoint: ASCII only, so that no UTF-8 question arises.
      for (let i = c.pos; i < e; i++) if ((payload[i] as number) >= 0x80) return undefined;
    } else if (key === 0x1a) {
      if (pkiId !== undefined) return undefined;
      pkiId = payload.subarray(c.pos, e);
    }
    c.pos = e;
  }
  if (pkiId === undefined || pkiId.length === 0) return undefined;
  let incNum: bigint | undefined = BigInt(0);
  let seqNum: bigint | undefined = BigInt(0);
  let seen = 0;
  c.pos = time;
  while (c.pos < timeEnd) {
    const key = payload[c.pos++] as number;
    const bit = key === 0x08 ? 1 : key === 0x10 ? 2 : 0;
    if (bit === 0 || (seen & bit) !== 0) return undefined;
    seen |= bit;
    const v = c.u64(timeEnd);
    if (v === undefined) return undefined;
    if (bit === 1) incNum = v;
    else seqNum = v;
  }
  return { pkiId, incNum, seqNum, tag };
}
