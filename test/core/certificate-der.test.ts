// Reading a certificate's SubjectPublicKeyInfo and subject Name from its DER,
// checked against what OpenSSL (Node's X509Certificate) reads from the same bytes.
import assert from "node:assert/strict";
import { generateKeyPairSync, X509Certificate } from "node:crypto";
import { describe, it } from "node:test";
import fc from "fast-check";
import { namedCurveOf, spkiOf, subjectNameOf } from "../../src/core/certificate-der.js";
import { createCa, createPeerMaterial } from "../../src/pki/certificates.js";
import { bitString, integer, oid, sequence, time } from "../../src/pki/der.js";

const ca = createCa({ commonName: "ca.org1.example.com", organization: "Org1MSP" });
const materials = Array.from({ length: 4 }, (_, i) =>
  createPeerMaterial({ mspId: "Org1MSP", ca, commonName: `peer${i}.org1.example.com` }),
);
const certificates = [ca.certPem, ...materials.flatMap((m) => [m.identity.certPem, m.tlsServer.certPem, m.tlsClient.certPem])].map(
  (pem) => new X509Certificate(pem),
);
const spkiExport = (c: X509Certificate) => new Uint8Array(c.publicKey.export({ type: "spki", format: "der" }));

describe("certificate DER fields", () => {
  it("the SPKI read where it lies is byte for byte OpenSSL's export, and its curve is the key's", () => {
    for (const c of certificates) {
      const spki = spkiOf(c.raw);
      assert.ok(spki, c.subject);
      assert.deepEqual(new Uint8Array(spki), spkiExport(c));
      assert.equal(namedCurveOf(spki), c.publicKey.asymmetricKeyDetails?.namedCurve);
    }
  });

  it("the subject Name is the one an issued certificate names as its issuer, and holds its common name", () => {
    const caName = subjectNameOf(certificates[0]?.raw as Buffer);
    assert.ok(caName);
    for (const c of certificates.slice(1)) {
      assert.ok(c.checkIssued(certificates[0] as X509Certificate));
      // The issuer field comes right before the validity, and is the CA's subject verbatim (pki builds it so).
      assert.ok(Buffer.from(c.raw).includes(Buffer.from(caName)));
      const name = subjectNameOf(c.raw);
      assert.ok(name);
      const cn = /CN=([^\n]+)/.exec(c.subject)?.[1] as string;
      assert.ok(Buffer.from(name).includes(Buffer.from(cn)), cn);
      assert.ok(!Buffer.from(name).equals(Buffer.from(caName)));
    }
  });

  it("reads a v1 TBSCertificate (no version field) too", () => {
    const real = certificates[1] as X509Certificate;
    const spki = spkiOf(real.raw) as Uint8Array;
    const subject = subjectNameOf(real.raw) as Uint8Array;
    const alg = sequence(oid("1.2.840.10045.4.3.2"));
    const tbs = sequence(integer(Uint8Array.of(1)), alg, subject, sequence(time(new Date()), time(new Date())), subject, spki);
    const der = sequence(tbs, alg, bitString(Uint8Array.of(0)));
    assert.deepEqual(spkiOf(der), spki);
    assert.deepEqual(subjectNameOf(der), subject);
  });

  it("names P-256 and P-384 and nothing else", () => {
    const spkiOfKey = (k: ReturnType<typeof generateKeyPairSync>["publicKey"]) => new Uint8Array(k.export({ type: "spki", format: "der" }));
    assert.equal(namedCurveOf(spkiOfKey(generateKeyPairSync("ec", { namedCurve: "prime256v1" }).publicKey)), "prime256v1");
    assert.equal(namedCurveOf(spkiOfKey(generateKeyPairSync("ec", { namedCurve: "secp384r1" }).publicKey)), "secp384r1");
    assert.equal(namedCurveOf(spkiOfKey(generateKeyPairSync("ec", { namedCurve: "secp521r1" }).publicKey)), undefined);
    assert.equal(namedCurveOf(spkiOfKey(generateKeyPairSync("ed25519").publicKey)), undefined);
    assert.equal(namedCurveOf(new Uint8Array(0)), undefined);
  });

  it("never throws nor reads past the end: garbage, truncated and mutated certificates", () => {
    const within = (der: Uint8Array, view: Uint8Array | undefined) =>
      view === undefined ||
      (view.buffer === der.buffer &&
        view.byteOffset >= der.byteOffset &&
        view.byteOffset + view.length <= der.byteOffset + der.length &&
        view[0] === 0x30);
    const real = certificates.map((c) => new Uint8Array(c.raw));
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 2048 }), (bytes) => {
        assert.ok(within(bytes, spkiOf(bytes)));
        assert.ok(within(bytes, subjectNameOf(bytes)));
        namedCurveOf(bytes);
      }),
      { numRuns: 2000 },
    );
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: real.length - 1 }),
        fc.nat(),
        fc.integer({ min: 0, max: 255 }),
        fc.nat(),
        (which, at, value, cut) => {
          const der = (real[which] as Uint8Array).slice();
          der[at % der.length] = value;
          const truncated = der.subarray(0, cut % (der.length + 1));
          for (const d of [der, truncated]) {
            const spki = spkiOf(d);
            assert.ok(within(d, spki));
            assert.ok(within(d, subjectNameOf(d)));
            if (spki) namedCurveOf(spki);
          }
        },
      ),
      { numRuns: 3000 },
    );
  });
});
