// gRPC GossipStreams and Pings are served on their raw HTTP/2 streams, before
// Node's compatibility layer and Fastify (stream-dispatch.ts): an application's
// Fastify hooks do not see them, while every other request (Connect Ping, the
// application's own routes) still goes through Fastify as before.
import assert from "node:assert/strict";
import * as http2 from "node:http2";
import type { AddressInfo } from "node:net";
import { after, before, describe, it } from "node:test";
import fastify from "fastify";
import { createPeerMaterial } from "../../src/pki/certificates.js";
import { gossipConnect } from "../../src/server/plugin.js";
import { grpcFrame, grpcHeaders, rawRequest } from "../helpers/h2.js";
import { caFor } from "../helpers/peers.js";

const makeApp = () => fastify({ http2: true });
let app: ReturnType<typeof makeApp>;
let endpoint: string;
const seen: string[] = [];

before(async () => {
  const ca = caFor("Org1MSP");
  const m = createPeerMaterial({ mspId: "Org1MSP", ca });
  app = makeApp();
  app.addHook("onRequest", async (request) => {
    seen.push(`${request.method} ${request.url} ${request.headers["content-type"]}`);
  });
  app.get("/health", async () => ({ ok: true }));
  await app.register(gossipConnect, {
    identity: { mspId: "Org1MSP", certificate: m.identity.certPem, privateKey: m.identity.keyPem, trustedRoots: { Org1MSP: [ca.certPem] } },
    options: { connTimeoutMs: 500 },
  });
  await app.listen({ host: "127.0.0.1", port: 0 });
  endpoint = `127.0.0.1:${(app.server.address() as AddressInfo).port}`;
});

after(async () => {
  await app?.close();
});

describe("gRPC requests bypass Fastify", () => {
  it("serves gRPC Ping and GossipStream without Fastify's hooks; Connect Ping and other routes still run them", async () => {
    const s = http2.connect(`http://${endpoint}`);
    s.on("error", () => {});
    try {
      const ping = await rawRequest(s, "/gossip.Gossip/Ping", grpcHeaders, [grpcFrame(Buffer.alloc(0))]);
      assert.equal(ping.grpcStatus, 0);
      // A GossipStream that ends before its handshake: refused with a status, by the comm.
      const stream = await rawRequest(s, "/gossip.Gossip/GossipStream", grpcHeaders, []);
      assert.equal(stream.headers[":status"], 200);
      assert.notEqual(stream.grpcStatus, undefined);
      assert.notEqual(stream.grpcStatus, 0);
      assert.deepEqual(seen, [], "no Fastify hook ran for gRPC requests");

      const connectPing = await rawRequest(s, "/gossip.Gossip/Ping", { "content-type": "application/proto" }, []);
      assert.equal(connectPing.headers[":status"], 200);
      const health = await app.inject({ method: "GET", url: "/health" });
      assert.equal(health.statusCode, 200);
      assert.deepEqual(seen, ["POST /gossip.Gossip/Ping application/proto", "GET /health undefined"]);
    } finally {
      s.close();
    }
  });
});
