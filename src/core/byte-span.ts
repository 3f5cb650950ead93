/**
 * Where some bytes lie in a buffer, as one number. What a layer keeps per
 * known peer for long (an identity) is kept as its buffer and this number,
 * and a Uint8Array over them is made when the bytes are read: a kept
 * Uint8Array costs ~96 bytes of heap of its own, a field holding a small
 * integer nothing more.
 */

/**
 * Where bytes lie in a buffer ({@link spanOf}): one number, or for a buffer
 * so large that the number would not be exact, the two fields as they are.
 */
export type Span = number | { readonly at: number; readonly length: number };

/**
 * `at` and `length` of bytes within a buffer of `size` bytes, as one number
 * (`at * (size + 1) + length`) while that is exact (buffers up to ~64 MiB,
 * or bytes near their start), else as an object. The number is a small
 * integer, which V8 keeps in the field itself, while `size` is below ~46 KB.
 */
export function spanOf(at: number, length: number, size: number): Span {
  const span = at * (size + 1) + length;
  return Number.isSafeInteger(span) ? span : { at, length };
}

/** The bytes at {@link spanOf}'s `span` in `buffer`, as a view made now (not a copy). */
export function viewOfSpan(buffer: ArrayBuffer, span: Span): Uint8Array {
  if (typeof span !== "number") return new Uint8Array(buffer, span.at, span.length);
  const base = buffer.byteLength + 1;
  const length = span % base;
  return new Uint8Array(buffer, (span - length) / base, length);
}
