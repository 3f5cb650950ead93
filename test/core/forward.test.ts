// Forwarding (issue 12.2): a received Envelope goes on to other peers as the
// exact bytes it arrived in, never re-encoded, unless it was changed.
import assert from "node:assert/strict";
import { describe } from "node:test";
import { create, toBinary } from "@bufbuild/protobuf";
import { signMessage } from "../../src/core/envelope.js";
import type { Dialer, WireStream } from "../../src/core/transport.js";
import { EnvelopeSchema, SecretEnvelopeSchema } from "../../src/gen/gossip/message_pb.js";
import { memTest, target } from "../helpers/memory-peers.js";
import { dataMessage } from "../helpers/messages.js";
import { must } from "../helpers/must.js";

/** Wraps a dialer so that every frame its streams write is recorded (what goes on the wire). */
function tapped(frames: Uint8Array[]): (d: Dialer) => Dialer {
  return (d) => ({
    ping: (ep, o) => d.ping(ep, o),
    openStream: async (ep, o) => {
      const s = await d.openStream(ep, o);
      const tap: WireStream = {
        get remoteAddress() {
          return s.remoteAddress;
        },
        get tls() {
          return s.tls;
        },
        get remoteCertHash() {
          return s.remoteCertHash;
        },
        get localCertHash() {
          return s.localCertHash;
        },
        get incoming() {
          return s.incoming;
        },
        get closed() {
          return s.closed;
        },
        write: (envelopes) => {
          frames.push(...envelopes);
          return s.write(envelopes);
        },
        end: () => s.end(),
        abort: (e) => s.abort(e),
      };
      return tap;
    },
  });
}

const dataFrames = (frames: readonly Uint8Array[], payloadSize: number) => frames.filter((f) => f.length > payloadSize);

describe("forwarding", () => {
  memTest(
    "a received envelope reaches the next peer as the bytes it arrived in, unknown fields and secret envelope included",
    async (c) => {
      const sentByA: Uint8Array[] = [];
      const sentByB: Uint8Array[] = [];
      const a = c.peer({ wrapDialer: tapped(sentByA) });
      const b = c.peer({ wrapDialer: tapped(sentByB) });
      const d = c.peer();
      const e = c.peer();
      // A signed envelope from a newer peer: a secret envelope, and fields this version does not know.
      const env = signMessage(a.crypto, dataMessage(7, new Uint8Array(300).fill(7)));
      env.secretEnvelope = create(SecretEnvelopeSchema, { payload: new Uint8Array([1, 2]), signature: new Uint8Array([3]) });
      env.secretEnvelope.$unknown = [{ no: 5, wireType: 0, data: new Uint8Array([42]) }];
      env.$unknown = [{ no: 9, wireType: 2, data: new Uint8Array([2, 7, 7]) }];
      await a.comm.send(env, target(b));
      await c.until(() => b.received.length === 1);
      const got = must(b.received[0], "the message at b");
      await b.comm.forward(got, target(d), target(e));
      await c.until(() => d.received.length === 1 && e.received.length === 1);

      const onWireToB = dataFrames(sentByA, 300);
      const onWireFromB = dataFrames(sentByB, 300);
      assert.equal(onWireToB.length, 1);
      assert.equal(onWireFromB.length, 2, "one frame to each of the two peers");
      for (const f of onWireFromB) {
        assert.deepEqual(f, onWireToB[0], "the bytes B sent are the bytes B received");
        assert.equal(f.buffer, got.envelope.payload.buffer, "not a copy: the received frame itself");
      }
      assert.equal(onWireFromB[0], onWireFromB[1], "one frame for the whole fan-out");
      for (const p of [d, e]) {
        const fwd = must(p.received[0], "the forwarded message");
        assert.deepEqual(fwd.envelope.$unknown, env.$unknown);
        assert.deepEqual(fwd.envelope.secretEnvelope?.$unknown, env.secretEnvelope.$unknown);
        assert.equal(fwd.message.nonce, 7n);
      }
    },
  );

  memTest("a changed envelope is encoded anew; plain send of a received envelope is a forward too", async (c) => {
    const sentByB: Uint8Array[] = [];
    const a = c.peer();
    const b = c.peer({ wrapDialer: tapped(sentByB) });
    const d = c.peer();
    await a.comm.send(a.comm.sign(dataMessage(1, new Uint8Array(200))), target(b));
    await a.comm.send(a.comm.sign(dataMessage(2, new Uint8Array(200))), target(b));
    await c.until(() => b.received.length === 2);
    const [first, second] = b.received as [(typeof b.received)[0], (typeof b.received)[0]];
    // Fabric's secret-envelope stripping: a new envelope object, the same payload and signature.
    const stripped = { ...first.envelope, secretEnvelope: undefined };
    second.envelope.signature = new Uint8Array(second.envelope.signature);
    second.envelope.signature[0] = (second.envelope.signature[0] ?? 0) ^ 1;
    await b.comm.send(stripped, target(d));
    await b.comm.send(second.envelope, target(d));
    await c.until(() => d.received.length === 2);
    const frames = dataFrames(sentByB, 200);
    assert.equal(frames.length, 2);
    assert.equal(must(frames[0], "frame 0").buffer, first.envelope.payload.buffer, "unchanged fields: still the received bytes");
    assert.notEqual(must(frames[1], "frame 1").buffer, second.envelope.payload.buffer, "a replaced signature: encoded anew");
    assert.deepEqual(frames[1], toBinary(EnvelopeSchema, second.envelope));
    assert.deepEqual(must(d.received[1], "the second message at d").envelope.signature, second.envelope.signature);
  });
});
