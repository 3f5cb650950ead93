/**
 * Fabric's tag legality for the messages membership receives (§2.4 of the
 * behaviour notes). A local check until core's `isTagLegal()` lands.
 */
import { type GossipMessage, GossipMessage_Tag, PullMsgType } from "../gen/gossip/message_pb.js";

/** The reason `message`'s tag is illegal, or undefined when it is legal. */
export function illegalTagReason(message: GossipMessage): string | undefined {
  if (message.tag === GossipMessage_Tag.UNDEFINED) return "Undefined tag";
  const c = message.content;
  switch (c.case) {
    case "aliveMsg":
    case "memReq":
    case "memRes":
      return message.tag === GossipMessage_Tag.EMPTY ? undefined : "Tag should be EMPTY";
    case "hello":
    case "dataDig":
    case "dataReq":
    case "dataUpdate": {
      const t = c.value.msgType;
      if (t === PullMsgType.IDENTITY_MSG) return message.tag === GossipMessage_Tag.EMPTY ? undefined : "Tag should be EMPTY";
      if (t === PullMsgType.BLOCK_MSG) return message.tag === GossipMessage_Tag.CHAN_AND_ORG ? undefined : "Tag should be CHAN_AND_ORG";
      return `Invalid PullMsgType: ${t}`;
    }
    case "peerIdentity":
      return message.tag === GossipMessage_Tag.ORG_ONLY ? undefined : "Tag should be ORG_ONLY";
    case "dataMsg":
    case "leadershipMsg":
      return message.tag === GossipMessage_Tag.CHAN_AND_ORG ? undefined : "Tag should be CHAN_AND_ORG";
    case "stateInfo":
    case "stateSnapshot":
    case "stateInfoPullReq":
    case "stateRequest":
    case "stateResponse":
      return message.tag === GossipMessage_Tag.CHAN_OR_ORG ? undefined : "Tag should be CHAN_OR_ORG";
    default:
      return `Unknown message type: ${c.case}`;
  }
}
