// Hyperledger's own grpc-js bindings (@hyperledger/fabric-protos: grpc-js +
// google-protobuf, what Node Fabric tooling uses) against our server: Ping
// over h2c and TLS, and a GossipStream whose first message is our signed
// ConnEstablish.
import assert from "node:assert/strict";
import { createHash, X509Certificate } from "node:crypto";
import { createRequire } from "node:module";
import { after, before, describe, it } from "node:test";
import type * as grpcTypes from "@grpc/grpc-js";
import type * as fabricTypes from "@hyperledger/fabric-protos";
import { startPeer, type TestPeer } from "../helpers/peers.js";

const require = createRequire(import.meta.url);
const grpc = require("@grpc/grpc-js") as typeof grpcTypes;
const fabric = require("@hyperledger/fabric-protos") as typeof fabricTypes;
const { gossip } = fabric;

type GossipClient = fabricTypes.gossip.GossipClient;
type Envelope = fabricTypes.gossip.Envelope;

let h2c: TestPeer;
let tlsPeer: TestPeer;
const clients: GossipClient[] = [];

before(async () => {
  h2c = await startPeer({ tls: false });
  tlsPeer = await startPeer({ tls: true });
});

after(async () => {
  for (const c of clients) c.close();
  await h2c?.close();
  await tlsPeer?.close();
});

function clientFor(peer: TestPeer, tls: boolean, clientCert = true): GossipClient {
  const m = peer.material;
  const creds = tls
    ? clientCert
      ? grpc.credentials.createSsl(Buffer.from(m.ca.certPem), Buffer.from(m.tlsClient.keyPem), Buffer.from(m.tlsClient.certPem))
      : grpc.credentials.createSsl(Buffer.from(m.ca.certPem))
    : grpc.credentials.createInsecure();
  const client = new gossip.GossipClient(peer.endpoint, creds, { "grpc.max_receive_message_length": 100 * 1024 * 1024 });
  clients.push(client);
  return client;
}

function ping(client: GossipClient, timeoutMs = 5000): Promise<fabricTypes.gossip.Empty> {
  return new Promise((resolve, reject) => {
    client.ping(new gossip.Empty(), { deadline: Date.now() + timeoutMs }, (err, res) => {
      if (err) reject(err);
      else if (!res) reject(new Error("no response"));
      else resolve(res);
    });
  });
}

/** Opens a GossipStream, resolves with the first Envelope received, then cancels the call. */
function firstEnvelope(client: GossipClient, timeoutMs = 5000): Promise<Envelope> {
  return new Promise((resolve, reject) => {
    const call = client.gossipStream();
    const timer = setTimeout(() => {
      call.cancel();
      reject(new Error(`no Envelope within ${timeoutMs}ms`));
    }, timeoutMs);
    call.on("error", (e: grpcTypes.ServiceError) => {
      clearTimeout(timer);
      if (e.code !== grpc.status.CANCELLED) reject(e);
    });
    call.once("data", (env: Envelope) => {
      clearTimeout(timer);
      resolve(env);
      call.cancel();
    });
  });
}

function hex(b: Uint8Array): string {
  return Buffer.from(b).toString("hex");
}

describe("@hyperledger/fabric-protos GossipClient (grpc-js)", () => {
  it("Ping succeeds over h2c", async () => {
    const res = await ping(clientFor(h2c, false));
    assert.ok(res instanceof gossip.Empty);
  });

  it("Ping succeeds over TLS with a client certificate", async () => {
    const res = await ping(clientFor(tlsPeer, true));
    assert.ok(res instanceof gossip.Empty);
  });

  it("Ping succeeds over TLS without a client certificate (requested, not required, as Fabric)", async () => {
    const res = await ping(clientFor(tlsPeer, true, false));
    assert.ok(res instanceof gossip.Empty);
  });

  it("a GossipStream over h2c receives our signed ConnEstablish first", async () => {
    const env = await firstEnvelope(clientFor(h2c, false));
    const msg = gossip.GossipMessage.deserializeBinary(env.getPayload_asU8());
    assert.equal(msg.getContentCase(), gossip.GossipMessage.ContentCase.CONN);
    const conn = msg.getConn();
    assert.ok(conn);
    assert.equal(hex(conn.getPkiId_asU8()), hex(h2c.comm.pkiId));
    assert.equal(conn.getTlsCertHash_asU8().length, 0, "no TLS certificate hash over h2c");
    assert.ok(env.getSignature_asU8().length > 0, "the ConnEstablish is signed");
  });

  it("a GossipStream over TLS receives our signed ConnEstablish first, binding our TLS certificate", async () => {
    const env = await firstEnvelope(clientFor(tlsPeer, true));
    const msg = gossip.GossipMessage.deserializeBinary(env.getPayload_asU8());
    assert.equal(msg.getContentCase(), gossip.GossipMessage.ContentCase.CONN);
    const conn = msg.getConn();
    assert.ok(conn);
    assert.equal(hex(conn.getPkiId_asU8()), hex(tlsPeer.comm.pkiId));
    const serverCertHash = createHash("sha256").update(new X509Certificate(tlsPeer.material.tlsServer.certPem).raw).digest("hex");
    assert.equal(hex(conn.getTlsCertHash_asU8()), serverCertHash);
    assert.ok(env.getSignature_asU8().length > 0, "the ConnEstablish is signed");
  });
});
