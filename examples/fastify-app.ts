/**
 * Example: mount gossip-connect in an existing Fastify app.
 *
 * The app is an ordinary Fastify HTTP/2 server with JSON routes; registering
 * the `gossipConnect` plugin adds Fabric's Gossip service (GossipStream and
 * Ping over gRPC, Connect and gRPC-web, plus server reflection) on the same
 * port and decorates the app with `app.gossip`, the Comm it serves. The
 * plugin keeps Connect's content-type parsers to itself, so the app's JSON
 * routes parse JSON as before.
 *
 * Run: node --import tsx examples/fastify-app.ts   (exits 0 when all checks pass)
 *
 * In your own code, import from the package instead of ../src:
 *   import { gossipConnect } from "gossip-connect/server";
 */
import assert from "node:assert/strict";
import * as http2 from "node:http2";
import type { AddressInfo } from "node:net";
import { pathToFileURL } from "node:url";
import fastify from "fastify";
import { GossipClient } from "../src/client/index.js";
import { createPeerMaterial } from "../src/pki/index.js";
import { gossipConnect } from "../src/server/index.js";

/** Your existing app: HTTP/2 (cleartext here; pass `https` for TLS), JSON routes. */
function buildApp() {
  const app = fastify({ http2: true, logger: false });
  app.get("/health", async () => ({ status: "ok" }));
  app.post<{ Body: { name?: string } }>("/greet", async (request) => ({ greeting: `hello, ${request.body.name ?? "stranger"}` }));
  return app;
}

/** One HTTP/2 JSON request (what a browser or curl --http2-prior-knowledge would send). */
async function requestJson(base: string, method: "GET" | "POST", path: string, body?: unknown): Promise<{ status: number; json: unknown }> {
  const session = http2.connect(base);
  try {
    return await new Promise((resolve, reject) => {
      session.once("error", reject);
      const req = session.request({
        ":method": method,
        ":path": path,
        ...(body !== undefined ? { "content-type": "application/json" } : {}),
      });
      let status = 0;
      let text = "";
      req.setEncoding("utf8");
      req.on("response", (headers) => {
        status = Number(headers[":status"]);
      });
      req.on("data", (chunk: string) => {
        text += chunk;
      });
      req.on("end", () => resolve({ status, json: JSON.parse(text) as unknown }));
      req.on("error", reject);
      req.end(body !== undefined ? JSON.stringify(body) : undefined);
    });
  } finally {
    session.close();
  }
}

export async function main(): Promise<void> {
  const app = buildApp();

  // The gossip peer's identity. Here a throwaway one; in production your MSP's enrollment certificate.
  const material = createPeerMaterial({ mspId: "Org1MSP" });
  await app.register(gossipConnect, {
    identity: {
      mspId: material.mspId,
      certificate: material.identity.certPem,
      privateKey: material.identity.keyPem,
      trustedRoots: { [material.mspId]: [material.ca.certPem] },
    },
  });

  await app.listen({ host: "127.0.0.1", port: 0 });
  const { port } = app.server.address() as AddressInfo;
  const base = `http://127.0.0.1:${port}`;
  try {
    // The app's own routes are untouched.
    assert.deepEqual(await requestJson(base, "GET", "/health"), { status: 200, json: { status: "ok" } });
    assert.deepEqual(await requestJson(base, "POST", "/greet", { name: "gossip" }), { status: 200, json: { greeting: "hello, gossip" } });

    // The Gossip service answers on the same port: Ping over Connect's JSON protocol...
    assert.deepEqual(await requestJson(base, "POST", "/gossip.Gossip/Ping", {}), { status: 200, json: {} });
    // ...and over gRPC, as a gossip peer dials it.
    const client = await GossipClient.connect(`127.0.0.1:${port}`);
    try {
      await client.ping();
    } finally {
      client.close();
    }

    // app.gossip is the Comm: send, accept, probe, stats...
    assert.equal(app.gossip.stats().connections.inbound, 0);
    console.log(
      `fastify-app: JSON routes and Gossip.Ping served together on ${base}; our PKI-ID ${Buffer.from(app.gossip.pkiId).toString("hex").slice(0, 16)}...`,
    );
  } finally {
    await app.close();
  }
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main().then(
    () => process.exit(0),
    (e: unknown) => {
      console.error(e);
      process.exit(1);
    },
  );
}
