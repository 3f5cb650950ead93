// Screens (Comm.accept's second argument): a subscription may decline a
// received Envelope before it is decoded; a message every subscription
// declined is never decoded, one some subscription wants is decoded and
// delivered to those alone, and a screen that throws declines nothing.
import assert from "node:assert/strict";
import { describe } from "node:test";
import type { ConnectionInfo } from "../../src/core/connection.js";
import type { Envelope } from "../../src/gen/gossip/message_pb.js";
import { memTest, target } from "../helpers/memory-peers.js";
import { dataMessage } from "../helpers/messages.js";

/** An Envelope whose payload is not a GossipMessage: decoding it fails the connection. */
function garbage(): Envelope {
  return { $typeName: "gossip.Envelope", payload: new Uint8Array([0x01, 0xff]), signature: new Uint8Array(0), secretEnvelope: undefined };
}

const isGarbage = (env: Envelope) => env.payload.length === 2 && env.payload[0] === 0x01;

describe("Comm.accept screens", () => {
  memTest("a message every subscription declined is not decoded: a payload that would fail the connection does not", async (c) => {
    const a = c.peer();
    const b = c.peer({ collect: false });
    const seen: { env: Envelope; from: ConnectionInfo }[] = [];
    let predicateCalls = 0;
    const sub = b.comm.accept(
      () => {
        predicateCalls++;
        return true;
      },
      (env, from) => {
        seen.push({ env, from });
        return isGarbage(env);
      },
    );
    const got: number[] = [];
    void (async () => {
      for await (const m of sub) got.push(Number(m.message.nonce));
    })();
    await a.comm.send(dataMessage(1), target(b));
    await a.comm.send(garbage(), target(b));
    await a.comm.send(dataMessage(2), target(b));
    await c.until(() => got.length === 2);
    assert.deepEqual(got, [1, 2], "the declined message is skipped, the rest arrive in order");
    assert.equal(seen.length, 3, "the screen saw every message");
    assert.deepEqual(seen[1]?.from.pkiId, a.comm.pkiId, "with the authenticated sender");
    assert.equal(predicateCalls, 2, "the predicate never saw the declined message");
    assert.equal(b.comm.connections().length, 1, "the connection was not failed: the payload was never decoded");
    sub.close();
  });

  memTest("without a screen declining it, the same payload fails the connection (MalformedMessage) as before", async (c) => {
    const a = c.peer();
    const b = c.peer({ collect: false });
    const sub = b.comm.accept(undefined, () => false);
    await a.comm.send(dataMessage(1), target(b));
    await c.until(() => b.comm.connections().length === 1);
    await a.comm.send(garbage(), target(b));
    await c.until(() => b.comm.connections().length === 0);
    sub.close();
  });

  memTest("a message one subscription declined is decoded for the others; a screen that throws declines nothing", async (c) => {
    const a = c.peer();
    const b = c.peer({ collect: false });
    const declining = b.comm.accept(undefined, () => true);
    const throwing = b.comm.accept(undefined, () => {
      throw new Error("a faulty screen");
    });
    const plain = b.comm.accept();
    const got = { declining: 0, throwing: 0, plain: 0 };
    const read = async (s: typeof plain, k: keyof typeof got) => {
      for await (const _ of s) got[k]++;
    };
    void read(declining, "declining");
    void read(throwing, "throwing");
    void read(plain, "plain");
    await a.comm.send(dataMessage(1), target(b));
    await a.comm.send(dataMessage(2), target(b));
    await c.until(() => got.plain === 2 && got.throwing === 2);
    assert.equal(got.declining, 0);
    declining.close();
    throwing.close();
    plain.close();
  });

  memTest("a closed subscription's screen is no longer asked", async (c) => {
    const a = c.peer({});
    const b = c.peer();
    let asked = 0;
    const sub = b.comm.accept(undefined, () => {
      asked++;
      return true;
    });
    await a.comm.send(dataMessage(1), target(b));
    await c.until(() => b.received.length === 1);
    sub.close();
    await a.comm.send(dataMessage(2), target(b));
    await c.until(() => b.received.length === 2);
    assert.equal(asked, 1);
  });
});
