/**
 * Throwaway certificate authorities and certificates for development, tests
 * and the local mesh: ECDSA P-256, signed with SHA-256, in pure Node (no
 * openssl needed). Not a production CA.
 */
import { createHash, createPrivateKey, generateKeyPairSync, type KeyObject, randomBytes, sign, X509Certificate } from "node:crypto";
import { isIP } from "node:net";
import { subjectNameOf } from "../core/certificate-der.js";
import { curveOrders, toLowS } from "../core/ecdsa.js";
import { bitString, bool, explicit, implicitPrimitive, integer, octetString, oid, sequence, set, time, utf8String } from "./der.js";

/** A certificate and its private key, PEM. */
export interface CertifiedKey {
  readonly certPem: string;
  readonly keyPem: string;
}

/** A CA that can issue certificates. */
export interface CertificateAuthority extends CertifiedKey {
  readonly key: KeyObject;
  readonly cert: X509Certificate;
}

/** Subject and validity of a certificate to issue. */
export interface CertificateSpec {
  readonly commonName: string;
  readonly organization?: string;
  readonly organizationalUnit?: string;
  /** What the certificate is for. @default "identity" */
  readonly usage?: "ca" | "identity" | "server" | "client" | "server+client";
  /** Subject alternative names: DNS names and IP addresses, mixed. */
  readonly altNames?: readonly string[];
  /** @default 5 minutes ago (tolerates clock skew) */
  readonly notBefore?: Date;
  /** @default notBefore + validityDays */
  readonly notAfter?: Date;
  /** @default 365 */
  readonly validityDays?: number;
}

const ecdsaWithSha256 = sequence(oid("1.2.840.10045.4.3.2"));

function name(spec: CertificateSpec): Uint8Array {
  const rdn = (type: string, value: string) => set(sequence(oid(type), utf8String(value)));
  const parts: Uint8Array[] = [];
  if (spec.organization !== undefined) parts.push(rdn("2.5.4.10", spec.organization));
  if (spec.organizationalUnit !== undefined) parts.push(rdn("2.5.4.11", spec.organizationalUnit));
  parts.push(rdn("2.5.4.3", spec.commonName));
  return sequence(...parts);
}

function extension(id: string, critical: boolean, value: Uint8Array): Uint8Array {
  return critical ? sequence(oid(id), bool(true), octetString(value)) : sequence(oid(id), octetString(value));
}

function keyId(spki: Uint8Array): Uint8Array {
  return createHash("sha1").update(spki).digest();
}

function ipBytes(ip: string): Uint8Array {
  if (isIP(ip) === 4) return Buffer.from(ip.split(".").map(Number));
  // IPv6: expand "::" and write 8 groups.
  const [head = "", tail = ""] = ip.split("::");
  const h = head ? head.split(":") : [];
  const t = ip.includes("::") ? (tail ? tail.split(":") : []) : [];
  const groups = [...h, ...Array(8 - h.length - t.length).fill("0"), ...t];
  const out = Buffer.alloc(16);
  for (const [i, g] of groups.entries()) out.writeUInt16BE(Number.parseInt(g, 16), i * 2);
  return out;
}

function extensions(spec: CertificateSpec, spki: Uint8Array, issuerSpki: Uint8Array): Uint8Array {
  const usage = spec.usage ?? "identity";
  const list: Uint8Array[] = [];
  if (usage === "ca") {
    list.push(extension("2.5.29.19", true, sequence(bool(true))));
    // digitalSignature, keyCertSign, cRLSign
    list.push(extension("2.5.29.15", true, bitString(Buffer.from([0x86]), 1)));
  } else {
    list.push(extension("2.5.29.19", true, sequence()));
    // digitalSignature
    list.push(extension("2.5.29.15", true, bitString(Buffer.from([0x80]), 7)));
    const eku: Uint8Array[] = [];
    if (usage === "server" || usage === "server+client") eku.push(oid("1.3.6.1.5.5.7.3.1"));
    if (usage === "client" || usage === "server+client") eku.push(oid("1.3.6.1.5.5.7.3.2"));
    if (eku.length > 0) list.push(extension("2.5.29.37", false, sequence(...eku)));
  }
  if (spec.altNames && spec.altNames.length > 0) {
    const names = spec.altNames.map((n) => (isIP(n) ? implicitPrimitive(7, ipBytes(n)) : implicitPrimitive(2, Buffer.from(n, "ascii"))));
    list.push(extension("2.5.29.17", false, sequence(...names)));
  }
  list.push(extension("2.5.29.14", false, octetString(keyId(spki))));
  list.push(extension("2.5.29.35", false, sequence(implicitPrimitive(0, keyId(issuerSpki)))));
  return explicit(3, sequence(...list));
}

function build(spec: CertificateSpec, subjectKey: KeyObject, issuer: { name: Uint8Array; key: KeyObject; spki: Uint8Array }): string {
  const spki = subjectKey.export({ type: "spki", format: "der" });
  const notBefore = spec.notBefore ?? new Date(Date.now() - 5 * 60_000);
  const notAfter = spec.notAfter ?? new Date(notBefore.getTime() + (spec.validityDays ?? 365) * 86_400_000);
  const serial = randomBytes(16);
  serial[0] = (serial[0] ?? 0) & 0x7f;
  const tbs = sequence(
    explicit(0, integer(Buffer.from([2]))),
    integer(serial),
    ecdsaWithSha256,
    issuer.name,
    sequence(time(notBefore), time(notAfter)),
    name(spec),
    spki,
    extensions(spec, spki, issuer.spki),
  );
  // Low-S, as Fabric's MSP re-encodes certificate signatures: with a high-S
  // signature a Fabric peer computes another PKI-ID for the same certificate.
  const signature = toLowS(sign("sha256", tbs, { key: issuer.key, dsaEncoding: "der" }), curveOrderOf(issuer.key));
  const der = sequence(tbs, ecdsaWithSha256, bitString(signature));
  const b64 = Buffer.from(der)
    .toString("base64")
    .replace(/(.{64})/g, "$1\n");
  return `-----BEGIN CERTIFICATE-----\n${b64.trimEnd()}\n-----END CERTIFICATE-----\n`;
}

function newKey(): { privateKey: KeyObject; publicKey: KeyObject } {
  return generateKeyPairSync("ec", { namedCurve: "prime256v1" });
}

/** Creates a self-signed CA (ECDSA P-256). */
export function createCa(
  spec: Omit<CertificateSpec, "usage" | "altNames"> = { commonName: "gossip-connect dev CA" },
): CertificateAuthority {
  const { privateKey, publicKey } = newKey();
  const caSpec: CertificateSpec = { validityDays: 3650, ...spec, usage: "ca" };
  const certPem = build(caSpec, publicKey, {
    name: name(caSpec),
    key: privateKey,
    spki: publicKey.export({ type: "spki", format: "der" }),
  });
  return {
    certPem,
    keyPem: privateKey.export({ type: "pkcs8", format: "pem" }).toString(),
    key: privateKey,
    cert: new X509Certificate(certPem),
  };
}

/** Loads a CA from PEM files' contents. */
export function loadCa(certPem: string, keyPem: string): CertificateAuthority {
  const cert = new X509Certificate(certPem);
  const key = createPrivateKey(keyPem);
  if (!cert.checkPrivateKey(key)) throw new TypeError("the CA certificate does not match its key");
  if (!cert.ca) throw new TypeError("the certificate is not a CA certificate");
  return { certPem, keyPem, key, cert };
}

/** Issues a certificate (with a fresh P-256 key) signed by `ca`. */
export function issueCertificate(ca: CertificateAuthority, spec: CertificateSpec): CertifiedKey {
  const { privateKey, publicKey } = newKey();
  const issuerName = Buffer.from(ca.cert.raw);
  // The issuer Name is the CA's subject, taken verbatim from its certificate.
  const certPem = build(spec, publicKey, {
    name: subjectOf(issuerName),
    key: ca.key,
    spki: ca.cert.publicKey.export({ type: "spki", format: "der" }),
  });
  return { certPem, keyPem: privateKey.export({ type: "pkcs8", format: "pem" }).toString() };
}

/** Extracts the DER subject Name from a DER certificate. */
function subjectOf(der: Buffer): Uint8Array {
  const subject = subjectNameOf(der);
  if (subject === undefined) throw new TypeError("malformed certificate");
  return subject;
}

/** Everything one peer needs: its MSP's CA, its enrollment identity, and TLS server and client pairs. */
export interface PeerMaterial {
  readonly mspId: string;
  readonly ca: CertificateAuthority;
  /** The enrollment certificate and key: the gossip identity. */
  readonly identity: CertifiedKey;
  /** TLS server pair (SANs: the given host names and addresses, localhost, 127.0.0.1, ::1). */
  readonly tlsServer: CertifiedKey;
  /** TLS client pair. */
  readonly tlsClient: CertifiedKey;
}

/**
 * Creates a peer's material: a CA for `mspId` (or `ca`), an enrollment
 * certificate, and TLS server and client certificates from the same CA.
 * Every certificate's subject is `O=<mspId>, CN=<commonName>` (the
 * enrollment certificate adds `OU=peer`); without `commonName` each call
 * makes a CN of its own, so that two identities never share a subject.
 */
export function createPeerMaterial(options: {
  /** The MSP ID (organization): the certificates' O, and the CA's when one is made. */
  mspId: string;
  /** The CA to issue from. @default a new CA, `O=<mspId>, CN=ca.<mspId in lower case>` */
  ca?: CertificateAuthority;
  /**
   * The CN of the enrollment and TLS certificates, e.g. `peer0.org1.example.com`.
   * @default `peer-<8 random hex digits>.<mspId in lower case>`, e.g. `peer-3f9a0c12.org1msp`: a new one per call
   */
  commonName?: string;
  /** DNS names and IP addresses for the TLS certificates, besides localhost, 127.0.0.1 and ::1. */
  altNames?: readonly string[];
  /** @default 365 */
  validityDays?: number;
}): PeerMaterial {
  const mspId = options.mspId;
  const ca = options.ca ?? createCa({ commonName: `ca.${mspId.toLowerCase()}`, organization: mspId });
  // Not one fixed `peer.<msp>`: every identity made with the defaults had the same subject, which tools and logs
  // that name a peer by its subject (the CLI's handshake, a TLS peer's serverSubject) could not tell apart.
  const cn = options.commonName ?? `peer-${randomBytes(4).toString("hex")}.${mspId.toLowerCase()}`;
  const altNames = [...new Set([...(options.altNames ?? []), "localhost", "127.0.0.1", "::1"])];
  const validityDays = options.validityDays ?? 365;
  return {
    mspId,
    ca,
    identity: issueCertificate(ca, { commonName: cn, organization: mspId, organizationalUnit: "peer", usage: "identity", validityDays }),
    tlsServer: issueCertificate(ca, { commonName: cn, organization: mspId, usage: "server+client", altNames, validityDays }),
    tlsClient: issueCertificate(ca, { commonName: cn, organization: mspId, usage: "client", altNames, validityDays }),
  };
}

/** The group order of an EC key's curve (P-256 or P-384), for low-S signatures. */
function curveOrderOf(key: KeyObject): bigint {
  const curve = key.asymmetricKeyDetails?.namedCurve ?? "prime256v1";
  const order = curveOrders[curve];
  if (order === undefined) throw new Error(`unsupported issuer curve ${curve}`);
  return order;
}
