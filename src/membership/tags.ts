/**
 * Tag legality for membership: core's table (`src/core/tags.ts`, Fabric's
 * IsTagLegal), kept here only as the reason string membership has exported
 * since before core had it.
 */
import { checkTag } from "../core/tags.js";
import type { GossipMessage } from "../gen/gossip/message_pb.js";

/** The reason `message`'s tag is illegal (Fabric's IsTagLegal wording), or undefined when it is legal. */
export function illegalTagReason(message: Pick<GossipMessage, "tag" | "content">): string | undefined {
  return checkTag(message)?.message;
}
