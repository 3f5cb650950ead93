// declineMembershipEnvelope, the screen of a subscription that wants no
// membership message (the CLI's serve): the alive messages membership's own
// screen takes from their bytes are then decoded for nobody; data messages
// and everything the bytes do not prove to be an alive message still reach
// the subscription's predicate.
import assert from "node:assert/strict";
import { describe } from "node:test";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import {
  AcknowledgementSchema,
  type Envelope,
  type GossipMessage,
  GossipMessage_Tag,
  GossipMessageSchema,
} from "../../src/gen/gossip/message_pb.js";
import { declineMembershipEnvelope, isMembershipMessage } from "../../src/membership/index.js";
import { memTest, target } from "../helpers/memory-peers.js";
import { dataMessage } from "../helpers/messages.js";
import { alive, request } from "./bad-input-kit.js";

function envelopeOf(payload: Uint8Array): Envelope {
  return { $typeName: "gossip.Envelope", payload, signature: new Uint8Array(0), secretEnvelope: undefined };
}

describe("declineMembershipEnvelope", () => {
  memTest(
    "with membership's screen taking the alive messages, a subscription screened by it never sees them decoded; data messages still arrive",
    async (c) => {
      const a = c.peer();
      const b = c.peer({ collect: false });
      // Stands for membership: takes every alive message from its bytes.
      const membership = b.comm.accept(isMembershipMessage, declineMembershipEnvelope);
      let predicateCalls = 0;
      const serve = b.comm.accept((m) => {
        predicateCalls++;
        return !isMembershipMessage(m);
      }, declineMembershipEnvelope);
      const got: number[] = [];
      void (async () => {
        for await (const m of serve) got.push(Number(m.message.nonce));
      })();
      await a.comm.send(dataMessage(1), target(b));
      for (let seq = 1n; seq <= 3n; seq++) await a.comm.send(alive(a.crypto, { seq }), target(b));
      await a.comm.send(dataMessage(2), target(b));
      await a.comm.send(dataMessage(2), target(b)); // a duplicate data message is delivered again: no dissemination layer drops it
      await c.until(() => got.length === 3);
      assert.deepEqual(got, [1, 2, 2]);
      assert.equal(predicateCalls, 3, "the alive messages were never decoded for the subscription");
      membership.close();
      serve.close();
    },
  );

  memTest(
    "declines only what the bytes prove to be an alive message, of any tag: not data, membership requests, acks or garbage",
    async (c) => {
      const a = c.peer({ collect: false });
      const bytes = (m: GossipMessage) => envelopeOf(toBinary(GossipMessageSchema, m));
      const self = alive(a.crypto);
      for (const env of [self, alive(a.crypto, { tag: GossipMessage_Tag.ORG_ONLY, seq: 9n })]) {
        assert.equal(declineMembershipEnvelope(env), true);
        assert.equal(fromBinary(GossipMessageSchema, env.payload).content.case, "aliveMsg");
      }
      const ack = create(GossipMessageSchema, { nonce: 6n, content: { case: "ack", value: create(AcknowledgementSchema, {}) } });
      for (const env of [
        bytes(dataMessage(5)),
        bytes(request(self)),
        bytes(ack),
        envelopeOf(new Uint8Array([0x01, 0xff])),
        envelopeOf(new Uint8Array(0)),
      ]) {
        assert.equal(declineMembershipEnvelope(env), false);
      }
    },
  );
});
