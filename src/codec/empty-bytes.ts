const none = new Uint8Array(0);

/**
 * A new empty bytes value, as protobuf-es gives an unset bytes field: an
 * object of its own, deep-equal to `new Uint8Array(0)`, but sharing one
 * zero-length buffer (`new Uint8Array(0)` allocates a backing store each
 * time, about eight times the cost; a decoded message has several).
 */
export function emptyBytes(): Uint8Array {
  return none.subarray(0, 0);
}
