// The plugin's `membership` option: app.gossipMembership is created when the
// server listens (internal endpoint = listen address), counts Prometheus
// metrics in the comm's registry, and stops before the comm on close.
import assert from "node:assert/strict";
import { Writable } from "node:stream";
import { describe, it } from "node:test";
import { pino } from "pino";
import { PeerDialer } from "../../src/client/dialer.js";
import { Comm } from "../../src/core/comm.js";
import { X509CryptoService } from "../../src/core/x509-crypto.js";
import { createGossipServer } from "../../src/server/create-server.js";
import { cleanupAfter, eventually, identityOf, metricValue } from "../helpers/peers.js";

const { peer } = cleanupAfter();
const fast = {
  aliveTimeIntervalMs: 200,
  aliveExpirationTimeoutMs: 1000,
  pullIntervalMs: 400,
  digestWaitTimeMs: 100,
  requestWaitTimeMs: 150,
  responseWaitTimeMs: 200,
};

describe("plugin: membership option", () => {
  it("without it, app.gossipMembership is null", async () => {
    const p = await peer();
    assert.equal(p.app.gossipMembership, null);
  });

  it("is created on listen with the listen address as internal endpoint; two peers list each other; metrics in the same registry", async () => {
    const a = await peer({ plugin: { membership: fast, metrics: true } });
    const ma = a.app.gossipMembership;
    assert.ok(ma);
    assert.equal(ma.self.internalEndpoint, a.endpoint);
    const b = await peer({ plugin: { membership: { ...fast, bootstrapPeers: [a.endpoint] } } });
    const mb = b.app.gossipMembership;
    assert.ok(mb);
    await eventually(
      () => ma.alive().some((m) => m.pkiIdHex === mb.self.pkiIdHex) && mb.alive().length === 1,
      10_000,
      "a and b list each other",
    );
    assert.equal(await metricValue(a, "gossip_membership_total_peers_known"), 1);
  });

  it("close stops the membership before the comm: the other side presumes it dead, and its own view is empty", async () => {
    const a = await peer({ plugin: { membership: fast } });
    const b = await peer({ plugin: { membership: { ...fast, bootstrapPeers: [a.endpoint] } } });
    const ma = a.app.gossipMembership;
    const mb = b.app.gossipMembership;
    assert.ok(ma && mb);
    await eventually(() => ma.alive().length === 1 && mb.alive().length === 1, 10_000, "joined");
    await b.close();
    assert.deepEqual(mb.alive(), [], "a stopped membership holds no view");
    await eventually(() => ma.dead().some((m) => m.pkiIdHex === mb.self.pkiIdHex), 10_000, "a presumes b dead");
  });

  it("refuses a bad membership option when registered: Fastify only logs an onListen error, which left gossipMembership null", async () => {
    const refused = (pattern: RegExp) => (e: Error) => e instanceof TypeError && pattern.test(e.message);
    await assert.rejects(peer({ plugin: { membership: { aliveTimeIntervalMs: Number.NaN } } }), refused(/aliveTimeIntervalMs/));
    await assert.rejects(peer({ plugin: { membership: { ...fast, internalEndpoint: "peer0" } } }), refused(/peer0/));
    await assert.rejects(peer({ plugin: { membership: { ...fast, metadata: new Uint8Array(70_000) } } }), TypeError);
  });

  it("an IPv6 listen without internalEndpoint: membership stays off, and says so in a process warning (Fastify's logger is off by default)", async () => {
    const warnings: Error[] = [];
    const onWarning = (w: Error) => warnings.push(w);
    process.on("warning", onWarning);
    try {
      const app = await createGossipServer({
        identity: identityOf("Org1MSP"),
        membership: fast,
      });
      try {
        await app.listen({ host: "::1", port: 0 });
        await eventually(() => warnings.length > 0, 5000, "a process warning");
        assert.equal(app.gossipMembership, null);
      } finally {
        await app.close();
      }
    } finally {
      process.off("warning", onWarning);
    }
    const w = warnings[0] as Error & { code?: string };
    assert.equal(w.code, "GOSSIP_CONNECT_NO_MEMBERSHIP");
    assert.match(w.message, /internalEndpoint/);
  });

  it("logs through Fastify's logger with one component per line (the comm's, the membership's), never two", async () => {
    const lines: string[] = [];
    const sink = new Writable({
      write(chunk: Buffer, _encoding, done) {
        lines.push(
          ...chunk
            .toString("utf8")
            .split("\n")
            .filter((l) => l !== ""),
        );
        done();
      },
    });
    const app = await createGossipServer({
      identity: identityOf("Org1MSP"),
      membership: fast,
      loggerInstance: pino({ level: "warn" }, sink),
    });
    try {
      await app.listen({ host: "127.0.0.1", port: 0 });
      // Without an external endpoint, the membership warns at start (as Fabric does).
      await eventually(() => lines.some((l) => l.includes("External endpoint is empty")), 5000, "the membership's warning");
    } finally {
      await app.close();
    }
    for (const l of lines) assert.ok((l.match(/"component":/g) ?? []).length <= 1, l);
    const warning = JSON.parse(lines.find((l) => l.includes("External endpoint is empty")) as string) as Record<string, unknown>;
    assert.equal(warning.component, "gossip.discovery");
  });

  it("refuses membership with a comm of its own but no crypto; honours an explicit internal endpoint", async () => {
    const crypto = new X509CryptoService(identityOf("Org1MSP"));
    const comm = new Comm({ crypto, dialer: new PeerDialer({}) });
    try {
      await assert.rejects(
        createGossipServer({ comm, membership: fast }),
        (e: Error) => e instanceof TypeError && /needs crypto/.test(e.message),
      );
      const app = await createGossipServer({ comm, crypto, membership: { ...fast, internalEndpoint: "peer0.example.com:7051" } });
      try {
        await app.listen({ host: "127.0.0.1", port: 0 });
        assert.equal(app.gossipMembership?.self.internalEndpoint, "peer0.example.com:7051");
      } finally {
        await app.close();
      }
    } finally {
      await comm.stop();
    }
  });
});
