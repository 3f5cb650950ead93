/**
 * Envelopes on the wire: a hand-written codec for `gossip.Envelope` (the one
 * message on the hot path; protobuf-es' reflective codec costs several
 * microseconds per message here), plus Fabric's signing rules.
 */
import { create } from "@bufbuild/protobuf";
import {
  type Envelope,
  type GossipMessage,
  GossipMessageSchema,
  type SecretEnvelope,
} from "../gen/gossip/message_pb.js";
import type { CryptoService } from "./crypto.js";
import { ErrorCode, GossipError } from "./errors.js";
import { compileEncoder, decodeMessage, encodeMessage } from "./proto-codec.js";
import { defaultTag } from "./tags.js";

const emptyBytes: Uint8Array = new Uint8Array(0);

function varintSize(n: number): number {
  let size = 1;
  while (n >= 0x80) {
    n = Math.floor(n / 128);
    size++;
  }
  return size;
}

function writeVarint(buf: Uint8Array, at: number, n: number): number {
  while (n >= 0x80) {
    buf[at++] = (n & 0x7f) | 0x80;
    n = Math.floor(n / 128);
  }
  buf[at++] = n;
  return at;
}

function bytesFieldSize(len: number): number {
  return len === 0 ? 0 : 1 + varintSize(len) + len;
}

function writeBytesField(buf: Uint8Array, at: number, tag: number, value: Uint8Array): number {
  if (value.length === 0) return at;
  buf[at++] = tag;
  at = writeVarint(buf, at, value.length);
  buf.set(value, at);
  return at + value.length;
}

/**
 * Serializes an Envelope (proto3 binary, fields in number order, empty fields
 * omitted), byte-identical to protobuf-es' `toBinary` for the same message.
 */
export function encodeEnvelope(env: {
  payload: Uint8Array;
  signature: Uint8Array;
  secretEnvelope?: SecretEnvelope | undefined;
}): Uint8Array {
  const secret = env.secretEnvelope;
  const secretLen = secret ? bytesFieldSize(secret.payload.length) + bytesFieldSize(secret.signature.length) : 0;
  const size =
    bytesFieldSize(env.payload.length) +
    bytesFieldSize(env.signature.length) +
    (secret ? 1 + varintSize(secretLen) + secretLen : 0);
  const buf = new Uint8Array(size);
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

function malformed(message: string): GossipError {
  return new GossipError(ErrorCode.MalformedMessage, `malformed envelope: ${message}`);
}

/** Reads fields of a length-delimited message and hands each to `field`. */
function readFields(
  buf: Uint8Array,
  field: (num: number, value: Uint8Array) => void,
): void {
  let at = 0;
  const end = buf.length;
  const varint = (): number => {
    let result = 0;
    let shift = 1;
    for (let i = 0; i < 10; i++) {
      if (at >= end) throw malformed("truncated varint");
      const b = buf[at++] as number;
      if (i < 7) result += (b & 0x7f) * shift;
      shift *= 128;
      if (b < 0x80) return result;
    }
    throw malformed("varint too long");
  };
  while (at < end) {
    const key = varint();
    const num = Math.floor(key / 8);
    const wireType = key & 7;
    if (num === 0) throw malformed("field number 0");
    switch (wireType) {
      case 0:
        varint();
        break;
      case 1:
        at += 8;
        break;
      case 5:
        at += 4;
        break;
      case 2: {
        const len = varint();
        if (len > end - at) throw malformed("truncated length-delimited field");
        field(num, buf.subarray(at, at + len));
        at += len;
        break;
      }
      default:
        throw malformed(`unsupported wire type ${wireType}`);
    }
    if (at > end) throw malformed("truncated fixed-size field");
  }
}

/**
 * Parses a serialized Envelope. Byte fields are views into `bytes` (no copy).
 * Unknown fields are skipped, as protobuf parsers do. Throws
 * `MalformedMessage` on invalid protobuf.
 */
export function decodeEnvelope(bytes: Uint8Array): Envelope {
  let payload = emptyBytes;
  let signature = emptyBytes;
  let secretEnvelope: SecretEnvelope | undefined;
  readFields(bytes, (num, value) => {
    if (num === 1) payload = value;
    else if (num === 2) signature = value;
    else if (num === 3) {
      let sp = secretEnvelope?.payload ?? emptyBytes;
      let ss = secretEnvelope?.signature ?? emptyBytes;
      readFields(value, (n, v) => {
        if (n === 1) sp = v;
        else if (n === 2) ss = v;
      });
      secretEnvelope = { $typeName: "gossip.SecretEnvelope", payload: sp, signature: ss };
    }
  });
  return { $typeName: "gossip.Envelope", payload, signature, secretEnvelope };
}

/**
 * Parses an Envelope's payload as a GossipMessage. An empty payload is an
 * empty GossipMessage, as in Fabric. Throws `MalformedMessage` otherwise.
 */
export function parseGossipMessage(payload: Uint8Array): GossipMessage {
  try {
    return decodeMessage<GossipMessage>(GossipMessageSchema, payload);
  } catch (e) {
    throw new GossipError(
      ErrorCode.MalformedMessage,
      `failed unmarshalling GossipMessage from envelope: ${(e as Error).message}`,
      { cause: e },
    );
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
  const size = gossipMessageEncoder?.size(message);
  if (gossipMessageEncoder === undefined || size === undefined) return encodeEnvelope(noopSign(message));
  if (size === 0) return new Uint8Array(0);
  // A pooled Buffer: frames are internal (they only go to the wire), and a
  // Uint8Array of this size would get its own zeroed backing store each time.
  // Every byte is written below.
  const buf = Buffer.allocUnsafe(1 + varintSize(size) + size);
  buf[0] = 0x0a;
  gossipMessageEncoder.write(buf, writeVarint(buf, 1, size));
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
 * Throws `BadSignature` otherwise.
 */
export function verifyEnvelope(crypto: CryptoService, identity: Uint8Array, env: Envelope): void {
  if (env.payload.length === 0 || env.signature.length === 0) {
    throw new GossipError(ErrorCode.BadSignature, "envelope is not signed");
  }
  crypto.verify(identity, env.signature, env.payload);
  const secret = env.secretEnvelope;
  if (secret) {
    if (secret.payload.length === 0 || secret.signature.length === 0) {
      throw new GossipError(ErrorCode.BadSignature, "secret envelope is not signed");
    }
    crypto.verify(identity, secret.signature, secret.payload);
  }
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
