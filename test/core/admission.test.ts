// Admission of unauthenticated inbound streams: caps, per-address token
// buckets, and what it keeps of the addresses it saw.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { Admission } from "../../src/core/admission.js";
import { ErrorCode } from "../../src/core/errors.js";
import { VirtualClock } from "../../src/core/virtual-clock.js";

describe("Admission", () => {
  it("limits handshakes per address per second, and forgets an address's bucket once it has refilled", async () => {
    const clock = new VirtualClock();
    const a = new Admission(clock, 100, 2);
    const admitted = (address: string) => {
      const denied = a.admit(address);
      if (denied === undefined) a.release(address);
      return denied === undefined ? "ok" : denied.code;
    };
    assert.deepEqual(["a", "a", "a", "b"].map(admitted), ["ok", "ok", ErrorCode.RateLimited, "ok"]);
    assert.equal(clock.pending, 1, "one sweep timer for every bucket");
    await clock.advance(400);
    assert.equal(admitted("a"), ErrorCode.RateLimited, "0.8 of a token refilled");
    await clock.advance(600);
    // "b" went idle 1 s ago: swept; "a" was used 600 ms ago: kept (its tokens count), so the timer stays.
    assert.equal(clock.pending, 1);
    assert.equal(admitted("a"), "ok");
    await clock.advance(2000);
    assert.equal(clock.pending, 0, "every bucket refilled and forgotten: no timer left");
    assert.deepEqual(["a", "a", "a"].map(admitted), ["ok", "ok", ErrorCode.RateLimited]);
    a.stop();
    assert.equal(clock.pending, 0, "stop clears the sweep");
  });
});
