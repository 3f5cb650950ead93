/**
 * Memory for encoded messages that only go to the wire: each one is placed
 * right after the previous one in a shared slab, preceded by its 5-byte
 * length prefix (flag byte 0, length big-endian: the length-prefixed message
 * framing of gRPC, gRPC-web and Connect streaming). Consecutive messages thus
 * already form one framed region, which a transport can write as it is
 * instead of copying every message into a new buffer (see `encodeFrames` and
 * `framePieces` in src/grpc/framing.ts, which check every prefix before they
 * do; a write spanning several slabs goes out as one view per slab).
 *
 * A slab is 16 KiB, taken without zero-filling (every byte handed out is
 * written by the encoder), and stays alive while any message in it does.
 * Messages live in send queues (and in the HTTP/2 stream's buffer, for a
 * slow reader) until written, so a held message pins up to 16 KiB: twice
 * what Node's Buffer pool, which the encoders used before, pinned. Larger
 * slabs would let a few slow readers pin much more than the data they are
 * owed; 16 KiB is also HTTP/2's default frame size, so longer runs of
 * adjacent messages would be cut into frames of that size anyway.
 *
 * @private Internal code, not part of the public API.
 */

/** Bytes of the prefix in front of every message. */
export const framePrefixBytes = 5;

const slabBytes = 16 * 1024;
/** Larger messages get memory of their own (a slab wastes at most this at its end). */
const maxSlabMessageBytes = 4 * 1024;

let slab: Uint8Array = new Uint8Array(0);
/**
 * The slab's memory and where it starts in it, kept rather than read through
 * the `buffer` and `byteOffset` getters for every message (the view made
 * from them was ~4 % of W2's sender CPU).
 */
let slabBuffer: ArrayBufferLike = slab.buffer;
let slabOffset = 0;
let used = 0;

/**
 * `size` bytes for an encoded message, to be filled entirely by the caller,
 * preceded in memory by its length prefix when it fits a slab. A plain
 * Uint8Array.
 */
export function allocFrame(size: number): Uint8Array {
  if (size > maxSlabMessageBytes) {
    const own = Buffer.allocUnsafeSlow(size);
    return new Uint8Array(own.buffer, own.byteOffset, size);
  }
  let at = used;
  if (at + framePrefixBytes + size > slab.length) {
    const fresh = Buffer.allocUnsafeSlow(slabBytes);
    slabBuffer = fresh.buffer;
    slabOffset = fresh.byteOffset;
    slab = new Uint8Array(slabBuffer, slabOffset, slabBytes);
    at = 0;
  }
  const s = slab;
  s[at] = 0;
  s[at + 1] = size >>> 24;
  s[at + 2] = (size >>> 16) & 0xff;
  s[at + 3] = (size >>> 8) & 0xff;
  s[at + 4] = size & 0xff;
  used = at + framePrefixBytes + size;
  return new Uint8Array(slabBuffer, slabOffset + at + framePrefixBytes, size);
}
