// Log volume: a gossip server logs incidents, not requests, so a Ping flood
// cannot flood its log.
import assert from "node:assert/strict";
import type { AddressInfo } from "node:net";
import { Writable } from "node:stream";
import { describe, it } from "node:test";
import { pino } from "pino";
import { GossipClient } from "../../src/client/gossip-client.js";
import { createPeerMaterial } from "../../src/pki/certificates.js";
import { createGossipServer } from "../../src/server/create-server.js";

describe("logging", () => {
  it("createGossipServer logs no line per request: 200 Pings leave the log empty at info", async () => {
    const lines: { msg?: string }[] = [];
    const sink = new Writable({
      write(chunk: Buffer, _enc, cb) {
        for (const l of chunk.toString("utf8").split("\n")) if (l.trim()) lines.push(JSON.parse(l) as { msg?: string });
        cb();
      },
    });
    const m = createPeerMaterial({ mspId: "Org1MSP" });
    const app = await createGossipServer({
      identity: {
        mspId: "Org1MSP",
        certificate: m.identity.certPem,
        privateKey: m.identity.keyPem,
        trustedRoots: { Org1MSP: [m.ca.certPem] },
      },
      loggerInstance: pino({ level: "info" }, sink),
    });
    await app.listen({ host: "127.0.0.1", port: 0 });
    const client = await GossipClient.connect(`127.0.0.1:${(app.server.address() as AddressInfo).port}`);
    try {
      const mark = lines.length;
      for (let i = 0; i < 200; i++) await client.ping();
      const perRequest = lines.slice(mark).filter((l) => l.msg === "incoming request" || l.msg === "request completed");
      assert.equal(perRequest.length, 0, `${perRequest.length} per-request lines`);
    } finally {
      client.close();
      await app.close();
    }
    assert.ok(
      lines.some((l) => /Server listening/.test(l.msg ?? "")),
      "the logger was wired (control)",
    );
  });
});
