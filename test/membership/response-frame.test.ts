// encodeMembershipResponse against protobuf-es: the response written from
// kept frames is byte for byte what toBinary writes for the decoded envelopes.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { create, toBinary } from "@bufbuild/protobuf";
import fc from "fast-check";
import { decodeEnvelope, encodeEnvelope } from "../../src/core/envelope.js";
import { GossipMessage_Tag, GossipMessageSchema, MembershipResponseSchema } from "../../src/gen/gossip/message_pb.js";
import { encodeMembershipResponse } from "../../src/membership/response-frame.js";

const bytes = (max: number) => fc.uint8Array({ maxLength: max });
/** A kept frame: the canonical encoding of an Envelope, with or without a secret envelope. */
const frame = fc
  .record({
    payload: fc.uint8Array({ minLength: 1, maxLength: 300 }),
    signature: bytes(80),
    secret: fc.option(fc.record({ payload: bytes(40), signature: bytes(80) }), { nil: undefined }),
  })
  .map((e) =>
    encodeEnvelope({
      payload: e.payload,
      signature: e.signature,
      secretEnvelope: e.secret === undefined ? undefined : { $typeName: "gossip.SecretEnvelope", ...e.secret },
    }),
  );
const nonce = fc.oneof(fc.constant(0n), fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }));

describe("encodeMembershipResponse", () => {
  it("writes what protobuf-es writes for the same response decoded (any nonce, any entries, none included)", () => {
    fc.assert(
      fc.property(nonce, fc.array(frame, { maxLength: 12 }), fc.array(frame, { maxLength: 4 }), (n, alive, dead) => {
        const expected = toBinary(
          GossipMessageSchema,
          create(GossipMessageSchema, {
            tag: GossipMessage_Tag.EMPTY,
            nonce: n,
            content: {
              case: "memRes",
              value: create(MembershipResponseSchema, { alive: alive.map(decodeEnvelope), dead: dead.map(decodeEnvelope) }),
            },
          }),
        );
        assert.deepEqual(encodeMembershipResponse(n, alive, dead), expected);
      }),
      { numRuns: 500 },
    );
  });

  it("a response over 2 MiB gets a multi-byte length prefix", () => {
    const big = new Uint8Array(3 << 20);
    const out = encodeMembershipResponse(7n, [encodeEnvelope({ payload: big, signature: new Uint8Array(0) })], []);
    const expected = toBinary(
      GossipMessageSchema,
      create(GossipMessageSchema, {
        tag: GossipMessage_Tag.EMPTY,
        nonce: 7n,
        content: { case: "memRes", value: { alive: [{ payload: big }] } },
      }),
    );
    assert.equal(out.length, expected.length);
    assert.ok(Buffer.from(out).equals(Buffer.from(expected)));
  });
});
