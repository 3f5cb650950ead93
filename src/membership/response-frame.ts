/**
 * A MembershipResponse written straight from the alive messages membership
 * keeps as bytes. Each entry is an Envelope that goes out exactly as it was
 * received (Fabric re-sends the signed envelopes it holds), so the response
 * is those bytes framed: decoding every kept message into objects only for
 * the encoder to write the same bytes again cost two walks over the whole
 * membership per request.
 */
import { bigVarintSize, delimitedSize, writeBigVarint, writeDelimited, writeVarint } from "../codec/index.js";
import { GossipMessage_Tag } from "../gen/gossip/message_pb.js";

/** GossipMessage field keys (number << 3 | wire type). */
const nonceKey = 0x08;
const tagKey = 0x18;
const memResKey = 0x3a;
/** MembershipResponse field keys. */
const aliveKey = 0x0a;
const deadKey = 0x12;

function entriesSize(frames: readonly Uint8Array[]): number {
  let size = 0;
  for (const f of frames) size += 1 + delimitedSize(f.length);
  return size;
}

function writeEntries(buf: Uint8Array, at: number, key: number, frames: readonly Uint8Array[]): number {
  for (const f of frames) {
    buf[at++] = key;
    at = writeDelimited(buf, at, f);
  }
  return at;
}

/**
 * The serialized GossipMessage `{ nonce, tag: EMPTY, mem_res: { alive, dead } }`
 * whose entries are the Envelopes serialized in `alive` and `dead`: byte for
 * byte what protobuf-es writes for the decoded envelopes, provided each
 * frame is the canonical encoding of its Envelope (as kept frames are).
 */
export function encodeMembershipResponse(nonce: bigint, alive: readonly Uint8Array[], dead: readonly Uint8Array[]): Uint8Array {
  const body = entriesSize(alive) + entriesSize(dead);
  const nonceSize = nonce === BigInt(0) ? 0 : 1 + bigVarintSize(nonce);
  const buf = new Uint8Array(nonceSize + 2 + 1 + delimitedSize(body));
  let at = 0;
  if (nonceSize > 0) {
    buf[at++] = nonceKey;
    at = writeBigVarint(buf, at, nonce);
  }
  buf[at++] = tagKey;
  buf[at++] = GossipMessage_Tag.EMPTY;
  buf[at++] = memResKey;
  at = writeVarint(buf, at, body);
  at = writeEntries(buf, at, aliveKey, alive);
  writeEntries(buf, at, deadKey, dead);
  return buf;
}
