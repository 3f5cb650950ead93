// Fabric's TestHandshake (and TestCertificateExtraction): a raw gRPC client
// (grpc-js + Hyperledger's bindings) speaks the handshake to a peer, with
// mutations. Every refusal is a typed, counted failure with a gRPC status, and
// nothing the refused client sends reaches a subscriber.
import assert from "node:assert/strict";
import { createHash, verify, X509Certificate } from "node:crypto";
import { createRequire } from "node:module";
import { after, before, describe, it } from "node:test";
import { serializeGossipMessage } from "../../src/core/envelope.js";
import { pkiIdHex } from "../../src/core/identity.js";
import { GrpcStatus } from "../../src/grpc/status.js";
import { createCa, createPeerMaterial, issueCertificate } from "../../src/pki/certificates.js";
import { ForeignPeer, peekGossipMessage } from "../helpers/foreign-peer.js";
import { caFor, collect, dataMessage, startPeer, type TestPeer } from "../helpers/peers.js";

const fabric = createRequire(import.meta.url)("@hyperledger/fabric-protos") as typeof import("@hyperledger/fabric-protos");
const quiet = 300;
const statusOf = (s: unknown) => (s as { code?: number }).code;

for (const tls of [true, false]) {
  describe(`handshake with a raw client (${tls ? "mutual TLS" : "no TLS"})`, () => {
    let server: TestPeer;
    let client: ForeignPeer;
    let clientCertPem = "";
    const extra: ForeignPeer[] = [];

    before(async () => {
      server = await startPeer({ tls, options: { connTimeoutMs: 500 } });
      const m = createPeerMaterial({ mspId: "Org1MSP", ca: caFor("Org1MSP"), commonName: "raw.client" });
      clientCertPem = m.identity.certPem;
      client = await ForeignPeer.start({
        mspId: "Org1MSP",
        identityCert: m.identity.certPem,
        identityKey: m.identity.keyPem,
        tls: tls ? { cert: m.tlsClient.certPem, key: m.tlsClient.keyPem, ca: [caFor("Org1MSP").certPem] } : undefined,
        trustedRoots: { Org1MSP: [caFor("Org1MSP").certPem] },
      });
    });
    after(async () => {
      await client.close();
      for (const p of extra) await p.close();
      await server.close();
    });

    /** Sends `first` as the handshake, then a data message; returns what the server delivered and how the stream ended. */
    async function attempt(
      peer: ForeignPeer,
      first: ReturnType<ForeignPeer["connEstablish"]> | "late",
      opts: { withClientCert?: boolean } = {},
    ) {
      const sub = server.comm.accept();
      const failuresBefore = server.comm.stats().handshakeFailures;
      const raw = peer.openRawStream(server.endpoint, opts);
      if (first === "late") {
        await new Promise((r) => setTimeout(r, 800)); // beyond the server's 500 ms connTimeout
        raw.stream.write(peer.connEstablish({ tlsCertHash: peer.tlsCertHash }));
      } else {
        raw.stream.write(first);
      }
      const env = new fabric.gossip.Envelope();
      env.setPayload(serializeGossipMessage(dataMessage(42)));
      raw.stream.write(env);
      const delivered = await collect(sub, 1, first === "late" ? 1200 : quiet);
      sub.close();
      const status = await Promise.race([raw.ended, new Promise((r) => setTimeout(() => r("open"), 1000))]);
      raw.stream.cancel();
      return { delivered, status, raw, failures: server.comm.stats().handshakeFailures - failuresBefore };
    }

    it("a correct handshake is accepted: the message is delivered with the client's identity and signed handshake", async () => {
      const r = await attempt(client, client.connEstablish({ tlsCertHash: client.tlsCertHash }));
      assert.equal(r.delivered.length, 1);
      const info = r.delivered[0]?.connection;
      assert.ok(info);
      assert.equal(pkiIdHex(info.pkiId), client.pkiId.toString("hex"));
      assert.deepEqual(Buffer.from(info.identity), Buffer.from(client.identity));
      assert.equal(peekGossipMessage(info.auth.signedData).contentField, 14);
      // The signed handshake as the client signed it: its signature verifies over exactly these bytes.
      const clientKey = new X509Certificate(clientCertPem).publicKey;
      assert.ok(verify("sha256", info.auth.signedData, { key: clientKey, dsaEncoding: "der" }, info.auth.signature));
      // The server's own ConnEstablish came first: its PKI-ID and, with TLS, the hash of the certificate the client saw.
      const serverConn = r.raw.received[0];
      assert.ok(serverConn);
      const verified = client.verifyConnEstablish(serverConn, r.raw.serverCertHash());
      assert.equal(pkiIdHex(verified.pkiId), pkiIdHex(server.comm.pkiId));
      if (tls) {
        const expected = createHash("sha256").update(new X509Certificate(server.material.tlsServer.certPem).raw).digest();
        assert.deepEqual(r.raw.serverCertHash(), expected);
      }
    });

    const refusals: [string, (c: ForeignPeer) => ReturnType<ForeignPeer["connEstablish"]>, number][] = [
      [
        "a signature with an extra byte",
        (c) => c.connEstablish({ tlsCertHash: c.tlsCertHash, mutateSignature: (s) => Uint8Array.from([...s, 0]) }),
        GrpcStatus.Unauthenticated,
      ],
      [
        "an unsigned handshake",
        (c) => c.connEstablish({ tlsCertHash: c.tlsCertHash, mutateSignature: () => new Uint8Array(0) }),
        GrpcStatus.Unauthenticated,
      ],
      [
        "a high-S signature",
        (c) =>
          c.connEstablish({
            tlsCertHash: c.tlsCertHash,
            mutateSignature: (s) => {
              const n = 0xffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551n;
              const b = Buffer.from(s);
              const rLen = b[3] ?? 0;
              const r = b.subarray(4, 4 + rLen);
              const sv = BigInt(`0x${b.subarray(6 + rLen).toString("hex")}`);
              let hex = (n - sv).toString(16).padStart(64, "0");
              if (Number.parseInt(hex.slice(0, 2), 16) & 0x80) hex = `00${hex}`;
              const sb = Buffer.from(hex, "hex");
              const body = Buffer.concat([Buffer.from([0x02, r.length]), r, Buffer.from([0x02, sb.length]), sb]);
              return Buffer.concat([Buffer.from([0x30, body.length]), body]);
            },
          }),
        GrpcStatus.Unauthenticated,
      ],
      [
        "a PKI-ID that does not match the identity",
        (c) => c.connEstablish({ tlsCertHash: c.tlsCertHash, mutate: (conn) => conn.setPkiId(Buffer.alloc(32, 7)) }),
        GrpcStatus.Unauthenticated,
      ],
      [
        "no PKI-ID",
        (c) => c.connEstablish({ tlsCertHash: c.tlsCertHash, mutate: (conn) => conn.setPkiId(new Uint8Array(0)) }),
        GrpcStatus.Unauthenticated,
      ],
      [
        "a first message that is not a connection message",
        (c) =>
          c.connEstablish({
            mutate: (_conn, msg) => {
              msg.clearConn();
              msg.setEmpty(new fabric.gossip.Empty());
            },
          }),
        GrpcStatus.InvalidArgument,
      ],
    ];
    if (tls) {
      refusals.push([
        "a TLS cert hash with an extra byte",
        (c) => c.connEstablish({ tlsCertHash: Uint8Array.from([...c.tlsCertHash, 0]) }),
        GrpcStatus.Unauthenticated,
      ]);
    }

    for (const [what, build, status] of refusals) {
      it(`refuses ${what}: nothing delivered, counted, stream ends with gRPC status ${status}`, async () => {
        const r = await attempt(client, build(client));
        assert.equal(r.delivered.length, 0);
        assert.equal(statusOf(r.status), status);
        assert.equal(r.failures, 1);
      });
    }

    it("cuts a client that sends its handshake after connTimeout (DEADLINE_EXCEEDED)", async () => {
      const r = await attempt(client, "late");
      assert.equal(r.delivered.length, 0);
      assert.equal(statusOf(r.status), GrpcStatus.DeadlineExceeded);
    });

    it("refuses identities from an untrusted CA, expired identities, and a wrong MSP ID", async () => {
      const rogueCa = createCa({ commonName: "rogue", organization: "Org1MSP" });
      const rogue = issueCertificate(rogueCa, { commonName: "rogue", organization: "Org1MSP" });
      const expired = issueCertificate(caFor("Org1MSP"), {
        commonName: "old",
        organization: "Org1MSP",
        notBefore: new Date(Date.now() - 10 * 86_400_000),
        notAfter: new Date(Date.now() - 86_400_000),
      });
      const good = createPeerMaterial({ mspId: "Org1MSP", ca: caFor("Org1MSP") });
      const variants = [
        { mspId: "Org1MSP", cert: rogue.certPem, key: rogue.keyPem },
        { mspId: "Org1MSP", cert: expired.certPem, key: expired.keyPem },
        { mspId: "Org2MSP", cert: good.identity.certPem, key: good.identity.keyPem },
      ];
      for (const v of variants) {
        const p = await ForeignPeer.start({
          mspId: v.mspId,
          identityCert: v.cert,
          identityKey: v.key,
          tls: tls ? { cert: good.tlsClient.certPem, key: good.tlsClient.keyPem, ca: [caFor("Org1MSP").certPem] } : undefined,
          trustedRoots: { Org1MSP: [caFor("Org1MSP").certPem] },
        });
        extra.push(p);
        const r = await attempt(p, p.connEstablish({ tlsCertHash: p.tlsCertHash }));
        assert.equal(r.delivered.length, 0, v.cert.slice(30, 60));
        assert.equal(statusOf(r.status), GrpcStatus.Unauthenticated);
      }
    });

    if (tls) {
      it("drops a TLS client without a certificate before sending it anything", async () => {
        const r = await attempt(client, client.connEstablish({ tlsCertHash: client.tlsCertHash }), { withClientCert: false });
        assert.equal(r.delivered.length, 0);
        assert.equal(r.raw.received.length, 0, "the server sent no handshake message");
        assert.equal(statusOf(r.status), GrpcStatus.Unauthenticated);
      });

      it("refuses a handshake replayed from another peer (its TLS cert hash is not this connection's)", async () => {
        const victim = createPeerMaterial({ mspId: "Org1MSP", ca: caFor("Org1MSP"), commonName: "victim" });
        const v = await ForeignPeer.start({
          mspId: "Org1MSP",
          identityCert: victim.identity.certPem,
          identityKey: victim.identity.keyPem,
          tls: { cert: victim.tlsClient.certPem, key: victim.tlsClient.keyPem, ca: [caFor("Org1MSP").certPem] },
          trustedRoots: { Org1MSP: [caFor("Org1MSP").certPem] },
        });
        extra.push(v);
        // The attacker (client, with its own TLS certificate) replays the victim's signed handshake.
        const r = await attempt(client, v.connEstablish({ tlsCertHash: v.tlsCertHash }));
        assert.equal(r.delivered.length, 0);
        assert.equal(statusOf(r.status), GrpcStatus.Unauthenticated);
      });
    }
  });
}
