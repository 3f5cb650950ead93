/**
 * Tags of GossipMessages: which routing tag each content type must carry.
 *
 * Fabric's gossip layer checks every top-level message it receives
 * (protoext.IsTagLegal, v2.4.9) and drops one whose tag does not fit its
 * content, logging "Message ... isn't valid". A peer that talks to Fabric must
 * therefore tag what it builds the way Fabric does, and a membership layer
 * refuses on receipt what Fabric would refuse.
 */
import { type GossipMessage, GossipMessage_Tag, PullMsgType } from "../gen/gossip/message_pb.js";
import { ErrorCode, GossipError } from "./errors.js";

/** The content of a GossipMessage (its `oneof`). */
export type GossipContent = GossipMessage["content"];

/**
 * The one tag Fabric's gossip layer accepts for `content` (IsTagLegal), or
 * undefined when it accepts none:
 *
 * - `aliveMsg`, `memReq`, `memRes`: EMPTY
 * - `hello`, `dataDig`, `dataReq`, `dataUpdate`: EMPTY for IDENTITY_MSG,
 *   CHAN_AND_ORG for BLOCK_MSG, none for an UNDEFINED `msgType`
 * - `peerIdentity`: ORG_ONLY
 * - `dataMsg`, `leadershipMsg`: CHAN_AND_ORG
 * - `stateInfo`, `stateSnapshot`, `stateInfoPullReq`, `stateRequest`,
 *   `stateResponse`: CHAN_OR_ORG
 * - `empty`, `conn`, `ack`, `privateReq`, `privateRes`, `privateData`, no
 *   content: none ("Unknown message type"). Fabric never lets these reach the
 *   check: comm consumes handshakes and acks, and private data is accepted
 *   past it.
 */
export function legalTag(content: GossipContent): GossipMessage_Tag | undefined {
  switch (content.case) {
    case "aliveMsg":
    case "memReq":
    case "memRes":
      return GossipMessage_Tag.EMPTY;
    case "hello":
    case "dataDig":
    case "dataReq":
    case "dataUpdate":
      return pullTag(content.value.msgType);
    case "peerIdentity":
      return GossipMessage_Tag.ORG_ONLY;
    case "dataMsg":
    case "leadershipMsg":
      return GossipMessage_Tag.CHAN_AND_ORG;
    case "stateInfo":
    case "stateSnapshot":
    case "stateInfoPullReq":
    case "stateRequest":
    case "stateResponse":
      return GossipMessage_Tag.CHAN_OR_ORG;
    case "empty":
    case "conn":
    case "ack":
    case "privateReq":
    case "privateRes":
    case "privateData":
    case undefined:
      return undefined;
  }
}

function pullTag(msgType: PullMsgType): GossipMessage_Tag | undefined {
  if (msgType === PullMsgType.IDENTITY_MSG) return GossipMessage_Tag.EMPTY;
  if (msgType === PullMsgType.BLOCK_MSG) return GossipMessage_Tag.CHAN_AND_ORG;
  return undefined;
}

/**
 * The tag a message we build gets when its author names none: the
 * {@link legalTag}, else the tag Fabric itself puts on such a message
 * (EMPTY on `conn` and `empty`, CHAN_ONLY on private data, UNDEFINED on `ack`,
 * on a pull message without `msgType` and on a message without content).
 */
export function defaultTag(content: GossipContent): GossipMessage_Tag {
  const legal = legalTag(content);
  if (legal !== undefined) return legal;
  switch (content.case) {
    case "conn":
    case "empty":
      return GossipMessage_Tag.EMPTY;
    case "privateReq":
    case "privateRes":
    case "privateData":
      return GossipMessage_Tag.CHAN_ONLY;
    default:
      return GossipMessage_Tag.UNDEFINED;
  }
}

/**
 * Fabric's IsTagLegal as an error: undefined when Fabric's gossip layer
 * accepts the tag of `message`, otherwise an `IllegalTag` {@link GossipError}
 * with Fabric's reason ("Undefined tag", "Tag should be EMPTY",
 * "Invalid PullMsgType: UNDEFINED", "Unknown message type: conn").
 */
export function checkTag(message: Pick<GossipMessage, "tag" | "content">): GossipError | undefined {
  const problem = tagProblem(message);
  return problem === undefined ? undefined : new GossipError(ErrorCode.IllegalTag, problem);
}

/** True when Fabric's gossip layer accepts the tag of `message` (IsTagLegal). */
export function isTagLegal(message: Pick<GossipMessage, "tag" | "content">): boolean {
  return tagProblem(message) === undefined;
}

function tagProblem(message: Pick<GossipMessage, "tag" | "content">): string | undefined {
  // Fabric's order: an undefined tag is reported before anything about the content.
  if (message.tag === GossipMessage_Tag.UNDEFINED) return "Undefined tag";
  const content = message.content;
  const legal = legalTag(content);
  if (legal === undefined) {
    switch (content.case) {
      case "hello":
      case "dataDig":
      case "dataReq":
      case "dataUpdate":
        return `Invalid PullMsgType: ${PullMsgType[content.value.msgType] ?? content.value.msgType}`;
      default:
        return `Unknown message type: ${content.case ?? "no content"}`;
    }
  }
  return message.tag === legal ? undefined : `Tag should be ${GossipMessage_Tag[legal]}`;
}
