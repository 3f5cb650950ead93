/**
 * Identity pull items kept without their identity. An item is a signed
 * PeerIdentity Envelope, and the identity it carries (~700-800 bytes with
 * X.509) is held already by the identity mapper (for a peer that connected,
 * in the connection's handshake buffer): the pull store held every known
 * identity a second time. A kept item is the
 * Envelope's bytes with the identity cut out, followed by the identity's
 * offset in them (4 bytes, big-endian); putting the same identity back
 * gives the bytes as signed, byte for byte, for the wire.
 */

const offsetBytes = 4;

/**
 * `frame` (an Envelope's bytes) with `identity` cut out where its bytes lie
 * in it, in a buffer of its own (all of it: keep `.buffer` alone); undefined when `identity` is empty or not
 * in `frame`.
 */
export function cutIdentity(frame: Uint8Array, identity: Uint8Array): Uint8Array<ArrayBuffer> | undefined {
  if (identity.length === 0) return undefined;
  const at = Buffer.from(frame.buffer, frame.byteOffset, frame.byteLength).indexOf(identity);
  if (at < 0) return undefined;
  const item = new Uint8Array(frame.length - identity.length + offsetBytes);
  item.set(frame.subarray(0, at));
  item.set(frame.subarray(at + identity.length), at);
  new DataView(item.buffer).setUint32(item.length - offsetBytes, at);
  return item;
}

/** The bytes `item` was cut from ({@link cutIdentity}) with `identity` (the one cut out) back in place. */
export function joinIdentity(item: Uint8Array, identity: Uint8Array): Uint8Array {
  const rest = item.length - offsetBytes;
  const at = new DataView(item.buffer, item.byteOffset, item.byteLength).getUint32(rest);
  const frame = new Uint8Array(rest + identity.length);
  frame.set(item.subarray(0, at));
  frame.set(identity, at);
  frame.set(item.subarray(at, rest), at + identity.length);
  return frame;
}
