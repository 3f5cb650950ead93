/** The benchmark's messages built with protobuf-es (the rawpb and gossip-connect stacks). */
import { create } from "@bufbuild/protobuf";
import {
  AcknowledgementSchema,
  DataMessageSchema,
  EmptySchema,
  type GossipMessage,
  GossipMessage_Tag,
  GossipMessageSchema,
  PayloadSchema,
} from "../../../src/gen/gossip/message_pb.js";
import { CHANNEL } from "./wire.js";

/** The data message `seq` (see wire.ts: byte-identical to the hand encoding). */
export function pbDataMessage(seq: number, data: Uint8Array): GossipMessage {
  const n = BigInt(seq);
  return create(GossipMessageSchema, {
    nonce: n,
    channel: CHANNEL,
    tag: GossipMessage_Tag.CHAN_AND_ORG,
    content: { case: "dataMsg", value: create(DataMessageSchema, { payload: create(PayloadSchema, { seqNum: n, data }) }) },
  });
}

/** A control message (sync/hello as `empty`, or `ack`). */
export function pbControl(nonce: number, content: "empty" | "ack"): GossipMessage {
  return create(GossipMessageSchema, {
    nonce: BigInt(nonce),
    content: content === "empty" ? { case: "empty", value: create(EmptySchema) } : { case: "ack", value: create(AcknowledgementSchema) },
  });
}
