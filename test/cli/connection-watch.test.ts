// `send --ack` waits for each ack or the connection's failure, whichever is
// first. Racing one long-lived failure promise left a reaction on it per
// message (~300 B) until the command ended; a run of --count 1000000 kept
// hundreds of MB. In process, no sockets.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { ConnectionWatch } from "../../src/cli/commands/send.js";
import type { ConnectionEvent } from "../../src/core/comm.js";
import { ErrorCode, GossipError } from "../../src/core/errors.js";
import { EventStream } from "../../src/core/event-stream.js";
import { heapAfterGc } from "../helpers/heap.js";

const info = { pkiId: new Uint8Array([1, 2, 3]) } as unknown as ConnectionEvent["connection"];

describe("send's connection watch", () => {
  it("keeps nothing per settled wait", async () => {
    const events = new EventStream<ConnectionEvent>(16);
    const watch = new ConnectionWatch({ connectionEvents: events });
    const n = 20_000;
    const round = async () => {
      for (let i = 0; i < n; i++) assert.equal(await watch.orFailure(Promise.resolve(i)), i);
    };
    await round(); // warm-up as long as a measure
    const before = heapAfterGc();
    await round();
    await round();
    const perWait = (heapAfterGc() - before) / (2 * n);
    events.end();
    await watch.done;
    assert.ok(perWait < 40, `heap grew ${Math.round(perWait)} bytes per wait`);
  });

  it("a failure ends the waits under way and answers later ones at once", async () => {
    const events = new EventStream<ConnectionEvent>(16);
    const watch = new ConnectionWatch({ connectionEvents: events });
    await Promise.resolve();
    events.emit({ type: "connected", connection: info });
    const never = new Promise<number>(() => {});
    const pending = [watch.orFailure(never), watch.orFailure(never)];
    const refused = new GossipError(ErrorCode.PkiIdMismatch, "refused");
    // A stop's closing is not a failure.
    events.emit({ type: "disconnected", connection: info, error: new GossipError(ErrorCode.Stopping, "stopping") });
    events.emit({ type: "disconnected", connection: info, error: refused });
    for (const p of pending) assert.equal(await p, refused);
    assert.equal(await watch.orFailure(never), refused);
    assert.equal(await watch.failed, refused);
    assert.equal(watch.remote, "010203");
    events.end();
    await watch.done;
  });
});
