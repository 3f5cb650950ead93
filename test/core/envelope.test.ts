// The hand-written Envelope codec must agree with protobuf-es byte for byte,
// and reject garbage with a typed error.
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { describe, it } from "node:test";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { decodeEnvelope, encodeEnvelope, encodeEnvelopeFrame, parseGossipMessage } from "../../src/core/envelope.js";
import { ErrorCode, GossipError } from "../../src/core/errors.js";
import { EnvelopeSchema, SecretEnvelopeSchema } from "../../src/gen/gossip/message_pb.js";
import { encodeFrames } from "../../src/grpc/framing.js";

function randomEnvelope(i: number) {
  const size = (n: number) => [0, 1, 127, 128, 300, 16_384, 70_000][n % 7] as number;
  return create(EnvelopeSchema, {
    payload: randomBytes(size(i)),
    signature: randomBytes(size(i + 3) % 100),
    secretEnvelope:
      i % 3 === 0 ? create(SecretEnvelopeSchema, { payload: randomBytes(size(i + 1)), signature: randomBytes(5) }) : undefined,
  });
}

describe("Envelope codec", () => {
  it("encodes exactly as protobuf-es' toBinary", () => {
    for (let i = 0; i < 50; i++) {
      const env = randomEnvelope(i);
      assert.deepEqual(Buffer.from(encodeEnvelope(env)), Buffer.from(toBinary(EnvelopeSchema, env)));
    }
  });

  it("encodes a wire-only frame exactly as encodeEnvelope, in place for the transport (no copy when framed)", () => {
    for (let i = 0; i < 50; i++) {
      const env = randomEnvelope(i);
      const frame = encodeEnvelopeFrame(env);
      assert.deepEqual(Buffer.from(frame), Buffer.from(encodeEnvelope(env)));
      const framed = encodeFrames([frame]);
      assert.deepEqual(framed.subarray(5), Buffer.from(frame));
      // A slab frame is framed where it lies: the same memory, not a copy.
      if (frame.length > 0 && frame.length <= 4096) assert.equal(framed.buffer, frame.buffer);
    }
  });

  it("decodes what protobuf-es encodes, including unknown fields", () => {
    for (let i = 0; i < 50; i++) {
      const env = randomEnvelope(i);
      const bytes = toBinary(EnvelopeSchema, env);
      const withUnknown = Buffer.concat([bytes, Buffer.from([0x20, 0x01, 0x2d, 1, 2, 3, 4, 0x31, 1, 2, 3, 4, 5, 6, 7, 8])]);
      for (const b of [bytes, withUnknown]) {
        const d = decodeEnvelope(b);
        assert.deepEqual(Buffer.from(d.payload), Buffer.from(env.payload));
        assert.deepEqual(Buffer.from(d.signature), Buffer.from(env.signature));
        assert.deepEqual(
          d.secretEnvelope && Buffer.from(d.secretEnvelope.payload),
          env.secretEnvelope && Buffer.from(env.secretEnvelope.payload),
        );
      }
      assert.deepEqual(fromBinary(EnvelopeSchema, encodeEnvelope(env)), fromBinary(EnvelopeSchema, bytes));
    }
  });

  it("rejects truncated or invalid protobuf with MalformedMessage", () => {
    for (const bad of [
      [0x0a, 0x05, 1, 2],
      [0x0a],
      [0x07],
      [0x00, 0x01],
      [0x0b, 0x01],
      [0x0a, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01],
    ]) {
      assert.throws(
        () => decodeEnvelope(new Uint8Array(bad)),
        (e: unknown) => e instanceof GossipError && e.code === ErrorCode.MalformedMessage,
        `bytes ${bad}`,
      );
    }
  });

  it("a payload that is not a GossipMessage fails parsing with MalformedMessage; an empty one is an empty message", () => {
    assert.throws(
      () => parseGossipMessage(new Uint8Array([0x01])),
      (e: unknown) => e instanceof GossipError && e.code === ErrorCode.MalformedMessage,
    );
    assert.equal(parseGossipMessage(new Uint8Array(0)).content.case, undefined);
  });
});
