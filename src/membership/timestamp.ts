/** Alive message timestamps: Fabric's PeerTime, compared per origin only. */

/** An alive message's timestamp: the origin's start time in ns and a counter. */
export interface Timestamp {
  readonly incNum: bigint;
  readonly seqNum: bigint;
}

/** -1, 0 or 1 as `a` is older than, equal to or newer than `b` (inc_num first, then seq_num). */
export function compareTimestamps(a: Timestamp, b: Timestamp): -1 | 0 | 1 {
  if (a.incNum !== b.incNum) return a.incNum > b.incNum ? 1 : -1;
  if (a.seqNum !== b.seqNum) return a.seqNum > b.seqNum ? 1 : -1;
  return 0;
}

/** True when `a` is strictly newer than `b`. */
export function isNewer(a: Timestamp, b: Timestamp): boolean {
  return compareTimestamps(a, b) > 0;
}

/**
 * A {@link Timestamp} as one bigint, inc_num in the high 64 bits: it orders
 * as the pair does (both are uint64 on the wire). Kept per known peer by the
 * view and the msgStore: one 128-bit bigint (32 bytes of heap) instead of an
 * object and two bigints (~88).
 */
export type PackedTimestamp = bigint;

/** `t` packed ({@link PackedTimestamp}). */
export function packTimestamp(t: Timestamp): PackedTimestamp {
  return (BigInt.asUintN(64, t.incNum) << 64n) | BigInt.asUintN(64, t.seqNum);
}

/** The {@link Timestamp} packed in `p` (a new object). */
export function unpackTimestamp(p: PackedTimestamp): Timestamp {
  return { incNum: p >> 64n, seqNum: BigInt.asUintN(64, p) };
}

/** Fabric's text form "<incNs>, <seq>". */
export function timestampString(t: Timestamp): string {
  return `${t.incNum}, ${t.seqNum}`;
}

let lastIncNum = 0n;

/**
 * Our inc_num: the wall-clock time in ns, strictly greater than any earlier
 * value in this process, so that a restart (even within the same millisecond,
 * in tests) is newer than the run before it.
 */
export function newIncNum(wallClockMs: () => number): bigint {
  const ns = BigInt(Math.floor(wallClockMs() * 1000)) * 1000n;
  lastIncNum = ns > lastIncNum ? ns : lastIncNum + 1n;
  return lastIncNum;
}
