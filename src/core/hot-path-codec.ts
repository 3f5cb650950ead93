/**
 * Hand-written encoding of the GossipMessage shapes on the hot path (a data
 * message, `empty`, `ack`), straight into an unsigned Envelope: what the
 * compiled codec does for them, without its general walk over field plans.
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
import { mayHaveUnknownFields, varintSize, writeVarint } from "../codec/index.js";
import { utf8Length, writeUtf8 } from "../codec/utf8.js";
import type { GossipMessage } from "../gen/gossip/message_pb.js";

const maxSafe = BigInt(Number.MAX_SAFE_INTEGER);
const zero64 = BigInt(0);

/** A uint64 as protobuf-es accepts it and small enough to write as a number; -1 when not (the general path decides). */
function u64(v: unknown): number {
  if (typeof v !== "bigint" || v < zero64 || v > maxSafe) return -1;
  return Number(v);
}

/** A nested message's fields when it is of `typeName` and has no unknown fields; undefined otherwise. */
function nested(v: unknown, typeName: string): Record<string, unknown> | undefined {
  if (typeof v !== "object" || v === null) return undefined;
  const m = v as Record<string, unknown>;
  if (m.$typeName !== typeName || mayHaveUnknownFields(m)) return undefined;
  return m;
}

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
 * `encodeEnvelope(noopSign(message))` for the hot-path shapes, as a pooled
 * Buffer (frames only go to the wire); undefined for any other message.
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
      if (p === undefined || !Object.hasOwn(dm, "payload")) break;
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
  const buf = Buffer.allocUnsafe(1 + varintSize(size) + size);
  buf[0] = 0x0a;
  let at = writeVarint(buf, 1, size);
  if (nonce !== 0) {
    buf[at] = 0x08;
    at = writeVarint(buf, at + 1, nonce);
  }
  if (channel.length !== 0) {
    buf[at] = 0x12;
    at = writeVarint(buf, at + 1, channel.length);
    buf.set(channel, at);
    at += channel.length;
  }
  if (tag !== 0) {
    buf[at] = 0x18;
    at = writeVarint(buf, at + 1, tag);
  }
  switch (kind) {
    case dataContent:
      buf[at] = 0x42; // field 8, length-delimited
      at = writeVarint(buf, at + 1, contentLen);
      if (contentLen === 0) break;
      buf[at] = 0x0a; // DataMessage.payload
      at = writeVarint(buf, at + 1, payloadLen);
      if (seqNum !== 0) {
        buf[at] = 0x08;
        at = writeVarint(buf, at + 1, seqNum);
      }
      if (data !== undefined && data.length !== 0) {
        buf[at] = 0x12;
        at = writeVarint(buf, at + 1, data.length);
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
      at = writeVarint(buf, at + 2, contentLen);
      if (errorLen === 0) break;
      buf[at] = 0x0a;
      at = writeVarint(buf, at + 1, errorLen);
      writeUtf8(buf, at, error, errorLen);
      break;
  }
  return buf;
}
