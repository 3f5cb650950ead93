import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { compileEncoder, decodeMessage, encodeMessage } from "../../src/codec/index.js";
import { encodeEnvelope, encodeUnsignedEnvelope, noopSign, parseGossipMessage } from "../../src/core/envelope.js";
import { type GossipMessage, GossipMessage_Tag, GossipMessageSchema, PullMsgType } from "../../src/gen/gossip/message_pb.js";

const bytes = (n: number, seed = 1) => Uint8Array.from({ length: n }, (_, i) => (i * 31 + seed) & 0xff);

function samples(): GossipMessage[] {
  return [
    create(GossipMessageSchema, {}),
    create(GossipMessageSchema, { nonce: 1n, channel: bytes(12), tag: GossipMessage_Tag.CHAN_AND_ORG }),
    create(GossipMessageSchema, {
      nonce: 0xffff_ffff_ffff_ffffn,
      channel: new TextEncoder().encode("benchchannel"),
      tag: GossipMessage_Tag.CHAN_AND_ORG,
      content: {
        case: "dataMsg",
        value: { payload: { seqNum: 2n ** 60n + 7n, data: bytes(1024), privateData: [bytes(3), new Uint8Array(0), bytes(200)] } },
      },
    }),
    create(GossipMessageSchema, { content: { case: "empty", value: {} } }),
    create(GossipMessageSchema, { nonce: 9n, content: { case: "ack", value: { error: "nope ✓ ünïcödé" } } }),
    create(GossipMessageSchema, { content: { case: "ack", value: { error: "x".repeat(300) } } }),
    create(GossipMessageSchema, {
      content: {
        case: "aliveMsg",
        value: {
          membership: { endpoint: "peer0.org1:7051", metadata: bytes(5), pkiId: bytes(32) },
          timestamp: { incNum: 123456789n, seqNum: 0n },
          identity: bytes(700),
        },
      },
    }),
    create(GossipMessageSchema, {
      content: {
        case: "stateInfo",
        value: {
          timestamp: { incNum: 1n, seqNum: 2n },
          pkiId: bytes(32),
          channelMAC: bytes(32),
          properties: {
            ledgerHeight: 99n,
            leftChannel: true,
            chaincodes: [
              { name: "cc", version: "1.0", metadata: bytes(4) },
              { name: "", version: "" },
            ],
          },
        },
      },
    }),
    create(GossipMessageSchema, {
      content: { case: "dataDig", value: { nonce: 4n, digests: [bytes(8), bytes(9)], msgType: PullMsgType.BLOCK_MSG } },
    }),
    create(GossipMessageSchema, {
      content: {
        case: "memRes",
        value: {
          alive: [{ payload: bytes(10), signature: bytes(70), secretEnvelope: { payload: bytes(3), signature: bytes(0) } }],
          dead: [],
        },
      },
    }),
  ];
}

describe("compiled protobuf codec", () => {
  it("encodes byte for byte like protobuf-es toBinary", () => {
    for (const m of samples()) {
      assert.deepEqual(encodeMessage(GossipMessageSchema, m), toBinary(GossipMessageSchema, m));
      assert.deepEqual(new Uint8Array(encodeUnsignedEnvelope(m)), encodeEnvelope(noopSign(m)));
    }
  });

  it("decodes to the same messages as protobuf-es fromBinary", () => {
    for (const m of samples()) {
      const bin = toBinary(GossipMessageSchema, m);
      assert.deepStrictEqual(decodeMessage(GossipMessageSchema, bin), fromBinary(GossipMessageSchema, bin));
      assert.deepStrictEqual(parseGossipMessage(bin), fromBinary(GossipMessageSchema, bin));
    }
  });

  it("merges repeated singular message fields and accepts unpacked encodings, as protobuf-es does", () => {
    // The same oneof message field twice: concatenated encodings merge.
    const a = toBinary(GossipMessageSchema, create(GossipMessageSchema, { content: { case: "aliveMsg", value: { identity: bytes(3) } } }));
    const b = toBinary(
      GossipMessageSchema,
      create(GossipMessageSchema, { nonce: 5n, content: { case: "aliveMsg", value: { timestamp: { incNum: 1n, seqNum: 1n } } } }),
    );
    const both = new Uint8Array([...a, ...b]);
    assert.deepStrictEqual(decodeMessage(GossipMessageSchema, both), fromBinary(GossipMessageSchema, both));
  });

  it("falls back to protobuf-es for unknown fields, invalid data and unexpected values", () => {
    const unknown = new Uint8Array([...toBinary(GossipMessageSchema, create(GossipMessageSchema, { nonce: 3n })), 0xf8, 0x3f, 0x01]);
    const decoded = decodeMessage<GossipMessage>(GossipMessageSchema, unknown);
    assert.deepStrictEqual(decoded, fromBinary(GossipMessageSchema, unknown));
    assert.deepEqual(
      encodeMessage(GossipMessageSchema, decoded),
      toBinary(GossipMessageSchema, decoded),
      "unknown fields are written back",
    );
    for (const bad of [new Uint8Array([0x08]), new Uint8Array([0x0a, 0x05, 0x01]), new Uint8Array([0x00, 0x01])]) {
      assert.throws(() => fromBinary(GossipMessageSchema, bad));
      assert.throws(() => decodeMessage(GossipMessageSchema, bad));
    }
    const invalidUtf8 = new Uint8Array([0xba, 0x01, 0x03, 0x0a, 0x01, 0xff]);
    let expected: unknown;
    try {
      expected = fromBinary(GossipMessageSchema, invalidUtf8);
    } catch (e) {
      expected = e;
    }
    let actual: unknown;
    try {
      actual = decodeMessage(GossipMessageSchema, invalidUtf8);
    } catch (e) {
      actual = e;
    }
    assert.deepStrictEqual(actual, expected);
    const odd = { ...create(GossipMessageSchema, {}), nonce: 5 as unknown as bigint };
    assert.deepEqual(encodeMessage(GossipMessageSchema, odd), toBinary(GossipMessageSchema, odd), "a number in a bigint field");
    const wrong = { ...create(GossipMessageSchema, {}), tag: 2 ** 40 };
    assert.throws(() => toBinary(GossipMessageSchema, wrong), Error);
    assert.throws(() => encodeMessage(GossipMessageSchema, wrong), Error);
  });

  it("is re-entrant: measurements of different messages may interleave and nest", () => {
    const enc = compileEncoder(GossipMessageSchema);
    assert.ok(enc);
    const all = samples();
    // Measure every sample first, encode more in between, then write them all.
    const measured = all.map((m) => enc.measure(m));
    for (const m of all) encodeMessage(GossipMessageSchema, m);
    all.forEach((m, i) => {
      const w = measured[i];
      assert.ok(w, `sample ${i} is compiled`);
      const buf = new Uint8Array(w.size + 3);
      assert.equal(w.write(buf, 3), buf.length);
      assert.deepEqual(buf.subarray(3), toBinary(GossipMessageSchema, m), `sample ${i}`);
      const again = new Uint8Array(w.size);
      w.write(again, 0);
      assert.deepEqual(again, toBinary(GossipMessageSchema, m), `sample ${i} written twice`);
    });
  });
});
