/**
 * UTF-8 for string fields, with the results protobuf-es gets from the
 * WHATWG encoding API: lone surrogates encode as U+FFFD, and decoding is
 * strict (proto3 strings are validated), so invalid input falls back to
 * protobuf-es, which reports it.
 */
import { fallback } from "./fallback.js";

const encoder = new TextEncoder();
const strictDecoder = new TextDecoder("utf-8", { fatal: true });

/** UTF-8 length of `s` as `TextEncoder` encodes it (ASCII fast path). */
export function utf8Length(s: string): number {
  const n = s.length;
  for (let i = 0; i < n; i++) {
    if (s.charCodeAt(i) >= 0x80) return Buffer.byteLength(s, "utf8");
  }
  return n;
}

/** Writes `s`, whose UTF-8 length `utf8Length` gave as `len`, at `at`; returns the offset after it. */
export function writeUtf8(buf: Uint8Array, at: number, s: string, len: number): number {
  if (len === s.length) {
    for (let i = 0; i < len; i++) buf[at + i] = s.charCodeAt(i);
  } else {
    encoder.encodeInto(s, buf.subarray(at, at + len));
  }
  return at + len;
}

/** `buf[start, end)` as a string; throws the fallback on invalid UTF-8 (short ASCII decoded inline). */
export function readUtf8(buf: Uint8Array, start: number, end: number): string {
  if (end - start <= 32) {
    let s = "";
    for (let i = start; i < end; i++) {
      const c = buf[i] as number;
      if (c >= 0x80) return decodeStrict(buf.subarray(start, end));
      s += String.fromCharCode(c);
    }
    return s;
  }
  return decodeStrict(buf.subarray(start, end));
}

function decodeStrict(b: Uint8Array): string {
  try {
    return strictDecoder.decode(b);
  } catch {
    throw fallback;
  }
}
