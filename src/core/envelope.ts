/**
 * Envelopes on the wire: a hand-written encoder for `gossip.Envelope` (the one
 * message on the hot path, of a fixed layout), decoding through the compiled
 * codec, plus Fabric's signing rules.
 */
import { create, toBinary } from "@bufbuild/protobuf";
import { allocFrame } from "../codec/frame-slab.js";
import { decodeHotEnvelope, decodeHotEnvelopeIn, decodeHotGossipMessage, encodeHotEnvelope } from "../codec/hot-path.js";
import {
  compileEncoder,
  decodeMessage,
  delimitedSize,
  encodeMessage,
  mayHaveUnknownFields,
  varintSize,
  writeDelimited,
  writeVarint,
} from "../codec/index.js";
import { type Envelope, EnvelopeSchema, type GossipMessage, GossipMessageSchema, type SecretEnvelope } from "../gen/gossip/message_pb.js";
import type { CryptoService, IdentityVerifier } from "./crypto.js";
import { ErrorCode, GossipError } from "./errors.js";
import { defaultTag } from "./tags.js";

const emptyBytes: Uint8Array = new Uint8Array(0);

/** An implicit-presence bytes field with a one-byte tag: omitted when empty. */
function bytesFieldSize(len: number): number {
  return len === 0 ? 0 : 1 + delimitedSize(len);
}

function writeBytesField(buf: Uint8Array, at: number, tag: number, value: Uint8Array): number {
  if (value.length === 0) return at;
  buf[at] = tag;
  return writeDelimited(buf, at + 1, value);
}

/**
 * Serializes an Envelope (proto3 binary, fields in number order, empty fields
 * omitted), byte-identical to protobuf-es' `toBinary` for the same message
 * (one with unknown fields, which only `toBinary` writes back, goes through it).
 */
export function encodeEnvelope(env: EnvelopeFields): Uint8Array {
  return encodeEnvelopeIn(env, ownBytes);
}

/**
 * {@link encodeEnvelope} into a frame slab (see src/codec/frame-slab.ts), for
 * an envelope that only goes to the wire: the transport then writes it where
 * it is. A handshake message encoded on its own is otherwise copied into
 * Node's shared Buffer pool when framed, and every connection's TLS socket
 * keeps a small slice of that pool (its ALPN list) for its whole life: the
 * handshakes of a burst of peers then spread those slices over, and pin, a
 * pool slab (8 KiB) every few connections.
 */
export function encodeEnvelopeFrame(env: EnvelopeFields): Uint8Array {
  return encodeEnvelopeIn(env, allocFrame);
}

/** The fields {@link encodeEnvelope} writes (an Envelope, or an object of its shape). */
type EnvelopeFields = {
  payload: Uint8Array;
  signature: Uint8Array;
  secretEnvelope?: SecretEnvelope | undefined;
};

function ownBytes(size: number): Uint8Array {
  return new Uint8Array(size);
}

function encodeEnvelopeIn(env: EnvelopeFields, alloc: (size: number) => Uint8Array): Uint8Array {
  const secret = env.secretEnvelope;
  if (mayHaveUnknownFields(env) || (secret !== undefined && mayHaveUnknownFields(secret))) return toBinary(EnvelopeSchema, env as Envelope);
  const secretLen = secret ? bytesFieldSize(secret.payload.length) + bytesFieldSize(secret.signature.length) : 0;
  const size = bytesFieldSize(env.payload.length) + bytesFieldSize(env.signature.length) + (secret ? 1 + delimitedSize(secretLen) : 0);
  // Every byte is written below (allocFrame does not zero-fill).
  const buf = alloc(size);
  let at = writeBytesField(buf, 0, 0x0a, env.payload);
  at = writeBytesField(buf, at, 0x12, env.signature);
  if (secret) {
    buf[at++] = 0x1a;
    at = writeVarint(buf, at, secretLen);
    at = writeBytesField(buf, at, 0x0a, secret.payload);
    writeBytesField(buf, at, 0x12, secret.signature);
  }
  return buf;
}

/** What protobuf-es keeps of an unknown field: its number, wire type and raw value (a view into the input). */
interface UnknownField {
  readonly no: number;
  readonly wireType: number;
  readonly data: Uint8Array;
}

/** A message of bytes fields 1 and 2 (Envelope's first two, all of SecretEnvelope) plus its unknown fields. */
interface TwoBytesFields {
  payload: Uint8Array;
  signature: Uint8Array;
}

function unknownOf(m: object): readonly UnknownField[] | undefined {
  return (m as { $unknown?: readonly UnknownField[] }).$unknown;
}

function unknownSize(unknown: readonly UnknownField[] | undefined): number {
  if (unknown === undefined) return 0;
  let n = 0;
  for (const u of unknown) n += varintSize(((u.no << 3) | u.wireType) >>> 0) + u.data.length;
  return n;
}

/** Canonical size of a payload + signature message (what `toBinary` writes: fields in number order, then unknown fields). */
function twoFieldsSize(m: TwoBytesFields): number {
  return bytesFieldSize(m.payload.length) + bytesFieldSize(m.signature.length) + unknownSize(unknownOf(m));
}

/**
 * True when `value` is the memory at `frame[at..at+len)` itself (a view of
 * the same buffer at the same place), not merely equal bytes.
 */
function isViewAt(frame: Uint8Array, at: number, value: Uint8Array): boolean {
  return value.buffer === frame.buffer && value.byteOffset === frame.byteOffset + at;
}

/** Checks that the varint of `n` is at `frame[at]`; returns the offset after it, or -1. */
function varintAt(frame: Uint8Array, at: number, n: number): number {
  while (n >= 0x80) {
    if (frame[at++] !== ((n & 0x7f) | 0x80)) return -1;
    n = Math.floor(n / 128);
  }
  return frame[at++] === n ? at : -1;
}

/** Checks a bytes field (omitted when empty) at `at`; returns the offset after it, or -1. */
function bytesFieldAt(frame: Uint8Array, at: number, tag: number, value: Uint8Array): number {
  if (value.length === 0) return at;
  if (at < 0 || frame[at] !== tag) return -1;
  at = varintAt(frame, at + 1, value.length);
  return at >= 0 && isViewAt(frame, at, value) ? at + value.length : -1;
}

/** Checks unknown fields, in their order, at `at`; returns the offset after them, or -1. */
function unknownAt(frame: Uint8Array, at: number, unknown: readonly UnknownField[] | undefined): number {
  if (unknown === undefined) return at;
  for (const u of unknown) {
    if (at < 0) return -1;
    at = varintAt(frame, at, ((u.no << 3) | u.wireType) >>> 0);
    if (at < 0 || !isViewAt(frame, at, u.data)) return -1;
    at += u.data.length;
  }
  return at;
}

function twoFieldsAt(frame: Uint8Array, at: number, m: TwoBytesFields): number {
  at = bytesFieldAt(frame, at, 0x0a, m.payload);
  at = at < 0 ? -1 : bytesFieldAt(frame, at, 0x12, m.signature);
  return at < 0 ? -1 : unknownAt(frame, at, unknownOf(m));
}

/**
 * The bytes `env` was decoded from, when they are still exactly its
 * encoding: its byte fields (and unknown fields) are the very views the
 * decoder made into the received frame, sitting where `toBinary` would write
 * them. Then those bytes are returned (a view, nothing copied or encoded);
 * otherwise undefined.
 *
 * This is a proof, not a cache: every tag and length between the fields is
 * checked in the frame, and every field's memory is the frame's, so the
 * returned bytes are byte for byte `toBinary(env)`. An Envelope whose fields
 * were replaced (a new signature, a new or dropped secret envelope) no longer
 * matches and is encoded anew; a byte changed in place is in the frame too.
 * A frame whose fields were not in number order (never written by protobuf
 * serializers) does not match either.
 */
export function receivedFrame(env: Envelope): Uint8Array | undefined {
  const payload = env.payload;
  if (payload.length === 0) return undefined;
  const secret = env.secretEnvelope;
  const secretLen = secret === undefined ? 0 : twoFieldsSize(secret);
  const size =
    bytesFieldSize(payload.length) +
    bytesFieldSize(env.signature.length) +
    (secret === undefined ? 0 : 1 + delimitedSize(secretLen)) +
    unknownSize(unknownOf(env));
  const start = payload.byteOffset - 1 - varintSize(payload.length);
  if (start < 0 || start + size > payload.buffer.byteLength) return undefined;
  const frame = new Uint8Array(payload.buffer, start, size);
  let at = bytesFieldAt(frame, 0, 0x0a, payload);
  at = at < 0 ? -1 : bytesFieldAt(frame, at, 0x12, env.signature);
  if (at >= 0 && secret !== undefined) {
    at = frame[at] === 0x1a ? varintAt(frame, at + 1, secretLen) : -1;
    at = at < 0 ? -1 : twoFieldsAt(frame, at, secret);
  }
  at = at < 0 ? -1 : unknownAt(frame, at, unknownOf(env));
  return at === size ? frame : undefined;
}

/**
 * The bytes to send for `env`: the bytes it arrived in when it is a received
 * Envelope left as it was (see {@link receivedFrame}: forwarding never
 * re-encodes), otherwise its encoding.
 */
export function envelopeBytes(env: Envelope): Uint8Array {
  return receivedFrame(env) ?? encodeEnvelope(env);
}

/**
 * Parses a serialized Envelope: exactly what protobuf-es' `fromBinary`
 * returns (byte fields are views into `bytes`, unknown fields kept), through
 * the compiled codec. Throws `MalformedMessage` where `fromBinary` throws.
 */
export function decodeEnvelope(bytes: Uint8Array): Envelope {
  try {
    return decodeHotEnvelope(bytes) ?? decodeMessage<Envelope>(EnvelopeSchema, bytes);
  } catch (e) {
    throw new GossipError(ErrorCode.MalformedMessage, `malformed envelope: ${(e as Error).message}`, { cause: e });
  }
}

/**
 * {@link decodeEnvelope} of `bytes[start, end)` (a frame inside a received
 * chunk), without a view of the frame first; byte fields are plain Uint8Array
 * views of `bytes`' memory, and an absent signature may be a shared
 * zero-length array. Throws `MalformedMessage` where `fromBinary` throws.
 */
export function decodeEnvelopeIn(bytes: Uint8Array, start: number, end: number): Envelope {
  try {
    return (
      decodeHotEnvelopeIn(bytes, start, end) ??
      decodeMessage<Envelope>(EnvelopeSchema, new Uint8Array(bytes.buffer, bytes.byteOffset + start, end - start))
    );
  } catch (e) {
    throw new GossipError(ErrorCode.MalformedMessage, `malformed envelope: ${(e as Error).message}`, { cause: e });
  }
}

/**
 * Parses an Envelope's payload as a GossipMessage. An empty payload is an
 * empty GossipMessage, as in Fabric. Throws `MalformedMessage` otherwise.
 */
export function parseGossipMessage(payload: Uint8Array): GossipMessage {
  try {
    return decodeHotGossipMessage(payload) ?? decodeMessage<GossipMessage>(GossipMessageSchema, payload);
  } catch (e) {
    throw new GossipError(ErrorCode.MalformedMessage, `failed unmarshalling GossipMessage from envelope: ${(e as Error).message}`, {
      cause: e,
    });
  }
}

/** Serializes a GossipMessage (byte-identical to protobuf-es `toBinary`). */
export function serializeGossipMessage(message: GossipMessage): Uint8Array {
  return encodeMessage(GossipMessageSchema, message);
}

const gossipMessageEncoder = compileEncoder(GossipMessageSchema);

/**
 * `encodeEnvelope(noopSign(message))` in one pass: the GossipMessage is
 * written straight into the Envelope's buffer (no intermediate payload).
 */
export function encodeUnsignedEnvelope(message: GossipMessage): Uint8Array {
  return encodeHotEnvelope(message) ?? encodeCompiledEnvelope(message);
}

/** {@link encodeUnsignedEnvelope} through the compiled codec's general walk (any message). */
export function encodeCompiledEnvelope(message: GossipMessage): Uint8Array {
  const measured = gossipMessageEncoder?.measureOnce(message);
  if (measured === undefined) return encodeEnvelope(noopSign(message));
  const size = measured.size;
  if (size === 0) return new Uint8Array(0);
  // In a slab: frames are internal (they only go to the wire), and a
  // Uint8Array of this size would get its own zeroed backing store each time.
  // Every byte is written below.
  const buf = allocFrame(1 + varintSize(size) + size);
  buf[0] = 0x0a;
  measured.write(buf, writeVarint(buf, 1, size));
  return buf;
}

/**
 * Fabric's "sign": serialize `message`, sign exactly those bytes, and wrap
 * both in a fresh Envelope; a secret envelope of `previous` is carried over.
 */
export function signMessage(crypto: CryptoService, message: GossipMessage, previous?: Envelope): Envelope {
  const payload = serializeGossipMessage(message);
  return {
    $typeName: "gossip.Envelope",
    payload,
    signature: crypto.sign(payload),
    secretEnvelope: previous?.secretEnvelope,
  };
}

/** Fabric's "NoopSign": the serialized message in an Envelope without signature or secret envelope. */
export function noopSign(message: GossipMessage): Envelope {
  return { $typeName: "gossip.Envelope", payload: serializeGossipMessage(message), signature: emptyBytes };
}

/**
 * Verifies an Envelope as Fabric does: payload and signature must be non-empty
 * and verify with `identity`; so must a secret envelope, when present.
 * Throws `BadSignature` otherwise. `verifier`: the one `crypto` made for
 * `identity` ({@link CryptoService.verifierOf}), when the caller keeps it:
 * verified with it rather than through `crypto`.
 */
export function verifyEnvelope(crypto: CryptoService, identity: Uint8Array, env: Envelope, verifier?: IdentityVerifier): void {
  if (env.payload.length === 0 || env.signature.length === 0) {
    throw new GossipError(ErrorCode.BadSignature, "envelope is not signed");
  }
  verifySigned(crypto, identity, verifier, env.signature, env.payload);
  const secret = env.secretEnvelope;
  if (secret) {
    if (secret.payload.length === 0 || secret.signature.length === 0) {
      throw new GossipError(ErrorCode.BadSignature, "secret envelope is not signed");
    }
    verifySigned(crypto, identity, verifier, secret.signature, secret.payload);
  }
}

/** `signature` over `data` by `identity`: with its `verifier` when given, else through `crypto`. */
function verifySigned(
  crypto: CryptoService,
  identity: Uint8Array,
  verifier: IdentityVerifier | undefined,
  signature: Uint8Array,
  data: Uint8Array,
): void {
  if (verifier !== undefined) verifier.verify(signature, data);
  else crypto.verify(identity, signature, data);
}

/**
 * Builds a GossipMessage from a partial init (protobuf-es `create`). Without
 * a `tag` in `init` it gets the tag Fabric's gossip layer requires for its
 * content ({@link defaultTag}: CHAN_AND_ORG for a data message, EMPTY for an
 * alive message, ...), so that a Fabric peer does not drop it.
 */
export function gossipMessage(init: Parameters<typeof create<typeof GossipMessageSchema>>[1]): GossipMessage {
  const message = create(GossipMessageSchema, init);
  if (init?.tag === undefined) message.tag = defaultTag(message.content);
  return message;
}
