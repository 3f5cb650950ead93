/**
 * Hand-written encoding and decoding of the GossipMessage shapes on the hot
 * path (a data message, `empty`, `ack`) and of the Envelope around them: what
 * the compiled codec does for them, without its general walk over field plans.
 *
 * Byte-identical to protobuf-es' `toBinary` by construction (fields in
 * number order, implicit presence) and by the differential tests of
 * test/codec. Anything it does not recognise exactly (another content case,
 * a value of an unexpected type or range, unknown fields, a payload with
 * private data) returns undefined, and the compiled codec (which in turn
 * falls back to protobuf-es) encodes the message.
 *
 * @private Internal code, not part of the public API.
 */

import type { Acknowledgement, DataMessage, Envelope, GossipMessage, SecretEnvelope } from "../gen/gossip/message_pb.js";
import { emptyBytes } from "./empty-bytes.js";
import { mayHaveUnknownFields } from "./encoder.js";
import { allocFrame } from "./frame-slab.js";
import { readUtf8, utf8Length, writeUtf8 } from "./utf8.js";
import { varintSize, writeVarint } from "./varint.js";

/** A uint64 as protobuf-es accepts it and small enough to write as a number; -1 when not (the general path decides). */
function u64(v: unknown): number {
  if (typeof v !== "bigint") return -1;
  // Exact below 2^53; a larger bigint converts to 2^53 or more (rounding is
  // monotonic), a negative one below 0: one conversion, no bigint compares.
  const n = Number(v);
  return n >= 0 && n <= Number.MAX_SAFE_INTEGER ? n : -1;
}

/** A nested message's fields when it is of `typeName` and has no unknown fields; undefined otherwise. */
function nested(v: unknown, typeName: string): Record<string, unknown> | undefined {
  if (typeof v !== "object" || v === null) return undefined;
  const m = v as Record<string, unknown>;
  if (m.$typeName !== typeName || mayHaveUnknownFields(m)) return undefined;
  return m;
}

/**
 * {@link writeVarint} with its one-byte case here: most lengths and every
 * tag of the hot shapes take one byte, and the encoder called
 * `writeVarint` (not inlined) for each, ~13 % of encoding a 64 B data
 * message.
 */
function putVarint(buf: Uint8Array, at: number, n: number): number {
  if (n < 0x80) {
    buf[at] = n;
    return at + 1;
  }
  return writeVarint(buf, at, n);
}

/** `Object.prototype.hasOwnProperty`, called: `Object.hasOwn` was ~8 % of encoding a 64 B data message in a line profile, this about half. */
const hasOwn = Object.prototype.hasOwnProperty;

/** Bytes of a length-delimited field with a one-byte tag, always written. */
function delimited(len: number): number {
  return 1 + varintSize(len) + len;
}

/** What to write for a content case; `len` is its encoded message length. */
const noContent = 0;
const dataContent = 1;
const emptyContent = 2;
const ackContent = 3;

/**
 * `encodeEnvelope(noopSign(message))` for the hot-path shapes, in a slab
 * (frames only go to the wire: see {@link allocFrame}); undefined for any
 * other message.
 */
export function encodeHotEnvelope(message: GossipMessage): Uint8Array | undefined {
  const m = message as unknown as Record<string, unknown>;
  if (m.$typeName !== "gossip.GossipMessage" || mayHaveUnknownFields(m)) return undefined;
  const nonce = u64(m.nonce);
  const channel = m.channel;
  const tag = m.tag;
  if (nonce < 0 || !(channel instanceof Uint8Array) || typeof tag !== "number" || !(tag >= 0 && tag <= 0x7fffffff && tag % 1 === 0)) {
    return undefined;
  }
  const content = m.content as { case?: unknown; value?: unknown } | null | undefined;
  if (typeof content !== "object" || content === null) return undefined;
  let kind = noContent;
  let contentLen = 0;
  let seqNum = 0;
  let data: Uint8Array | undefined;
  let error = "";
  let errorLen = 0;
  let payloadLen = 0;
  switch (content.case) {
    case undefined:
      break;
    case "dataMsg": {
      const dm = nested(content.value, "gossip.DataMessage");
      if (dm === undefined) return undefined;
      kind = dataContent;
      const p = dm.payload;
      if (p === undefined || !hasOwn.call(dm, "payload")) break;
      const payload = nested(p, "gossip.Payload");
      if (payload === undefined) return undefined;
      seqNum = u64(payload.seqNum);
      const d = payload.data;
      const priv = payload.privateData;
      if (seqNum < 0 || !(d instanceof Uint8Array) || !Array.isArray(priv) || priv.length > 0) return undefined;
      data = d;
      payloadLen = (seqNum === 0 ? 0 : 1 + varintSize(seqNum)) + (d.length === 0 ? 0 : delimited(d.length));
      contentLen = delimited(payloadLen);
      break;
    }
    case "empty":
      if (nested(content.value, "gossip.Empty") === undefined) return undefined;
      kind = emptyContent;
      break;
    case "ack": {
      const ack = nested(content.value, "gossip.Acknowledgement");
      if (ack === undefined || typeof ack.error !== "string") return undefined;
      kind = ackContent;
      error = ack.error;
      errorLen = error.length === 0 ? 0 : utf8Length(error);
      contentLen = errorLen === 0 ? 0 : delimited(errorLen);
      break;
    }
    default:
      return undefined;
  }
  const size =
    (nonce === 0 ? 0 : 1 + varintSize(nonce)) +
    (channel.length === 0 ? 0 : delimited(channel.length)) +
    (tag === 0 ? 0 : 1 + varintSize(tag)) +
    (kind === noContent ? 0 : (kind === ackContent ? 2 : 1) + varintSize(contentLen) + contentLen);
  if (size === 0) return new Uint8Array(0);
  // Every byte is written below.
  const buf = allocFrame(1 + varintSize(size) + size);
  buf[0] = 0x0a;
  let at = putVarint(buf, 1, size);
  if (nonce !== 0) {
    buf[at] = 0x08;
    at = putVarint(buf, at + 1, nonce);
  }
  if (channel.length !== 0) {
    buf[at] = 0x12;
    at = putVarint(buf, at + 1, channel.length);
    buf.set(channel, at);
    at += channel.length;
  }
  if (tag !== 0) {
    buf[at] = 0x18;
    at = putVarint(buf, at + 1, tag);
  }
  switch (kind) {
    case dataContent:
      buf[at] = 0x42; // field 8, length-delimited
      at = putVarint(buf, at + 1, contentLen);
      if (contentLen === 0) break;
      buf[at] = 0x0a; // DataMessage.payload
      at = putVarint(buf, at + 1, payloadLen);
      if (seqNum !== 0) {
        buf[at] = 0x08;
        at = putVarint(buf, at + 1, seqNum);
      }
      if (data !== undefined && data.length !== 0) {
        buf[at] = 0x12;
        at = putVarint(buf, at + 1, data.length);
        buf.set(data, at);
      }
      break;
    case emptyContent:
      buf[at] = 0x6a; // field 13, length-delimited
      buf[at + 1] = 0;
      break;
    case ackContent:
      buf[at] = 0xb2; // field 22, length-delimited: two-byte tag
      buf[at + 1] = 0x01;
      at = putVarint(buf, at + 2, contentLen);
      if (errorLen === 0) break;
      buf[at] = 0x0a;
      at = putVarint(buf, at + 1, errorLen);
      writeUtf8(buf, at, error, errorLen);
      break;
  }
  return buf;
}

/**
 * Decoding, the other way: the same shapes, written by a protobuf encoder
 * (each field at most once, in number order, no unknown fields), decode to
 * exactly what protobuf-es' `fromBinary` returns (byte fields are views into
 * the input, absent ones fresh empty arrays, absent message fields absent).
 * Anything else (merged or repeated fields, other content, private data,
 * uint64s beyond 2^53 - 1, negative enums, invalid UTF-8, truncation) returns undefined: the
 * compiled codec decodes it, or rejects it as protobuf-es does.
 *
 * They read at one module-level cursor, `pos` (decoding never re-enters and
 * each decoder sets it before reading), rather than through a reader object
 * per message and nested message, which V8 allocated for each.
 */
let pos = 0;

/** A varint at `pos` of at most 8 bytes before `end` and at most 2^53 - 1 (`pos` moves past it), or -1. */
function varint(buf: Uint8Array, end: number): number {
  let at = pos;
  if (at >= end) return -1;
  let b = buf[at++] as number;
  if (b < 0x80) {
    pos = at;
    return b;
  }
  let v = b & 0x7f;
  let mul = 128;
  for (let i = 1; i < 8; i++) {
    if (at >= end) return -1;
    b = buf[at++] as number;
    v += (b & 0x7f) * mul;
    if (b < 0x80) {
      pos = at;
      return v <= Number.MAX_SAFE_INTEGER ? v : -1;
    }
    mul *= 128;
  }
  return -1;
}

/** A length prefix at `pos` whose value fits before `end`, or -1. */
function length(buf: Uint8Array, end: number): number {
  const len = varint(buf, end);
  return len > end - pos ? -1 : len;
}

/**
 * How {@link envelopeFields} makes a byte field's value from `[start, end)` of
 * its input: a `subarray` (a Buffer's view is a Buffer, as protobuf-es makes
 * it), or a plain Uint8Array over the same memory.
 */
const subarrayViews = 0;
const plainViews = 1;

/** The byte fields (1 and 2) of an Envelope or a SecretEnvelope, as {@link envelopeFields} reads them. */
let fieldPayload: Uint8Array | undefined;
let fieldSignature: Uint8Array | undefined;

/**
 * Reads fields 1 and 2 (payload, signature: the same in an Envelope and a
 * SecretEnvelope) from `pos` to `end`, each at most once and in number order,
 * into `fieldPayload` and `fieldSignature`; stops before a key of field 3
 * (0x1a) when `secretMayFollow`. Returns false for anything else (another
 * key, a repeated field, truncation): the general path decides.
 */
function envelopeFields(bytes: Uint8Array, end: number, views: number, secretMayFollow: boolean): boolean {
  fieldPayload = undefined;
  fieldSignature = undefined;
  let last = 0;
  while (pos < end) {
    const key = bytes[pos] as number;
    if (key === 0x1a && secretMayFollow) return true;
    pos++;
    if ((key !== 0x0a && key !== 0x12) || key <= last) return false;
    last = key;
    const len = length(bytes, end);
    if (len < 0) return false;
    const v = views === plainViews ? new Uint8Array(bytes.buffer, bytes.byteOffset + pos, len) : bytes.subarray(pos, pos + len);
    pos += len;
    if (key === 0x0a) fieldPayload = v;
    else fieldSignature = v;
  }
  return true;
}

/**
 * The Envelope's field 3, a SecretEnvelope, at `pos` (its key): the last
 * field of the Envelope (as a protobuf encoder writes it, once), with no
 * fields but payload and signature; undefined otherwise.
 */
function secretEnvelopeAt(bytes: Uint8Array, end: number, views: number): SecretEnvelope | undefined {
  pos++; // the key, 0x1a
  const len = length(bytes, end);
  if (len < 0 || pos + len !== end) return undefined;
  if (!envelopeFields(bytes, end, views, false)) return undefined;
  return {
    $typeName: "gossip.SecretEnvelope",
    payload: fieldPayload ?? emptyBytes(),
    signature: fieldSignature ?? emptyBytes(),
  } as SecretEnvelope;
}

/**
 * Decodes an Envelope, with or without a secret envelope (every alive
 * message of a peer with an internal endpoint has one); undefined otherwise
 * (see above).
 */
export function decodeHotEnvelope(bytes: Uint8Array): Envelope | undefined {
  return decodeEnvelopeAt(bytes, 0, bytes.length, subarrayViews, emptyBytes);
}

/** {@link decodeHotEnvelope} and {@link decodeHotEnvelopeIn}: `absentSignature` makes the Envelope's signature when it is absent. */
function decodeEnvelopeAt(
  bytes: Uint8Array,
  start: number,
  end: number,
  views: number,
  absentSignature: () => Uint8Array,
): Envelope | undefined {
  pos = start;
  if (!envelopeFields(bytes, end, views, true)) return undefined;
  const payload = fieldPayload ?? emptyBytes();
  const signature = fieldSignature ?? absentSignature();
  if (pos === end) return { $typeName: "gossip.Envelope", payload, signature } as Envelope;
  const secretEnvelope = secretEnvelopeAt(bytes, end, views);
  if (secretEnvelope === undefined) return undefined;
  return { $typeName: "gossip.Envelope", payload, signature, secretEnvelope } as Envelope;
}

/** The signature of every unsigned Envelope {@link decodeHotEnvelopeIn} decodes: empty, so nothing can change it. */
const noSignature: Uint8Array = new Uint8Array(0);
const noSignatureOf = (): Uint8Array => noSignature;

/**
 * {@link decodeHotEnvelope} of `bytes[start, end)`, for the transport's
 * frames, which lie in a larger received chunk: no view of the frame is made
 * first. Its byte fields are plain Uint8Array views of `bytes`' memory (even
 * when `bytes` is a Buffer), as the transport's frame views were. An absent
 * signature (an unsigned message: every data message Fabric sends) is one
 * shared zero-length array, deep-equal to protobuf-es' fresh one: a
 * zero-length array has no contents to change, and a new view per message
 * cost about a third of the Envelope's decoding.
 */
export function decodeHotEnvelopeIn(bytes: Uint8Array, start: number, end: number): Envelope | undefined {
  return decodeEnvelopeAt(bytes, start, end, plainViews, noSignatureOf);
}

/** Decodes a GossipMessage of a hot-path shape; undefined otherwise (see above). */
export function decodeHotGossipMessage(bytes: Uint8Array): GossipMessage | undefined {
  const limit = bytes.length;
  let nonce = 0;
  let channel: Uint8Array | undefined;
  let tag = 0;
  let content: GossipMessage["content"] | undefined;
  let last = 0;
  pos = 0;
  while (pos < limit) {
    const keyAt = pos;
    const key = varint(bytes, limit);
    // Every hot field's key takes one or two bytes; longer (overlong) keys,
    // which protobuf-es rejects beyond 5 bytes, take the general path.
    if (key <= last || pos - keyAt > 2) return undefined;
    last = key;
    if (key === 0x08) {
      nonce = varint(bytes, limit);
      if (nonce < 0) return undefined;
      continue;
    }
    if (key === 0x18) {
      const start = pos;
      tag = varint(bytes, limit);
      // An enum is an int32: negative values (10-byte varints) take the general path.
      if (tag < 0 || tag > 0x7fffffff || pos - start > 5) return undefined;
      continue;
    }
    if ((key & 7) !== 2) return undefined;
    const len = length(bytes, limit);
    if (len < 0) return undefined;
    const start = pos;
    const end = start + len;
    switch (key) {
      case 0x12:
        channel = bytes.subarray(start, end);
        break;
      case 0x42: {
        const value = decodeDataMessage(bytes, start, end);
        if (value === undefined) return undefined;
        content = { case: "dataMsg", value };
        break;
      }
      case 0x6a:
        if (len !== 0) return undefined;
        content = { case: "empty", value: { $typeName: "gossip.Empty" } };
        break;
      case 0xb2: {
        const value = decodeAck(bytes, start, end);
        if (value === undefined) return undefined;
        content = { case: "ack", value };
        break;
      }
      default:
        return undefined;
    }
    // The nested decoders moved the cursor.
    pos = end;
  }
  return {
    $typeName: "gossip.GossipMessage",
    nonce: BigInt(nonce),
    channel: channel ?? emptyBytes(),
    tag,
    content: content ?? { case: undefined },
  } as GossipMessage;
}

function decodeDataMessage(bytes: Uint8Array, start: number, end: number): DataMessage | undefined {
  if (start === end) return { $typeName: "gossip.DataMessage" } as DataMessage;
  pos = start;
  if (bytes[pos++] !== 0x0a) return undefined;
  const len = length(bytes, end);
  if (len < 0 || pos + len !== end) return undefined;
  let seqNum = 0;
  let data: Uint8Array | undefined;
  let last = 0;
  while (pos < end) {
    const key = bytes[pos++] as number;
    if (key <= last) return undefined;
    last = key;
    if (key === 0x08) {
      seqNum = varint(bytes, end);
      if (seqNum < 0) return undefined;
    } else if (key === 0x12) {
      const n = length(bytes, end);
      if (n < 0) return undefined;
      data = bytes.subarray(pos, pos + n);
      pos += n;
    } else {
      return undefined;
    }
  }
  return {
    $typeName: "gossip.DataMessage",
    payload: { $typeName: "gossip.Payload", seqNum: BigInt(seqNum), data: data ?? emptyBytes(), privateData: [] },
  } as DataMessage;
}

function decodeAck(bytes: Uint8Array, start: number, end: number): Acknowledgement | undefined {
  let error = "";
  if (start < end) {
    if (bytes[start] !== 0x0a) return undefined;
    pos = start + 1;
    const len = length(bytes, end);
    if (len < 0 || pos + len !== end) return undefined;
    try {
      error = readUtf8(bytes, pos, end);
    } catch {
      return undefined;
    }
  }
  return { $typeName: "gossip.Acknowledgement", error } as Acknowledgement;
}
