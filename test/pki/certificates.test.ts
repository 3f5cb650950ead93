// Fabric's MSP re-encodes a certificate whose signature is high-S into low-S
// form before it hashes it into a PKI-ID; a high-S certificate of ours would
// give a Fabric peer another PKI-ID than ours for the same identity (seen
// against real Fabric v2.4.9 peers: about half of our certificates).
import assert from "node:assert/strict";
import { X509Certificate } from "node:crypto";
import { describe, it } from "node:test";
import { curveOrders, isLowS } from "../../src/core/ecdsa.js";
import { createCa, createPeerMaterial } from "../../src/pki/certificates.js";

/** The signature BIT STRING of a DER certificate (its last top-level element). */
function signatureOf(pem: string): Uint8Array {
  const der = new Uint8Array(new X509Certificate(pem).raw);
  const readLen = (at: number): [number, number] => {
    const first = der[at] ?? 0;
    if (first < 0x80) return [first, at + 1];
    let len = 0;
    for (let i = 1; i <= (first & 0x7f); i++) len = len * 256 + (der[at + i] ?? 0);
    return [len, at + 1 + (first & 0x7f)];
  };
  let [, at] = readLen(1); // inside the outer SEQUENCE
  for (let i = 0; i < 2; i++) {
    const [len, body] = readLen(at + 1); // tbsCertificate, then signatureAlgorithm
    at = body + len;
  }
  assert.equal(der[at], 0x03, "a BIT STRING");
  const [len, body] = readLen(at + 1);
  return der.subarray(body + 1, body + len); // skip the unused-bits byte
}

describe("certificates", () => {
  it("every certificate we issue (CA, identity, TLS) has a low-S signature, as Fabric's MSP requires", () => {
    const order = curveOrders.prime256v1 as bigint;
    const ca = createCa({ commonName: "ca.org1", organization: "Org1MSP" });
    assert.ok(isLowS(signatureOf(ca.certPem), order));
    for (let i = 0; i < 12; i++) {
      const m = createPeerMaterial({ mspId: "Org1MSP", ca });
      for (const pem of [m.identity.certPem, m.tlsServer.certPem, m.tlsClient.certPem]) {
        assert.ok(isLowS(signatureOf(pem), order), "high-S signature");
      }
    }
  });

  it("without commonName each material gets its own subject (CN peer-<hex>.<msp>), the same in all three certificates; a given commonName is kept", () => {
    const ca = createCa({ commonName: "ca.org1", organization: "Org1MSP" });
    const cns = Array.from({ length: 8 }, () => {
      const m = createPeerMaterial({ mspId: "Org1MSP", ca });
      const [id, server, client] = [m.identity, m.tlsServer, m.tlsClient].map((k) => new X509Certificate(k.certPem));
      const cn = /CN=(.*)$/m.exec(id?.subject ?? "")?.[1] ?? "";
      assert.match(cn, /^peer-[0-9a-f]{8}\.org1msp$/);
      assert.equal(id?.subject, `O=Org1MSP\nOU=peer\nCN=${cn}`);
      assert.equal(server?.subject, `O=Org1MSP\nCN=${cn}`);
      assert.equal(client?.subject, `O=Org1MSP\nCN=${cn}`);
      return cn;
    });
    assert.equal(new Set(cns).size, cns.length, `subjects shared: ${cns.join(", ")}`);
    const named = createPeerMaterial({ mspId: "Org1MSP", ca, commonName: "peer0.org1.example.com" });
    assert.equal(new X509Certificate(named.identity.certPem).subject, "O=Org1MSP\nOU=peer\nCN=peer0.org1.example.com");
  });
});
