/**
 * In-process cost of one message on the hot path, per step, with the
 * general compiled codec and the hand-written hot path alternated in the
 * same process (the most stable figures on a loaded machine; issue 12.4).
 *
 *   node --import tsx bench/tools/hot-path.ts [rounds]
 *
 * For data messages of 64 B and 1 KiB (the bench's W2 and W1 messages), in
 * ns per message: building (protobuf-es `create` against `dataMessage`),
 * encoding into an unsigned Envelope, and decoding the Envelope and its
 * GossipMessage. Bundle it with esbuild for figures like the bench's (tsx's
 * `keepNames` slows some code down).
 */
import { create } from "@bufbuild/protobuf";
import { decodeHotEnvelope, decodeHotGossipMessage } from "../../src/codec/hot-path.js";
import { decodeMessage } from "../../src/codec/index.js";
import { dataMessage } from "../../src/core/data-message.js";
import { encodeCompiledEnvelope, encodeUnsignedEnvelope } from "../../src/core/envelope.js";
import {
  DataMessageSchema,
  type Envelope,
  EnvelopeSchema,
  type GossipMessage,
  GossipMessage_Tag,
  GossipMessageSchema,
  PayloadSchema,
} from "../../src/gen/gossip/message_pb.js";

const rounds = Number(process.argv[2] ?? 5);
const n = 200_000;
const channel = new TextEncoder().encode("benchchannel");

function created(seq: number, data: Uint8Array): GossipMessage {
  const s = BigInt(seq);
  return create(GossipMessageSchema, {
    nonce: s,
    channel,
    tag: GossipMessage_Tag.CHAN_AND_ORG,
    content: { case: "dataMsg", value: create(DataMessageSchema, { payload: create(PayloadSchema, { seqNum: s, data }) }) },
  });
}

/** ns per call of `f(i)`, over `n` calls. */
function time(f: (i: number) => number): number {
  let sink = 0;
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < n; i++) sink += f(i);
  const ns = Number(process.hrtime.bigint() - t0) / n;
  if (sink === -1) console.log(sink);
  return ns;
}

for (const size of [64, 1024]) {
  const data = new Uint8Array(size).fill(7);
  const messages = Array.from({ length: 1024 }, (_, i) => created(i + 1, data));
  // Frames as the transport hands them on: plain views into a larger chunk.
  const frames = messages.map((m) => {
    const bytes = encodeUnsignedEnvelope(m);
    const chunk = new Uint8Array(bytes.length + 16);
    chunk.set(bytes, 8);
    return chunk.subarray(8, 8 + bytes.length);
  });
  for (let r = 0; r < rounds; r++) {
    const row = {
      create: time((i) => created(i + 1, data).tag),
      dataMessage: time((i) => dataMessage({ nonce: BigInt(i + 1), channel, seqNum: BigInt(i + 1), data }).tag),
      encodeCompiled: time((i) => encodeCompiledEnvelope(messages[i & 1023] as GossipMessage).length),
      encodeHot: time((i) => encodeUnsignedEnvelope(messages[i & 1023] as GossipMessage).length),
      decodeCompiled: time((i) => {
        const env = decodeMessage<Envelope>(EnvelopeSchema, frames[i & 1023] as Uint8Array);
        return decodeMessage<GossipMessage>(GossipMessageSchema, env.payload).tag;
      }),
      decodeHot: time((i) => {
        const env = decodeHotEnvelope(frames[i & 1023] as Uint8Array) as Envelope;
        return (decodeHotGossipMessage(env.payload) as GossipMessage).tag;
      }),
    };
    console.log(
      `${size} B, round ${r + 1}: ${Object.entries(row)
        .map(([k, v]) => `${k} ${v.toFixed(0)}`)
        .join(", ")} (ns/msg)`,
    );
  }
}
