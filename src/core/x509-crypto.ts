import {
  createHash,
  createPrivateKey,
  createPublicKey,
  type KeyObject,
  sign as nodeSign,
  verify as nodeVerify,
  X509Certificate,
} from "node:crypto";
import { namedCurveOf, spkiOf } from "./certificate-der.js";
import type { CryptoService, IdentityVerifier } from "./crypto.js";
import { curveOrders, isLowS, toLowS } from "./ecdsa.js";
import { ErrorCode, GossipError } from "./errors.js";
import { type PeerIdentity, type PkiId, parseIdentity, pkiIdOfIdentity, serializeIdentity } from "./identity.js";

/** Options of {@link X509CryptoService}. */
export interface X509CryptoOptions {
  /** Our MSP ID (organization). */
  mspId: string;
  /** Our enrollment certificate, PEM. */
  certificate: string;
  /** The private key of `certificate`, PEM or a KeyObject (EC P-256 or P-384). */
  privateKey: string | KeyObject;
  /**
   * CA certificates (PEM) trusted to issue identities, per MSP ID: roots and
   * intermediates alike. An identity is valid only when its certificate was
   * issued by one of the CAs listed for the MSP ID it claims. Our own MSP must be listed too, or peers of our own
   * organization are refused.
   */
  trustedRoots: Readonly<Record<string, readonly string[]>>;
  /** Wall clock for certificate validity checks, in ms since the epoch. @default Date.now */
  now?: () => number;
}

/**
 * What verification needs of a checked identity: small on purpose, as a
 * peer keeps one per known peer (its identity mapper does, beside the
 * identity). The validity bounds are whole seconds (X.509 times are), small
 * integers V8 keeps in the object rather than a boxed number each; the
 * methods live on the prototype, not in every instance.
 */
class X509Verifier implements IdentityVerifier {
  constructor(
    private readonly publicKey: KeyObject,
    private readonly order: bigint,
    private readonly notBeforeS: number,
    private readonly notAfterS: number,
  ) {}

  verify(signature: Uint8Array, data: Uint8Array): void {
    if (signature.length === 0) {
      throw new GossipError(ErrorCode.BadSignature, "message is not signed");
    }
    if (!isLowS(signature, this.order)) {
      throw new GossipError(ErrorCode.BadSignature, "invalid S: must be smaller than half the order");
    }
    const ok = nodeVerify("sha256", data, { key: this.publicKey, dsaEncoding: "der" }, signature);
    if (!ok) {
      throw new GossipError(ErrorCode.BadSignature, "signature does not verify");
    }
  }

  get expiresAt(): Date {
    return new Date(this.notAfterS * 1000);
  }

  /** Throws `InvalidIdentity` unless wall-clock `t` (ms) is within the validity period. */
  checkValidAt(t: number): void {
    if (t < this.notBeforeS * 1000) throw invalid("identity certificate is not valid yet");
    if (t > this.notAfterS * 1000) throw invalid("gossipping peer identity expired");
  }
}

/**
 * How many identities used lately are remembered, for callers that pass
 * an identity each time (a handshake validates, verifies and reads the
 * expiry of one identity in a row; membership's mapper then takes its
 * verifier). Few: whoever keeps identities keeps their verifiers
 * ({@link X509CryptoService.verifierOf}: membership's identity mapper, or
 * the comm's identity store without membership), and a cache of every identity a
 * peer knows cost ~140 bytes of heap per known peer (its key string, entry
 * and hash table slot) beside the mapper's own entry. With the mapper's
 * verifiers, W9's 100-peer X.509 world (`bench/tools/w9-once.ts --x509`)
 * parsed 10,394 certificates with 8 or 16 remembered and 10,411 with 4,
 * against 10,200 when every identity was (2026-12-03).
 */
const maxCachedIdentities = 8;

function invalid(message: string, cause?: unknown): GossipError {
  return new GossipError(ErrorCode.InvalidIdentity, message, { cause });
}

function curveOrderOf(key: KeyObject, what: string): bigint {
  const curve = key.asymmetricKeyType === "ec" ? key.asymmetricKeyDetails?.namedCurve : undefined;
  const order = curve === undefined ? undefined : curveOrders[curve];
  if (order === undefined) {
    throw invalid(`${what} must use an EC P-256 or P-384 key, got ${key.asymmetricKeyType ?? "unknown"} ${curve ?? ""}`.trim());
  }
  return order;
}

/** JWK names of the curves in {@link curveOrders}. */
const jwkCurves: Readonly<Record<string, string>> = { "P-256": "prime256v1", "P-384": "secp384r1" };

/**
 * {@link curveOrderOf} for a key kept per known peer: the curve comes from
 * the key's JWK, since reading `asymmetricKeyDetails` caches a details
 * object in the key (~60 bytes per known peer).
 */
function identityCurveOrder(key: KeyObject): bigint {
  const curve = key.asymmetricKeyType === "ec" ? jwkCurves[key.export({ format: "jwk" }).crv ?? ""] : undefined;
  const order = curve === undefined ? undefined : curveOrders[curve];
  if (order === undefined) throw invalid(`an identity must use an EC P-256 or P-384 key, got ${key.asymmetricKeyType ?? "unknown"}`);
  return order;
}

/**
 * Fabric-compatible X.509 identities: identity = serialized
 * `SerializedIdentity{mspid, PEM certificate}`, PKI-ID = SHA-256(mspid ‖ PEM),
 * signatures ECDSA over SHA-256, DER, low-S; organization = MSP ID. An
 * identity is valid when its certificate is within its validity period and
 * was issued by a CA configured for its MSP ID.
 */
export class X509CryptoService implements CryptoService {
  readonly identity: PeerIdentity;
  /** Our PKI-ID. */
  readonly pkiId: PkiId;
  private readonly key: KeyObject;
  private readonly order: bigint;
  private readonly roots: ReadonlyMap<string, readonly X509Certificate[]>;
  private readonly now: () => number;
  /** The identities checked last (at most {@link maxCachedIdentities}), by the SHA-256 of their bytes. */
  private readonly known = new Map<string, X509Verifier>();
  /** The key of our own identity in {@link known}'s terms, and its verifier once checked (kept apart). */
  private readonly selfKey: string;
  private self: X509Verifier | undefined;

  /** Throws `TypeError` when the certificate or key cannot be read or do not match. */
  constructor(options: X509CryptoOptions) {
    this.now = options.now ?? Date.now;
    let cert: X509Certificate;
    try {
      cert = new X509Certificate(options.certificate);
    } catch (e) {
      throw new TypeError(`gossip-connect: cannot read the identity certificate: ${(e as Error).message}`);
    }
    try {
      this.key = typeof options.privateKey === "string" ? createPrivateKey(options.privateKey) : options.privateKey;
    } catch (e) {
      throw new TypeError(`gossip-connect: cannot read the identity private key: ${(e as Error).message}`);
    }
    if (!cert.checkPrivateKey(this.key)) {
      throw new TypeError("gossip-connect: the identity certificate does not match the private key");
    }
    this.order = curveOrderOf(this.key, "the identity key");
    const roots = new Map<string, X509Certificate[]>();
    for (const [mspId, pems] of Object.entries(options.trustedRoots)) {
      roots.set(
        mspId,
        pems.map((pem) => {
          try {
            return new X509Certificate(pem);
          } catch (e) {
            throw new TypeError(`gossip-connect: cannot read a trusted CA certificate of ${mspId}: ${(e as Error).message}`);
          }
        }),
      );
    }
    this.roots = roots;
    this.identity = serializeIdentity(options.mspId, new TextEncoder().encode(cert.toString()));
    this.pkiId = pkiIdOfIdentity(this.identity);
    this.selfKey = createHash("sha256").update(this.identity).digest("binary");
  }

  sign(data: Uint8Array): Uint8Array {
    const der = nodeSign("sha256", data, { key: this.key, dsaEncoding: "der" });
    return toLowS(new Uint8Array(der), this.order);
  }

  verify(identity: PeerIdentity, signature: Uint8Array, data: Uint8Array): void {
    if (signature.length === 0) {
      throw new GossipError(ErrorCode.BadSignature, "message is not signed");
    }
    this.lookup(identity).verify(signature, data);
  }

  pkiIdOf(identity: PeerIdentity): PkiId {
    return pkiIdOfIdentity(identity);
  }

  validateIdentity(identity: PeerIdentity): void {
    this.lookup(identity).checkValidAt(this.now());
  }

  verifierOf(identity: PeerIdentity): IdentityVerifier {
    const known = this.lookup(identity);
    known.checkValidAt(this.now());
    return known;
  }

  organizationOf(identity: PeerIdentity): string {
    return parseIdentity(identity).mspId;
  }

  expiresAt(identity: PeerIdentity): Date | undefined {
    return this.lookup(identity).expiresAt;
  }

  /** Parses and chain-checks an identity, unless it is ours or among the last few used. */
  private lookup(identity: PeerIdentity): X509Verifier {
    // The SHA-256 of the identity's bytes as 32 latin1 characters: a shorter key than the hex PKI-ID
    // (kept per known peer), and no parse of the identity on a hit.
    const key = createHash("sha256").update(identity).digest("binary");
    const cached = this.known.get(key);
    if (cached !== undefined) {
      // Least recently used goes first: a hit moves to the end.
      this.known.delete(key);
      this.known.set(key, cached);
      return cached;
    }
    if (key === this.selfKey && this.self !== undefined) return this.self;
    const { mspId, idBytes } = parseIdentity(identity);
    let cert: X509Certificate;
    try {
      // Parsed where it lies: a copy would come from Node's shared Buffer pool (see encodeEnvelopeFrame).
      cert = new X509Certificate(idBytes);
    } catch (e) {
      throw invalid("identity bytes are not an X.509 certificate", e);
    }
    const roots = this.roots.get(mspId);
    if (roots === undefined || roots.length === 0) {
      throw invalid(`MSP ${JSON.stringify(mspId)} is not trusted`);
    }
    if (!chainsTo(cert, roots)) {
      throw invalid(`identity certificate was not issued by a CA of MSP ${JSON.stringify(mspId)}`);
    }
    const { publicKey, order } = keptKey(cert);
    const known = new X509Verifier(
      publicKey,
      order,
      Math.floor(Date.parse(cert.validFrom) / 1000),
      Math.ceil(Date.parse(cert.validTo) / 1000),
    );
    // Ours stays out of the few remembered: it is checked whenever an alive message claims our PKI-ID.
    if (key === this.selfKey) {
      this.self = known;
      return known;
    }
    if (this.known.size >= maxCachedIdentities) {
      const oldest = this.known.keys().next();
      if (!oldest.done) this.known.delete(oldest.value);
    }
    this.known.set(key, known);
    return known;
  }
}

/**
 * The public key kept for a checked identity, and its curve's order.
 *
 * Imported anew from the certificate's SubjectPublicKeyInfo: the key a
 * parsed certificate hands out keeps ~2 KB more native memory (OpenSSL 3)
 * for as long as it lives, and one is kept per known peer (measured: RSS per
 * kept key after a verify, ~3.2 KB taken from the certificate against ~1.3
 * KB re-imported). The SPKI is read where it lies in the certificate's DER,
 * and the curve from its algorithm: exporting the SPKI from OpenSSL and the
 * key's JWK cost ~190 us a new identity, on each side of a handshake (2026-12-03).
 * The key is checked equal to the certificate's; where the DER is not read
 * so, the export gives the same key.
 */
function keptKey(cert: X509Certificate): { publicKey: KeyObject; order: bigint } {
  const spki = spkiOf(cert.raw);
  const curve = spki === undefined ? undefined : namedCurveOf(spki);
  const order = curve === undefined ? undefined : curveOrders[curve];
  if (spki !== undefined && order !== undefined) {
    let publicKey: KeyObject | undefined;
    try {
      publicKey = createPublicKey({ key: Buffer.from(spki.buffer, spki.byteOffset, spki.length), format: "der", type: "spki" });
    } catch {
      // not read as OpenSSL reads it: the export below
    }
    if (publicKey?.equals(cert.publicKey)) return { publicKey, order };
  }
  const publicKey = createPublicKey({ key: cert.publicKey.export({ type: "spki", format: "der" }), format: "der", type: "spki" });
  return { publicKey, order: identityCurveOrder(publicKey) };
}

/** True when `cert` is signed by one of the CA certificates in `cas`. */
function chainsTo(cert: X509Certificate, cas: readonly X509Certificate[]): boolean {
  return cas.some((ca) => ca.ca && cert.checkIssued(ca) && cert.verify(ca.publicKey));
}
