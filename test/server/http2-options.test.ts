// The HTTP/2 transport's options (src/grpc/config.ts): defaults, validation,
// and the plugin taking them beside a comm it is given.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { Comm } from "../../src/core/comm.js";
import { resolveCommConfig } from "../../src/core/config.js";
import { defaultHttp2Config, resolveHttp2Config } from "../../src/grpc/config.js";
import { createGossipServer } from "../../src/server/create-server.js";

describe("HTTP/2 options", () => {
  it("apply defaults, take positive integers, ignore the comm's options, and name a bad option", () => {
    assert.deepEqual(resolveHttp2Config(), defaultHttp2Config);
    const c = resolveHttp2Config({
      serverKeepaliveIntervalMs: 500,
      initialWindowBytes: 0,
      sendBuffSize: 7,
    } as never);
    assert.equal(c.serverKeepaliveIntervalMs, 500);
    assert.equal(c.initialWindowBytes, 1024 * 1024);
    assert.equal((c as Record<string, unknown>).sendBuffSize, undefined);
    assert.throws(() => resolveHttp2Config({ maxConcurrentStreams: 1.5 }), /option maxConcurrentStreams must be a positive integer/);
    assert.equal(
      (resolveCommConfig({ clientKeepaliveIntervalMs: 5 } as never) as Record<string, unknown>).clientKeepaliveIntervalMs,
      undefined,
    );
  });

  it("the plugin takes HTTP/2 options beside a comm it is given, and refuses the comm's own", async () => {
    const comm = {
      config: resolveCommConfig(),
      handleStream: async () => {},
    } as unknown as Comm;
    const app = await createGossipServer({
      comm,
      reflection: false,
      options: { serverKeepaliveIntervalMs: 500, maxHeaderListBytes: 4096 },
    });
    await app.close();
    await assert.rejects(
      createGossipServer({ comm, options: { sendBuffSize: 5 } }),
      /options sendBuffSize configure a comm the plugin creates/,
    );
  });
});
