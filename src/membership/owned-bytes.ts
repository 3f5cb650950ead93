/**
 * Copies of received bytes for what membership keeps long-term. A received
 * message's byte fields are views into the buffer it arrived in (a whole
 * membership response or identity update, or an 8 KiB pool slab); one kept
 * view keeps that whole buffer alive, for every known peer.
 */
import { envelopeBytes } from "../core/envelope.js";
import { spansItsBuffer } from "../core/identity.js";
import type { Envelope } from "../gen/gossip/message_pb.js";

const noBytes = new Uint8Array(0);

/**
 * `bytes` without a large buffer behind it: `bytes` itself when it spans
 * (nearly) all of its buffer (core's `spansItsBuffer`), else a copy
 * (`Buffer#slice` would not copy). A handshake's identity is such a view
 * into the connection's copy of the handshake payload, which the connection
 * keeps anyway; membership's identity mapper keeping that buffer makes one
 * copy of a peer's identity, not two (X.509: ~800 bytes per known peer).
 * Kept arrays are shared, never written to. Empty fields share one empty
 * array.
 */
export function ownedBytes(bytes: Uint8Array): Uint8Array {
  if (bytes.length === 0) return noBytes;
  return spansItsBuffer(bytes) ? bytes : new Uint8Array(bytes);
}

/**
 * The bytes of `env`, as received when it was received untouched (else its
 * encoding), in a buffer of their own: decoded again, they give the same
 * Envelope and go out as the same bytes.
 */
export function ownedFrame(env: Envelope): Uint8Array {
  return new Uint8Array(envelopeBytes(env));
}

/**
 * {@link ownedFrame}'s buffer alone, for bytes kept per known peer: a kept
 * Uint8Array costs its own object (~96 bytes of heap) on top of its
 * ArrayBuffer's, so what membership keeps for long is the ArrayBuffer, and
 * a view of it ({@link bytesOf}) is made when the bytes are read.
 */
export function ownedBuffer(bytes: Uint8Array): ArrayBuffer {
  const copy = new Uint8Array(bytes.length);
  copy.set(bytes);
  return copy.buffer;
}

/** The bytes of a buffer kept by {@link ownedBuffer}, as a view made now. */
export function bytesOf(buffer: ArrayBuffer): Uint8Array {
  return new Uint8Array(buffer);
}
