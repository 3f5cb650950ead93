// The server serves the gRPC, Connect and gRPC-web protocols: a GossipStream
// opened with each (connect-node transports over HTTP/2, h2c and TLS)
// receives our signed ConnEstablish first, and Ping answers on each.
import assert from "node:assert/strict";
import { createHash, X509Certificate } from "node:crypto";
import { after, before, describe, it } from "node:test";
import { create, fromBinary } from "@bufbuild/protobuf";
import { createClient, type Transport } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport, createGrpcWebTransport } from "@connectrpc/connect-node";
import { EmptySchema, type Envelope, Gossip, GossipMessageSchema } from "../../src/gen/gossip/message_pb.js";
import { startPeer, type TestPeer } from "../helpers/peers.js";

let h2c: TestPeer;
let tlsPeer: TestPeer;

before(async () => {
  h2c = await startPeer({ tls: false });
  tlsPeer = await startPeer({ tls: true });
});

after(async () => {
  await h2c?.close();
  await tlsPeer?.close();
});

const factories = {
  grpc: createGrpcTransport,
  connect: createConnectTransport,
  grpcweb: createGrpcWebTransport,
} as const;

function transportFor(protocol: keyof typeof factories, peer: TestPeer, tls: boolean): Transport {
  const m = peer.material;
  return factories[protocol]({
    baseUrl: `${tls ? "https" : "http"}://${peer.endpoint}`,
    httpVersion: "2",
    nodeOptions: tls ? { ca: m.ca.certPem, cert: m.tlsClient.certPem, key: m.tlsClient.keyPem } : {},
  });
}

/** Requests that send nothing until `signal` aborts, then end. */
async function* idleUntil(signal: AbortSignal): AsyncGenerator<Envelope> {
  await new Promise<void>((r) => (signal.aborted ? r() : signal.addEventListener("abort", () => r(), { once: true })));
}

/** Opens a GossipStream, returns the first Envelope it receives, then cancels it. */
async function firstEnvelope(transport: Transport, timeoutMs = 5000): Promise<Envelope> {
  const client = createClient(Gossip, transport);
  const ac = new AbortController();
  const timer = setTimeout(() => ac.abort(new Error(`no Envelope within ${timeoutMs}ms`)), timeoutMs);
  try {
    for await (const env of client.gossipStream(idleUntil(ac.signal), { signal: ac.signal })) {
      return env;
    }
    throw new Error("the stream ended without an Envelope");
  } finally {
    clearTimeout(timer);
    ac.abort();
  }
}

function hex(b: Uint8Array): string {
  return Buffer.from(b).toString("hex");
}

for (const tls of [false, true]) {
  describe(`protocols over ${tls ? "TLS" : "h2c"}`, () => {
    for (const protocol of Object.keys(factories) as (keyof typeof factories)[]) {
      it(`${protocol}: Ping answers`, async () => {
        const peer = tls ? tlsPeer : h2c;
        const client = createClient(Gossip, transportFor(protocol, peer, tls));
        const res = await client.ping(create(EmptySchema), { timeoutMs: 5000 });
        assert.equal(res.$typeName, "gossip.Empty");
      });

      it(`${protocol}: a GossipStream receives our signed ConnEstablish first`, async () => {
        const peer = tls ? tlsPeer : h2c;
        const env = await firstEnvelope(transportFor(protocol, peer, tls));
        const msg = fromBinary(GossipMessageSchema, env.payload);
        assert.equal(msg.content.case, "conn");
        const conn = msg.content.case === "conn" ? msg.content.value : undefined;
        assert.equal(hex(conn?.pkiId ?? new Uint8Array(0)), hex(peer.comm.pkiId));
        assert.ok(env.signature.length > 0, "the ConnEstablish is signed");
        const certHash = tls ? createHash("sha256").update(new X509Certificate(peer.material.tlsServer.certPem).raw).digest("hex") : "";
        assert.equal(hex(conn?.tlsCertHash ?? new Uint8Array(0)), certHash);
      });
    }
  });
}
