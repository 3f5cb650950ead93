/**
 * ECDSA signature encoding as Fabric wants it: DER `SEQUENCE { r, s }` with
 * `s` in the lower half of the curve order ("low-S"). Node's `crypto.sign`
 * returns either half, and Fabric's verifier rejects the upper one.
 */
import { ErrorCode, GossipError } from "./errors.js";

/** Orders of the curves Fabric's X.509 MSP signs with, by Node's curve name. */
export const curveOrders: Readonly<Record<string, bigint>> = {
  prime256v1: 0xffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551n,
  secp384r1: 0xffffffffffffffffffffffffffffffffffffffffffffffffc7634d81f4372ddf581a0db248b0a77aecec196accc52973n,
};

function bad(message: string): GossipError {
  return new GossipError(ErrorCode.BadSignature, message);
}

function readLength(der: Uint8Array, at: number): [length: number, next: number] {
  const first = der[at];
  if (first === undefined) throw bad("truncated signature");
  if (first < 0x80) return [first, at + 1];
  const n = first & 0x7f;
  if (n === 0 || n > 2) throw bad("malformed signature length");
  let len = 0;
  for (let i = 1; i <= n; i++) {
    const b = der[at + i];
    if (b === undefined) throw bad("truncated signature");
    len = len * 256 + b;
  }
  return [len, at + 1 + n];
}

function readInteger(der: Uint8Array, at: number): [value: bigint, next: number] {
  if (der[at] !== 0x02) throw bad("malformed signature: expected INTEGER");
  const [len, start] = readLength(der, at + 1);
  const end = start + len;
  if (len === 0 || end > der.length) throw bad("malformed signature integer");
  if ((der[start] ?? 0) & 0x80) throw bad("malformed signature: negative integer");
  let v = 0n;
  for (let i = start; i < end; i++) v = (v << 8n) | BigInt(der[i] ?? 0);
  return [v, end];
}

/** Parses a DER ECDSA signature. Throws `BadSignature` when it is malformed. */
export function parseDerSignature(der: Uint8Array): { r: bigint; s: bigint } {
  if (der[0] !== 0x30) throw bad("malformed signature: expected SEQUENCE");
  const [len, start] = readLength(der, 1);
  if (start + len !== der.length) throw bad("malformed signature: trailing or missing bytes");
  const [r, afterR] = readInteger(der, start);
  const [s, afterS] = readInteger(der, afterR);
  if (afterS !== der.length) throw bad("malformed signature: trailing bytes");
  if (r === 0n || s === 0n) throw bad("malformed signature: zero component");
  return { r, s };
}

function encodeInteger(v: bigint): number[] {
  const bytes: number[] = [];
  while (v > 0n) {
    bytes.unshift(Number(v & 0xffn));
    v >>= 8n;
  }
  if (bytes.length === 0 || (bytes[0] ?? 0) & 0x80) bytes.unshift(0);
  return [0x02, ...encodeLength(bytes.length), ...bytes];
}

function encodeLength(n: number): number[] {
  if (n < 0x80) return [n];
  if (n < 0x100) return [0x81, n];
  return [0x82, n >> 8, n & 0xff];
}

/** Encodes `(r, s)` as a DER ECDSA signature. */
export function encodeDerSignature(r: bigint, s: bigint): Uint8Array {
  const body = [...encodeInteger(r), ...encodeInteger(s)];
  return new Uint8Array([0x30, ...encodeLength(body.length), ...body]);
}

/** Returns `der` with `s` replaced by `n - s` when `s > n/2`. */
export function toLowS(der: Uint8Array, order: bigint): Uint8Array {
  const { r, s } = parseDerSignature(der);
  if (s <= order >> 1n) return der;
  return encodeDerSignature(r, order - s);
}

/** True when the signature's `s` is in the lower half of `order`. */
export function isLowS(der: Uint8Array, order: bigint): boolean {
  return parseDerSignature(der).s <= order >> 1n;
}
