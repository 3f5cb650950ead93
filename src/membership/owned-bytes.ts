/**
 * Copies of received bytes for what membership keeps long-term. A received
 * message's byte fields are views into the buffer it arrived in (a whole
 * membership response or identity update, or an 8 KiB pool slab); one kept
 * view keeps that whole buffer alive, for every known peer.
 */
import { envelopeBytes } from "../core/envelope.js";
import type { Envelope } from "../gen/gossip/message_pb.js";

const noBytes = new Uint8Array(0);

/**
 * `bytes` in a buffer of its own: `bytes` itself when it already spans its
 * whole buffer (an identity another part already copied: shared, never
 * written to), else a copy (`Buffer#slice` would not copy). Empty fields
 * share one empty array.
 */
export function ownedBytes(bytes: Uint8Array): Uint8Array {
  if (bytes.length === 0) return noBytes;
  if (bytes.byteOffset === 0 && bytes.byteLength === bytes.buffer.byteLength) return bytes;
  return new Uint8Array(bytes);
}

/**
 * The bytes of `env`, as received when it was received untouched (else its
 * encoding), in a buffer of their own: decoded again, they give the same
 * Envelope and go out as the same bytes.
 */
export function ownedFrame(env: Envelope): Uint8Array {
  return new Uint8Array(envelopeBytes(env));
}
