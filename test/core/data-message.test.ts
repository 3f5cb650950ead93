// dataMessage: the cheap builder of data messages is exactly what
// protobuf-es' create (through gossipMessage) builds.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { create, isMessage, toBinary } from "@bufbuild/protobuf";
import fc from "fast-check";
import { dataMessage, gossipMessage } from "../../src/core/index.js";
import { GossipMessage_Tag, GossipMessageSchema } from "../../src/gen/gossip/message_pb.js";

const u64 = fc.bigInt({ min: BigInt(0), max: (BigInt(1) << BigInt(64)) - BigInt(1) });

describe("dataMessage", () => {
  it("is deep-equal to gossipMessage / create with the same contents, and encodes the same", () => {
    const inits = fc.record(
      {
        nonce: u64,
        channel: fc.uint8Array({ maxLength: 20 }),
        tag: fc.constantFrom(GossipMessage_Tag.CHAN_AND_ORG, GossipMessage_Tag.EMPTY, GossipMessage_Tag.UNDEFINED),
        seqNum: u64,
        data: fc.uint8Array({ maxLength: 300 }),
        privateData: fc.array(fc.uint8Array({ maxLength: 10 }), { maxLength: 3 }),
      },
      { requiredKeys: ["seqNum", "data"] },
    );
    fc.assert(
      fc.property(inits, (init) => {
        const built = dataMessage(init);
        const expected = gossipMessage({
          nonce: init.nonce,
          channel: init.channel,
          tag: init.tag,
          content: { case: "dataMsg", value: { payload: { seqNum: init.seqNum, data: init.data, privateData: init.privateData } } },
        });
        assert.deepStrictEqual(built, expected);
        assert.ok(isMessage(built, GossipMessageSchema));
        assert.deepEqual(toBinary(GossipMessageSchema, built), toBinary(GossipMessageSchema, expected));
      }),
      { numRuns: 200 },
    );
  });

  it("defaults: nonce 0, no channel, the tag Fabric requires of a data message, no private data", () => {
    const data = new Uint8Array([1, 2, 3]);
    assert.deepStrictEqual(
      dataMessage({ seqNum: BigInt(7), data }),
      create(GossipMessageSchema, {
        tag: GossipMessage_Tag.CHAN_AND_ORG,
        content: { case: "dataMsg", value: { payload: { seqNum: BigInt(7), data } } },
      }),
    );
    const m = dataMessage({ seqNum: BigInt(1), data });
    assert.equal(m.content.case === "dataMsg" && m.content.value.payload?.data, data, "data is not copied");
    assert.notEqual(dataMessage({ seqNum: BigInt(1), data }).channel, m.channel, "each message has its own empty channel");
  });
});
