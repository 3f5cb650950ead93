/**
 * Envelopes on the wire: a hand-written encoder for `gossip.Envelope` (the one
 * message on the hot path, of a fixed layout), decoding through the compiled
 * codec, plus Fabric's signing rules.
 */
import { create, toBinary } from "@bufbuild/protobuf";
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
import {
  type Envelope,
  EnvelopeSchema,
  type GossipMessage,
  GossipMessageSchema,
  type SecretEnvelope,
} from "../gen/gossip/message_pb.js";
import type { CryptoService } from "./crypto.js";
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
export function encodeEnvelope(env: {
  payload: Uint8Array;
  signature: Uint8Array;
  secretEnvelope?: SecretEnvelope | undefined;
}): Uint8Array {
  const secret = env.secretEnvelope;
  if (mayHaveUnknownFields(env) || (secret !== undefined && mayHaveUnknownFields(secret))) return toBinary(EnvelopeSchema, env as Envelope);
  const secretLen = secret ? bytesFieldSize(secret.payload.length) + bytesFieldSize(secret.signature.length) : 0;
  const size =
    bytesFieldSize(env.payload.length) + bytesFieldSize(env.signature.length) + (secret ? 1 + delimitedSize(secretLen) : 0);
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

/**
 * Parses a serialized Envelope: exactly what protobuf-es' `fromBinary`
 * returns (byte fields are views into `bytes`, unknown fields kept), through
 * the compiled codec. Throws `MalformedMessage` where `fromBinary` throws.
 */
export function decodeEnvelope(bytes: Uint8Array): Envelope {
  try {
    return decodeMessage<Envelope>(EnvelopeSchema, bytes);
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
  const measured = gossipMessageEncoder?.measure(message);
  if (measured === undefined) return encodeEnvelope(noopSign(message));
  const size = measured.size;
  if (size === 0) return new Uint8Array(0);
  // A pooled Buffer: frames are internal (they only go to the wire), and a
  // Uint8Array of this size would get its own zeroed backing store each time.
  // Every byte is written below.
  const buf = Buffer.allocUnsafe(1 + varintSize(size) + size);
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
