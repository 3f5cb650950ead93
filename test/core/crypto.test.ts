// Identity and crypto, as real Fabric peers do them.
import assert from "node:assert/strict";
import { createHash, verify as nodeVerify, X509Certificate } from "node:crypto";
import { describe, it } from "node:test";
import { fromBinary } from "@bufbuild/protobuf";
import { curveOrders, encodeDerSignature, isLowS, parseDerSignature } from "../../src/core/ecdsa.js";
import { ErrorCode, GossipError } from "../../src/core/errors.js";
import { pkiIdHex, pkiIdOfIdentity } from "../../src/core/identity.js";
import { X509CryptoService } from "../../src/core/x509-crypto.js";
import { SerializedIdentitySchema } from "../../src/gen/msp/identities_pb.js";
import { createCa, createPeerMaterial, issueCertificate } from "../../src/pki/certificates.js";

const order = curveOrders.prime256v1 as bigint;
const org1 = createCa({ commonName: "ca.org1", organization: "Org1MSP" });
const org2 = createCa({ commonName: "ca.org2", organization: "Org2MSP" });
const trustedRoots = { Org1MSP: [org1.certPem], Org2MSP: [org2.certPem] };

function service(mspId: string, cert: string, key: string) {
  return new X509CryptoService({ mspId, certificate: cert, privateKey: key, trustedRoots });
}

const m1 = createPeerMaterial({ mspId: "Org1MSP", ca: org1 });
const m2 = createPeerMaterial({ mspId: "Org2MSP", ca: org2 });
const c1 = service("Org1MSP", m1.identity.certPem, m1.identity.keyPem);
const c2 = service("Org2MSP", m2.identity.certPem, m2.identity.keyPem);
const isCode = (code: ErrorCode) => (e: unknown) => e instanceof GossipError && e.code === code;

describe("X.509 identities (Fabric's MSP rules)", () => {
  it("identity = SerializedIdentity{mspid, PEM}, PKI-ID = SHA-256(mspid ‖ id_bytes)", () => {
    const sid = fromBinary(SerializedIdentitySchema, c1.identity);
    assert.equal(sid.mspid, "Org1MSP");
    assert.equal(new TextDecoder().decode(sid.idBytes), new X509Certificate(m1.identity.certPem).toString());
    const expected = createHash("sha256").update("Org1MSP").update(sid.idBytes).digest("hex");
    assert.equal(pkiIdHex(c1.pkiId), expected);
    assert.equal(pkiIdHex(pkiIdOfIdentity(c1.identity)), expected);
  });

  it("signatures are DER, low-S, and verify across organizations", () => {
    const data = new TextEncoder().encode("payload bytes");
    for (let i = 0; i < 200; i++) {
      const sig = c1.sign(data);
      assert.ok(isLowS(sig, order), "every signature is low-S");
      c2.verify(c1.identity, sig, data);
    }
  });

  it("verify rejects the high-S twin of a valid signature, a tampered one, and an empty one", () => {
    const data = new TextEncoder().encode("payload bytes");
    const sig = c1.sign(data);
    const { r, s } = parseDerSignature(sig);
    const high = encodeDerSignature(r, order - s);
    // Node itself accepts the high-S twin: the check is ours, as Fabric's.
    const publicKey = new X509Certificate(m1.identity.certPem).publicKey;
    assert.ok(nodeVerify("sha256", data, { key: publicKey, dsaEncoding: "der" }, high));
    assert.throws(() => c2.verify(c1.identity, high, data), isCode(ErrorCode.BadSignature));
    const tampered = Uint8Array.from(sig);
    tampered[tampered.length - 1] = (tampered[tampered.length - 1] ?? 0) ^ 1;
    assert.throws(() => c2.verify(c1.identity, tampered, data), isCode(ErrorCode.BadSignature));
    assert.throws(() => c2.verify(c1.identity, Uint8Array.from([...sig, 0]), data), isCode(ErrorCode.BadSignature));
    assert.throws(() => c2.verify(c1.identity, new Uint8Array(0), data), isCode(ErrorCode.BadSignature));
    assert.throws(() => c2.verify(c1.identity, sig, new TextEncoder().encode("other bytes")), isCode(ErrorCode.BadSignature));
  });

  it("validates identities against the CAs of the MSP they claim, and their validity period", () => {
    c2.validateIdentity(c1.identity);
    const untrusted = createCa({ commonName: "evil", organization: "Org1MSP" });
    const rogue = issueCertificate(untrusted, { commonName: "rogue", organization: "Org1MSP" });
    assert.throws(
      () =>
        service("Org1MSP", rogue.certPem, rogue.keyPem).identity &&
        c2.validateIdentity(service("Org1MSP", rogue.certPem, rogue.keyPem).identity),
      isCode(ErrorCode.InvalidIdentity),
    );
    // A genuine Org1 certificate claimed under MSP ID Org2MSP: wrong MSP.
    const wrongMsp = service("Org2MSP", m1.identity.certPem, m1.identity.keyPem);
    assert.throws(() => c1.validateIdentity(wrongMsp.identity), isCode(ErrorCode.InvalidIdentity));
    const unknownMsp = new X509CryptoService({
      mspId: "Org9MSP",
      certificate: m1.identity.certPem,
      privateKey: m1.identity.keyPem,
      trustedRoots,
    });
    assert.throws(() => c1.validateIdentity(unknownMsp.identity), isCode(ErrorCode.InvalidIdentity));
    const past = new Date(Date.now() - 10 * 86_400_000);
    const expired = issueCertificate(org1, {
      commonName: "old",
      organization: "Org1MSP",
      notBefore: past,
      notAfter: new Date(Date.now() - 86_400_000),
    });
    assert.throws(
      () => c2.validateIdentity(service("Org1MSP", expired.certPem, expired.keyPem).identity),
      isCode(ErrorCode.InvalidIdentity),
    );
    assert.equal(c2.organizationOf(c1.identity), "Org1MSP");
    assert.ok((c2.expiresAt(c1.identity)?.getTime() ?? 0) > Date.now());
  });

  it("an identity's validity period is its certificate's, to the millisecond at both ends, and expiresAt is its notAfter", () => {
    const cert = new X509Certificate(m1.identity.certPem);
    const from = Date.parse(cert.validFrom);
    const to = Date.parse(cert.validTo);
    const at = (now: number) =>
      new X509CryptoService({
        mspId: "Org2MSP",
        certificate: m2.identity.certPem,
        privateKey: m2.identity.keyPem,
        trustedRoots,
        now: () => now,
      });
    assert.equal(at(from).expiresAt(c1.identity)?.getTime(), to);
    at(from).validateIdentity(c1.identity);
    at(to).validateIdentity(c1.identity);
    assert.throws(() => at(from - 1).validateIdentity(c1.identity), isCode(ErrorCode.InvalidIdentity));
    assert.throws(() => at(to + 1).validateIdentity(c1.identity), isCode(ErrorCode.InvalidIdentity));
    // Verification after validation (the cached identity) still checks signatures with its key.
    const data = new TextEncoder().encode("x");
    at(from).verify(c1.identity, c1.sign(data), data);
    assert.throws(() => at(from).verify(c1.identity, c2.sign(data), data), isCode(ErrorCode.BadSignature));
  });

  it("verifierOf validates as validateIdentity does and gives a verifier with the identity's key and expiry", () => {
    const data = new TextEncoder().encode("signed bytes");
    const v = c2.verifierOf(c1.identity);
    v.verify(c1.sign(data), data);
    assert.throws(() => v.verify(c2.sign(data), data), isCode(ErrorCode.BadSignature), "another identity's signature");
    assert.throws(() => v.verify(new Uint8Array(0), data), isCode(ErrorCode.BadSignature), "unsigned");
    const { r, s } = parseDerSignature(c1.sign(data));
    assert.throws(() => v.verify(encodeDerSignature(r, order - s), data), isCode(ErrorCode.BadSignature), "high-S");
    assert.equal(v.expiresAt?.getTime(), c2.expiresAt(c1.identity)?.getTime());
    const wrongMsp = service("Org2MSP", m1.identity.certPem, m1.identity.keyPem);
    assert.throws(() => c1.verifierOf(wrongMsp.identity), isCode(ErrorCode.InvalidIdentity));
    const expired = issueCertificate(org1, {
      commonName: "old",
      organization: "Org1MSP",
      notBefore: new Date(Date.now() - 10 * 86_400_000),
      notAfter: new Date(Date.now() - 86_400_000),
    });
    assert.throws(() => c2.verifierOf(service("Org1MSP", expired.certPem, expired.keyPem).identity), isCode(ErrorCode.InvalidIdentity));
  });

  it("remembers only the identities it checked last, and checks an identity it forgot again, with the same outcome", () => {
    const data = new TextEncoder().encode("x");
    const others = Array.from({ length: 20 }, (_, i) =>
      createPeerMaterial({ mspId: i % 2 === 0 ? "Org1MSP" : "Org2MSP", ca: i % 2 === 0 ? org1 : org2 }),
    ).map((m, i) => service(i % 2 === 0 ? "Org1MSP" : "Org2MSP", m.identity.certPem, m.identity.keyPem));
    const checker = service("Org2MSP", m2.identity.certPem, m2.identity.keyPem);
    checker.verify(c1.identity, c1.sign(data), data);
    for (const o of others) checker.verify(o.identity, o.sign(data), data);
    const known = (checker as unknown as { known: Map<string, unknown> }).known;
    assert.ok(known.size <= 8, `at most 8 remembered, got ${known.size}`);
    // c1 was forgotten: checked again, and still right both ways.
    checker.verify(c1.identity, c1.sign(data), data);
    assert.throws(() => checker.verify(c1.identity, others[0]?.sign(data) ?? new Uint8Array(0), data), isCode(ErrorCode.BadSignature));
    checker.validateIdentity(c1.identity);
  });

  it("refuses a certificate that does not match its key, with a TypeError naming the problem", () => {
    assert.throws(() => service("Org1MSP", m1.identity.certPem, m2.identity.keyPem), /does not match the private key/);
  });
});
