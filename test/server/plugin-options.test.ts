// The plugin refuses option names it does not know (with the closest known
// one), at register: a misspelt option was ignored and its default kept.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fastify from "fastify";
import { X509CryptoService } from "../../src/core/x509-crypto.js";
import { gossipConnect } from "../../src/server/plugin.js";
import { identityOf } from "../helpers/peers.js";

const crypto = new X509CryptoService(identityOf("Org1MSP"));

/** Registers the plugin with `opts` (as a JavaScript caller could) and waits until the app is ready. */
async function register(opts: Record<string, unknown>): Promise<void> {
  const app = fastify({ http2: true });
  try {
    await app.register(gossipConnect, { crypto, ...opts } as never);
    await app.ready();
  } finally {
    await app.close();
  }
}

const unknown = (pattern: RegExp) => (e: unknown) => e instanceof TypeError && pattern.test(e.message);

describe("plugin: unknown options", () => {
  it("refuses an unknown top-level, comm or membership option, naming it and the closest known one", async () => {
    await assert.rejects(register({ metrix: true }), unknown(/unknown option metrix \(did you mean metrics\?\)/));
    await assert.rejects(
      register({ options: { sendBufSize: 10 } }),
      unknown(/unknown option options\.sendBufSize \(did you mean options\.sendBuffSize\?\)/),
    );
    await assert.rejects(
      register({ membership: { bootstrapPeer: ["127.0.0.1:7051"] } }),
      unknown(/unknown option membership\.bootstrapPeer \(did you mean membership\.bootstrapPeers\?\)/),
    );
    await assert.rejects(register({ frobnicate: 1 }), unknown(/^gossip-connect: unknown option frobnicate$/));
  });

  it("takes every known option, and Fastify's own register options", async () => {
    await register({
      reflection: false,
      metrics: false,
      options: { sendBuffSize: 50, clientKeepaliveIntervalMs: 60_000 },
      membership: { bootstrapPeers: [], aliveTimeIntervalMs: 5000 },
      logLevel: "warn",
    });
  });
});
