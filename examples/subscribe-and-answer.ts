/**
 * Example: a service that embeds a Comm, subscribes to one message type and
 * answers it.
 *
 * `BlockStore` holds blocks by sequence number and answers Fabric's state
 * transfer request (`stateRequest`, a RemoteStateRequest for a range of
 * sequence numbers) with a `stateResponse` carrying the blocks, sent back on
 * the connection the request came from with `respond()`. It creates and owns
 * its Comm (X.509 identity, client dialer) and serves it from a Fastify
 * HTTP/2 server with mutual TLS; everything else it receives is left to other
 * subscribers. A second peer, a bare Comm that only dials, asks for blocks 2
 * to 4 and checks the answer.
 *
 * Run: node --import tsx examples/subscribe-and-answer.ts   (exits 0 when all checks pass)
 *
 * In your own code, import from the package instead of ../src
 * ("gossip-connect/core", "gossip-connect/client", "gossip-connect/server").
 */
import assert from "node:assert/strict";
import type { AddressInfo } from "node:net";
import { pathToFileURL } from "node:url";
import { create } from "@bufbuild/protobuf";
import { type ClientTlsOptions, PeerDialer } from "../src/client/index.js";
import { Comm, gossipMessage, type ReceivedMessage, type Subscription, X509CryptoService } from "../src/core/index.js";
import { type GossipMessage, PayloadSchema, RemoteStateRequestSchema, RemoteStateResponseSchema } from "../src/gen/gossip/message_pb.js";
import { type CertificateAuthority, createCa, createPeerMaterial, type PeerMaterial } from "../src/pki/index.js";
import { createGossipServer, type GossipFastifyInstance } from "../src/server/index.js";

const mspId = "Org1MSP";

/** The X.509 crypto and TLS settings of a peer of our one organization. */
function peerSecurity(material: PeerMaterial, ca: CertificateAuthority) {
  const crypto = new X509CryptoService({
    mspId,
    certificate: material.identity.certPem,
    privateKey: material.identity.keyPem,
    trustedRoots: { [mspId]: [ca.certPem] },
  });
  const clientTls: ClientTlsOptions = { ca: ca.certPem, cert: material.tlsClient.certPem, key: material.tlsClient.keyPem };
  return { crypto, clientTls };
}

/** A service that answers state requests from its block store. */
export class BlockStore {
  readonly comm: Comm;
  private server: GossipFastifyInstance | undefined;
  private subscription: Subscription<ReceivedMessage> | undefined;
  private serving: Promise<void> | undefined;
  /** Requests answered so far. */
  answered = 0;

  constructor(
    private readonly material: PeerMaterial,
    private readonly ca: CertificateAuthority,
    private readonly blocks: ReadonlyMap<bigint, Uint8Array>,
  ) {
    const { crypto, clientTls } = peerSecurity(material, ca);
    this.comm = new Comm({ crypto, dialer: new PeerDialer({ tls: clientTls }) });
  }

  /** Starts serving on `127.0.0.1:port` and answering; resolves with the endpoint. */
  async start(port = 0): Promise<string> {
    // Subscribe before listening, so that no request arrives unseen.
    this.subscription = this.comm.accept((m) => m.message.content.case === "stateRequest");
    this.serving = this.answerAll(this.subscription);
    this.server = await createGossipServer({
      comm: this.comm,
      tls: { cert: this.material.tlsServer.certPem, key: this.material.tlsServer.keyPem, ca: this.ca.certPem },
    });
    await this.server.listen({ host: "127.0.0.1", port });
    return `127.0.0.1:${(this.server.server.address() as AddressInfo).port}`;
  }

  private async answerAll(requests: Subscription<ReceivedMessage>): Promise<void> {
    for await (const request of requests) {
      if (request.message.content.case !== "stateRequest") continue;
      const { startSeqNum, endSeqNum } = request.message.content.value;
      const payloads = [];
      for (let seq = startSeqNum; seq <= endSeqNum && seq < startSeqNum + 100n; seq++) {
        const data = this.blocks.get(seq);
        if (data !== undefined) payloads.push(create(PayloadSchema, { seqNum: seq, data }));
      }
      // Same nonce as the request, so that the asker can match the answer (as Fabric's state transfer does).
      // gossipMessage() tags it CHAN_OR_ORG, the tag Fabric requires of state transfer messages.
      await request.respond(
        gossipMessage({
          nonce: request.message.nonce,
          channel: request.message.channel,
          content: { case: "stateResponse", value: create(RemoteStateResponseSchema, { payloads }) },
        }),
      );
      this.answered++;
    }
  }

  /** Stops answering, closes the server, then the comm (we own it: the plugin does not stop a comm it was given). */
  async stop(): Promise<void> {
    this.subscription?.close();
    await this.server?.close();
    await this.comm.stop();
    await this.serving;
  }
}

/** Asks `endpoint` for blocks [from, to] and waits for the answer with the same nonce. */
async function requestBlocks(comm: Comm, endpoint: string, from: bigint, to: bigint, nonce: bigint): Promise<GossipMessage> {
  const answers = comm.accept((m) => m.message.content.case === "stateResponse" && m.message.nonce === nonce);
  try {
    await comm.send(
      gossipMessage({
        nonce,
        content: { case: "stateRequest", value: create(RemoteStateRequestSchema, { startSeqNum: from, endSeqNum: to }) },
      }),
      { endpoint },
    );
    const it = answers[Symbol.asyncIterator]();
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error("no stateResponse within 5 s")), 5000);
    });
    try {
      const r = await Promise.race([it.next(), timeout]);
      if (r.done) throw new Error("comm stopped before the answer");
      return r.value.message;
    } finally {
      clearTimeout(timer);
    }
  } finally {
    answers.close();
  }
}

export async function main(): Promise<void> {
  const ca = createCa({ commonName: "ca.org1msp", organization: mspId });
  const enc = new TextEncoder();
  const blocks = new Map<bigint, Uint8Array>([1n, 2n, 3n, 4n, 5n].map((n) => [n, enc.encode(`block ${n}`)]));

  const store = new BlockStore(createPeerMaterial({ mspId, ca, commonName: "store.org1msp" }), ca, blocks);
  const endpoint = await store.start();

  // The asking peer: a Comm that only dials (no server needed to send and read answers).
  const { crypto, clientTls } = peerSecurity(createPeerMaterial({ mspId, ca, commonName: "asker.org1msp" }), ca);
  const asker = new Comm({ crypto, dialer: new PeerDialer({ tls: clientTls }) });
  try {
    // A nonce above 2^53: exact 64-bit values travel as bigint end to end.
    const nonce = 0xfedc_ba98_7654_3210n;
    const answer = await requestBlocks(asker, endpoint, 2n, 4n, nonce);
    assert.equal(answer.nonce, nonce);
    assert.equal(answer.content.case, "stateResponse");
    if (answer.content.case !== "stateResponse") return;
    const got = answer.content.value.payloads.map((p) => [p.seqNum, new TextDecoder().decode(p.data)]);
    assert.deepEqual(got, [
      [2n, "block 2"],
      [3n, "block 3"],
      [4n, "block 4"],
    ]);
    assert.equal(store.answered, 1);
    console.log(`subscribe-and-answer: ${endpoint} answered stateRequest [2, 4] with ${got.length} blocks (nonce ${nonce})`);
  } finally {
    await asker.stop();
    await store.stop();
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
