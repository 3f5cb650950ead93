/** Gossip messages for tests (no transport imported: cheap to load). */
import { create } from "@bufbuild/protobuf";
import { DataMessageSchema, type GossipMessage, GossipMessageSchema, PayloadSchema } from "../../src/gen/gossip/message_pb.js";

/** A data message with `payload` bytes and `nonce`. */
export function dataMessage(nonce: bigint | number, payload: Uint8Array = new Uint8Array(0)): GossipMessage {
  return create(GossipMessageSchema, {
    nonce: BigInt(nonce),
    content: {
      case: "dataMsg",
      value: create(DataMessageSchema, { payload: create(PayloadSchema, { seqNum: BigInt(nonce), data: payload }) }),
    },
  });
}
