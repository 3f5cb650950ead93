/**
 * Example: our peer talks to a Fabric-style foreign peer.
 *
 * The foreign peer is not built on gossip-connect's transport: it is a gRPC
 * server of @grpc/grpc-js serving Hyperledger's published `gossip.Gossip`
 * service (@hyperledger/fabric-protos), and it performs Fabric's connection
 * handshake by hand, the way a Fabric peer does (gossip/comm's
 * authenticateRemotePeer):
 *
 *   1. on a new GossipStream, send our signed ConnEstablish at once:
 *      {pki_id, identity (msp.SerializedIdentity), tls_cert_hash (SHA-256 of our
 *      TLS certificate's DER), probe}, signed with ECDSA P-256 / SHA-256, low-S,
 *      over the exact serialized GossipMessage bytes that go in Envelope.payload;
 *   2. read the remote's first Envelope within connTimeout (2 s) and check it:
 *      a ConnEstablish with a PKI-ID, an identity issued by a trusted CA of its
 *      MSP, PKI-ID = SHA-256(mspid || cert), tls_cert_hash = SHA-256 of the
 *      certificate the remote showed on this TLS connection, and a valid
 *      signature over the payload bytes;
 *   3. a probe (probe = true) ends there; otherwise messages flow.
 *
 * The foreign side reuses gossip-connect's X509CryptoService for its crypto
 * (sign, verify, identity validation) and signMessage/encodeEnvelope to build
 * its acknowledgements. Hyperledger's google-protobuf bindings read uint64
 * fields as JS numbers, so nonces above 2^53 would be rounded: the foreign peer
 * reads every message after the handshake with our exact codec
 * (parseGossipMessage, nonces as bigint), and only writes small nonces
 * through the bindings.
 *
 * Our peer (Fastify + plugin, mutual TLS) deep-probes the foreign peer
 * (Comm.handshake), sends it a data message with sendWithAck (a random 64-bit
 * nonce, acknowledged exactly), and receives a data message the foreign peer
 * sends back on the same stream.
 *
 * Run: node --import tsx examples/foreign-peer.ts   (exits 0 when all checks pass)
 */
import assert from "node:assert/strict";
import { createHash, X509Certificate } from "node:crypto";
import { createRequire } from "node:module";
import { pathToFileURL } from "node:url";
import { create } from "@bufbuild/protobuf";
import type * as grpcTypes from "@grpc/grpc-js";
import type * as fabricTypes from "@hyperledger/fabric-protos";
import {
  bytesEqual,
  encodeEnvelope,
  gossipMessage,
  parseGossipMessage,
  parseIdentity,
  pkiIdHex,
  signMessage,
  X509CryptoService,
} from "../src/core/index.js";
import { AcknowledgementSchema, DataMessageSchema, PayloadSchema } from "../src/gen/gossip/message_pb.js";
import { createCa, createPeerMaterial, type PeerMaterial } from "../src/pki/index.js";
import { createGossipServer } from "../src/server/index.js";

// Hyperledger's bindings and grpc-js are CommonJS.
const require = createRequire(import.meta.url);
const grpc = require("@grpc/grpc-js") as typeof grpcTypes;
const { gossip } = require("@hyperledger/fabric-protos") as typeof fabricTypes;

type Envelope = fabricTypes.gossip.Envelope;
type Stream = grpcTypes.ServerDuplexStream<Envelope, Envelope>;

const sha256 = (b: Uint8Array): Uint8Array => new Uint8Array(createHash("sha256").update(b).digest());

/** Who authenticated on a stream. */
interface RemoteInfo {
  readonly pkiId: Uint8Array;
  readonly mspId: string;
  readonly probe: boolean;
}

/** A Fabric-style gossip peer on grpc-js and Hyperledger's bindings. */
class FabricStylePeer {
  readonly crypto: X509CryptoService;
  readonly received: { from: string; nonce: bigint; content: string }[] = [];
  readonly handshakeErrors: string[] = [];
  endpoint = "";
  private readonly server: grpcTypes.Server;
  private readonly tlsCertHash: Uint8Array;
  private readonly streams = new Map<string, Stream>();
  private readonly onChange: (() => void)[] = [];

  constructor(
    private readonly material: PeerMaterial,
    private readonly trusted: Readonly<Record<string, string[]>>,
  ) {
    this.crypto = new X509CryptoService({
      mspId: material.mspId,
      certificate: material.identity.certPem,
      privateKey: material.identity.keyPem,
      trustedRoots: trusted,
    });
    this.tlsCertHash = sha256(new X509Certificate(material.tlsServer.certPem).raw);
    this.server = new grpc.Server();
    this.server.addService(gossip.GossipService, {
      ping: (_call: unknown, callback: grpcTypes.sendUnaryData<fabricTypes.gossip.Empty>) => callback(null, new gossip.Empty()),
      gossipStream: (call: Stream) => {
        void this.serve(call);
      },
    });
  }

  /** Listens on 127.0.0.1 with TLS that requires a client certificate (Fabric's clientAuthRequired). */
  async start(): Promise<void> {
    const cas = Buffer.from(Object.values(this.trusted).flat().join("\n"));
    const creds = grpc.ServerCredentials.createSsl(
      cas,
      [{ cert_chain: Buffer.from(this.material.tlsServer.certPem), private_key: Buffer.from(this.material.tlsServer.keyPem) }],
      true,
    );
    const port = await new Promise<number>((resolve, reject) =>
      this.server.bindAsync("127.0.0.1:0", creds, (err, p) => (err ? reject(err) : resolve(p))),
    );
    this.endpoint = `127.0.0.1:${port}`;
  }

  /** Our signed ConnEstablish, built with Hyperledger's bindings. */
  private connEstablish(): Envelope {
    const conn = new gossip.ConnEstablish();
    conn.setPkiId(this.crypto.pkiId);
    conn.setIdentity(this.crypto.identity);
    conn.setTlsCertHash(this.tlsCertHash);
    const msg = new gossip.GossipMessage();
    msg.setNonce(0);
    msg.setTag(gossip.GossipMessage.Tag.EMPTY);
    msg.setConn(conn);
    const payload = msg.serializeBinary();
    const env = new gossip.Envelope();
    env.setPayload(payload);
    // ECDSA P-256 / SHA-256, DER, low-S: over exactly the bytes we send as payload.
    env.setSignature(this.crypto.sign(payload));
    return env;
  }

  /** Checks the remote's first Envelope as Fabric does; throws on any failure. */
  private authenticate(env: Envelope, remoteCertHash: Uint8Array): RemoteInfo {
    const payload = env.getPayload_asU8();
    const conn = gossip.GossipMessage.deserializeBinary(payload).getConn();
    if (!conn) throw new Error("wrong type: expected a ConnEstablish");
    const pkiId = conn.getPkiId_asU8();
    if (pkiId.length === 0) throw new Error("no PKI-ID");
    const identity = conn.getIdentity_asU8();
    this.crypto.validateIdentity(identity); // issued by a trusted CA of its MSP, not expired
    if (!bytesEqual(this.crypto.pkiIdOf(identity), pkiId)) throw new Error("identity doesn't match the computed pkiID");
    if (!bytesEqual(conn.getTlsCertHash_asU8(), remoteCertHash)) throw new Error("TLS certificate hash mismatch");
    this.crypto.verify(identity, env.getSignature_asU8(), payload); // low-S enforced
    return { pkiId, mspId: parseIdentity(identity).mspId, probe: conn.getProbe() };
  }

  private async serve(call: Stream): Promise<void> {
    const raw = call.getAuthContext().sslPeerCertificate?.raw;
    if (raw === undefined) {
      call.end(); // TLS is on: a remote without a certificate gets nothing from us
      return;
    }
    call.write(this.connEstablish());
    let remote: RemoteInfo;
    try {
      remote = this.authenticate(await firstEnvelope(call, 2000), sha256(raw));
    } catch (e) {
      this.handshakeErrors.push((e as Error).message);
      call.end();
      return;
    }
    if (remote.probe) {
      call.end();
      return;
    }
    const from = pkiIdHex(remote.pkiId);
    this.streams.set(from, call);
    call.on("data", (env: Envelope) => this.onMessage(call, from, env));
    call.on("end", () => {
      if (this.streams.get(from) === call) this.streams.delete(from);
      call.end();
    });
    call.on("error", () => this.streams.delete(from));
    call.resume();
    this.changed();
  }

  private onMessage(call: Stream, from: string, env: Envelope): void {
    // Exact 64-bit nonces: read with gossip-connect's codec, not the bindings.
    const msg = parseGossipMessage(env.getPayload_asU8());
    this.received.push({ from, nonce: msg.nonce, content: msg.content.case ?? "none" });
    if (msg.content.case === "dataMsg") {
      // Acknowledge with the same nonce (Fabric's ack), signed; the Envelope bytes cross into the bindings as is.
      const ack = gossipMessage({ nonce: msg.nonce, content: { case: "ack", value: create(AcknowledgementSchema, { error: "" }) } });
      call.write(gossip.Envelope.deserializeBinary(encodeEnvelope(signMessage(this.crypto, ack))));
    }
    this.changed();
  }

  /** Sends a data message with a small nonce (safe through the bindings) to a connected peer. */
  sendData(toPkiId: string, nonce: number, text: string): void {
    const stream = this.streams.get(toPkiId);
    if (!stream) throw new Error(`no stream from ${toPkiId}`);
    const payload = new gossip.Payload();
    payload.setSeqNum(1);
    payload.setData(new TextEncoder().encode(text));
    const data = new gossip.DataMessage();
    data.setPayload(payload);
    const msg = new gossip.GossipMessage();
    msg.setNonce(nonce);
    // The tag Fabric's gossip layer requires of a data message (IsTagLegal).
    msg.setTag(gossip.GossipMessage.Tag.CHAN_AND_ORG);
    msg.setDataMsg(data);
    const env = new gossip.Envelope();
    env.setPayload(msg.serializeBinary());
    stream.write(env);
  }

  /** Resolves when `cond()` holds (checked on every change), or rejects after `ms`. */
  async until(cond: () => boolean, ms: number): Promise<void> {
    const deadline = Date.now() + ms;
    while (!cond()) {
      if (Date.now() > deadline) throw new Error(`foreign peer: condition not met within ${ms} ms`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, 50);
        this.onChange.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
  }

  private changed(): void {
    for (const f of this.onChange.splice(0)) f();
  }

  async stop(): Promise<void> {
    for (const s of this.streams.values()) s.end();
    await new Promise<void>((resolve) => this.server.tryShutdown(() => resolve()));
    this.server.forceShutdown();
  }
}

/** The first Envelope of a stream, within `ms` (Fabric's connTimeout). */
function firstEnvelope(call: Stream, ms: number): Promise<Envelope> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => done(new Error("timed out waiting for connection message")), ms);
    const onData = (env: Envelope) => {
      call.pause();
      done(undefined, env);
    };
    const onError = (e: Error) => done(e);
    const done = (e?: Error, env?: Envelope) => {
      clearTimeout(timer);
      call.off("data", onData);
      call.off("error", onError);
      if (env) resolve(env);
      else reject(e);
    };
    call.on("data", onData);
    call.on("error", onError);
  });
}

export async function main(): Promise<void> {
  // Two organizations, each with its CA; each side trusts both.
  const ca1 = createCa({ commonName: "ca.org1msp", organization: "Org1MSP" });
  const ca2 = createCa({ commonName: "ca.org2msp", organization: "Org2MSP" });
  const trusted = { Org1MSP: [ca1.certPem], Org2MSP: [ca2.certPem] };

  const foreign = new FabricStylePeer(createPeerMaterial({ mspId: "Org2MSP", ca: ca2, commonName: "fabric-style.org2msp" }), trusted);
  await foreign.start();

  const ours = createPeerMaterial({ mspId: "Org1MSP", ca: ca1, commonName: "ours.org1msp" });
  const app = await createGossipServer({
    identity: { mspId: "Org1MSP", certificate: ours.identity.certPem, privateKey: ours.identity.keyPem, trustedRoots: trusted },
    tls: { cert: ours.tlsServer.certPem, key: ours.tlsServer.keyPem, ca: [ca1.certPem, ca2.certPem] },
    clientTls: { ca: [ca1.certPem, ca2.certPem], cert: ours.tlsClient.certPem, key: ours.tlsClient.keyPem },
  });
  await app.listen({ host: "127.0.0.1", port: 0 });
  const comm = app.gossip;
  const incoming = comm.accept((m) => m.message.content.case === "dataMsg");
  try {
    // 1. Deep probe: the foreign peer authenticates us and we it; nothing is registered.
    const remote = await comm.handshake({ endpoint: foreign.endpoint });
    assert.equal(pkiIdHex(remote.pkiId), pkiIdHex(foreign.crypto.pkiId));
    assert.equal(parseIdentity(remote.identity).mspId, "Org2MSP");

    // 2. A data message with sendWithAck: its nonce is a random 64-bit value, acknowledged exactly.
    const message = gossipMessage({
      content: {
        case: "dataMsg",
        value: create(DataMessageSchema, {
          payload: create(PayloadSchema, { seqNum: 1n, data: new TextEncoder().encode("hello, Fabric") }),
        }),
      },
    });
    const result = await comm.sendWithAck(message, 3000, 1, { endpoint: foreign.endpoint, pkiId: remote.pkiId });
    assert.equal(result.ackCount, 1, `ack missing: ${result.toString()}`);
    await foreign.until(() => foreign.received.some((r) => r.content === "dataMsg"), 3000);
    const got = foreign.received.find((r) => r.content === "dataMsg");
    assert.equal(got?.from, pkiIdHex(comm.pkiId));

    // 3. The foreign peer answers on the same stream; our subscriber gets it, authenticated.
    foreign.sendData(pkiIdHex(comm.pkiId), 7, "hello, gossip-connect");
    const it = incoming[Symbol.asyncIterator]();
    let timer: NodeJS.Timeout | undefined;
    const next = await Promise.race([
      it.next(),
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error("no message from the foreign peer within 3 s")), 3000);
      }),
    ]);
    clearTimeout(timer);
    assert.equal(next.done, false);
    if (next.done) return;
    assert.equal(next.value.message.nonce, 7n);
    assert.equal(pkiIdHex(next.value.connection.pkiId), pkiIdHex(foreign.crypto.pkiId));
    assert.deepEqual(foreign.handshakeErrors, []);
    console.log(
      `foreign-peer: handshake with ${foreign.endpoint} (Org2MSP, grpc-js + Hyperledger's bindings), ` +
        `sendWithAck ${result.toString()} (nonce ${got?.nonce}), reply received (nonce ${next.value.message.nonce})`,
    );
  } finally {
    incoming.close();
    await app.close();
    await foreign.stop();
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
