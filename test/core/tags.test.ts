// Tag legality, checked against Fabric v2.4.9's protoext.IsTagLegal for every content type.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { gossipMessage } from "../../src/core/envelope.js";
import { ErrorCode } from "../../src/core/errors.js";
import { checkTag, defaultTag, type GossipContent, isTagLegal, legalTag } from "../../src/core/tags.js";
import { type GossipMessage, GossipMessageSchema, PullMsgType, GossipMessage_Tag as Tag } from "../../src/gen/gossip/message_pb.js";

type Case = NonNullable<GossipContent["case"]> | undefined;

function content(c: Case, msgType?: PullMsgType): GossipContent {
  const init = c === undefined ? {} : { content: { case: c, value: msgType === undefined ? {} : { msgType } } };
  return gossipMessage(init as Parameters<typeof gossipMessage>[0]).content;
}

const allTags = [Tag.UNDEFINED, Tag.EMPTY, Tag.ORG_ONLY, Tag.CHAN_ONLY, Tag.CHAN_AND_ORG, Tag.CHAN_OR_ORG];

/** Content → the one legal tag (undefined: none), the default tag, and Fabric's reason for a wrong (non-UNDEFINED) tag. */
const table: { name: string; content: GossipContent; legal: Tag | undefined; fallback: Tag; reason: string }[] = [
  { name: "aliveMsg", content: content("aliveMsg"), legal: Tag.EMPTY, fallback: Tag.EMPTY, reason: "Tag should be EMPTY" },
  { name: "memReq", content: content("memReq"), legal: Tag.EMPTY, fallback: Tag.EMPTY, reason: "Tag should be EMPTY" },
  { name: "memRes", content: content("memRes"), legal: Tag.EMPTY, fallback: Tag.EMPTY, reason: "Tag should be EMPTY" },
  {
    name: "dataMsg",
    content: content("dataMsg"),
    legal: Tag.CHAN_AND_ORG,
    fallback: Tag.CHAN_AND_ORG,
    reason: "Tag should be CHAN_AND_ORG",
  },
  {
    name: "leadershipMsg",
    content: content("leadershipMsg"),
    legal: Tag.CHAN_AND_ORG,
    fallback: Tag.CHAN_AND_ORG,
    reason: "Tag should be CHAN_AND_ORG",
  },
  { name: "peerIdentity", content: content("peerIdentity"), legal: Tag.ORG_ONLY, fallback: Tag.ORG_ONLY, reason: "Tag should be ORG_ONLY" },
  ...(["stateInfo", "stateSnapshot", "stateInfoPullReq", "stateRequest", "stateResponse"] as const).map((c) => ({
    name: c,
    content: content(c),
    legal: Tag.CHAN_OR_ORG,
    fallback: Tag.CHAN_OR_ORG,
    reason: "Tag should be CHAN_OR_ORG",
  })),
  ...(["hello", "dataDig", "dataReq", "dataUpdate"] as const).flatMap((c) => [
    {
      name: `${c} IDENTITY_MSG`,
      content: content(c, PullMsgType.IDENTITY_MSG),
      legal: Tag.EMPTY,
      fallback: Tag.EMPTY,
      reason: "Tag should be EMPTY",
    },
    {
      name: `${c} BLOCK_MSG`,
      content: content(c, PullMsgType.BLOCK_MSG),
      legal: Tag.CHAN_AND_ORG,
      fallback: Tag.CHAN_AND_ORG,
      reason: "Tag should be CHAN_AND_ORG",
    },
    {
      name: `${c} UNDEFINED msgType`,
      content: content(c),
      legal: undefined,
      fallback: Tag.UNDEFINED,
      reason: "Invalid PullMsgType: UNDEFINED",
    },
  ]),
  { name: "empty", content: content("empty"), legal: undefined, fallback: Tag.EMPTY, reason: "Unknown message type: empty" },
  { name: "conn", content: content("conn"), legal: undefined, fallback: Tag.EMPTY, reason: "Unknown message type: conn" },
  { name: "ack", content: content("ack"), legal: undefined, fallback: Tag.UNDEFINED, reason: "Unknown message type: ack" },
  {
    name: "privateReq",
    content: content("privateReq"),
    legal: undefined,
    fallback: Tag.CHAN_ONLY,
    reason: "Unknown message type: privateReq",
  },
  {
    name: "privateRes",
    content: content("privateRes"),
    legal: undefined,
    fallback: Tag.CHAN_ONLY,
    reason: "Unknown message type: privateRes",
  },
  {
    name: "privateData",
    content: content("privateData"),
    legal: undefined,
    fallback: Tag.CHAN_ONLY,
    reason: "Unknown message type: privateData",
  },
  {
    name: "no content",
    content: content(undefined),
    legal: undefined,
    fallback: Tag.UNDEFINED,
    reason: "Unknown message type: no content",
  },
];

describe("tags (Fabric's IsTagLegal)", () => {
  it("the table covers every content case of GossipMessage", () => {
    const cases = new Set(table.map((t) => t.content.case));
    const oneof = GossipMessageSchema.oneofs.find((o) => o.name === "content")?.fields.map((f) => f.localName) ?? [];
    assert.equal(oneof.length, 21);
    assert.deepEqual([...cases].sort(), [...oneof, undefined].sort());
  });

  for (const t of table) {
    it(`${t.name}: legal tag ${t.legal === undefined ? "none" : Tag[t.legal]}, every other tag refused with Fabric's reason`, () => {
      assert.equal(legalTag(t.content), t.legal);
      assert.equal(defaultTag(t.content), t.fallback);
      for (const tag of allTags) {
        const m: Pick<GossipMessage, "tag" | "content"> = { tag, content: t.content };
        const ok = t.legal !== undefined && tag === t.legal;
        assert.equal(isTagLegal(m), ok, `${t.name} with ${Tag[tag]}`);
        const err = checkTag(m);
        if (ok) assert.equal(err, undefined);
        else {
          assert.equal(err?.code, ErrorCode.IllegalTag);
          // UNDEFINED is reported before anything about the content, as in Fabric.
          assert.equal(err?.message, tag === Tag.UNDEFINED ? "Undefined tag" : t.reason);
        }
      }
    });
  }

  it("gossipMessage() defaults to that tag, and keeps a tag its author gave", () => {
    for (const t of table) {
      const m = gossipMessage({ content: t.content });
      assert.equal(m.tag, t.fallback, t.name);
    }
    const data = gossipMessage({ content: { case: "dataMsg", value: {} } });
    assert.equal(data.tag, Tag.CHAN_AND_ORG);
    assert.ok(isTagLegal(data));
    const explicit = gossipMessage({ tag: Tag.CHAN_ONLY, content: { case: "dataMsg", value: {} } });
    assert.equal(explicit.tag, Tag.CHAN_ONLY);
    assert.equal(checkTag(explicit)?.message, "Tag should be CHAN_AND_ORG");
  });
});
