/**
 * A fast fake CryptoService for large membership simulations: identity =
 * serialized msp.SerializedIdentity{mspid, random bytes}; signature =
 * HMAC-SHA256 of the data under a key derived from the identity (so a
 * message signed by one identity never verifies under another);
 * PKI-ID = core's pkiIdOfIdentity. Not secure: anyone who knows an identity
 * can sign for it. Real X.509 is tested with X509CryptoService.
 */
import { createHmac, randomBytes } from "node:crypto";
import type { CryptoService } from "../../src/core/crypto.js";
import { ErrorCode, GossipError } from "../../src/core/errors.js";
import {
  bytesEqual,
  type PeerIdentity,
  type PkiId,
  parseIdentity,
  pkiIdHex,
  pkiIdOfIdentity,
  serializeIdentity,
} from "../../src/core/identity.js";

/** Shared trust rules of a simulated network. */
export class FakeTrust {
  /** MSP IDs whose identities validate; empty = every MSP. */
  readonly msps = new Set<string>();
  /** Revoked identities (hex PKI-IDs). */
  readonly revoked = new Set<string>();
  /** Identity expiry (ms since the epoch) by hex PKI-ID. */
  readonly expiry = new Map<string, number>();
}

/** HMAC signature of `data` by `identity`. */
export function fakeSign(identity: PeerIdentity, data: Uint8Array): Uint8Array {
  return new Uint8Array(createHmac("sha256", Buffer.from(identity)).update(data).digest());
}

/** A fake crypto service for one identity. */
export class FakeCrypto implements CryptoService {
  readonly identity: PeerIdentity;
  readonly pkiId: PkiId;

  constructor(
    readonly mspId: string,
    readonly trust: FakeTrust = new FakeTrust(),
    idBytes: Uint8Array = randomBytes(16),
    private readonly wallClockMs: () => number = Date.now,
  ) {
    this.identity = serializeIdentity(mspId, idBytes);
    this.pkiId = pkiIdOfIdentity(this.identity);
  }

  sign(data: Uint8Array): Uint8Array {
    return fakeSign(this.identity, data);
  }

  verify(identity: PeerIdentity, signature: Uint8Array, data: Uint8Array): void {
    if (signature.length === 0 || !bytesEqual(fakeSign(identity, data), signature)) {
      throw new GossipError(ErrorCode.BadSignature, "signature does not verify");
    }
  }

  pkiIdOf(identity: PeerIdentity): PkiId {
    return pkiIdOfIdentity(identity);
  }

  validateIdentity(identity: PeerIdentity): void {
    const { mspId } = parseIdentity(identity);
    if (this.trust.msps.size > 0 && !this.trust.msps.has(mspId))
      throw new GossipError(ErrorCode.InvalidIdentity, `MSP ${mspId} is not trusted`);
    if (this.trust.revoked.size === 0 && this.trust.expiry.size === 0) return;
    const hex = pkiIdHex(pkiIdOfIdentity(identity));
    if (this.trust.revoked.has(hex)) throw new GossipError(ErrorCode.InvalidIdentity, "identity revoked");
    const exp = this.trust.expiry.get(hex);
    if (exp !== undefined && exp <= this.wallClockMs())
      throw new GossipError(ErrorCode.InvalidIdentity, "gossipping peer identity expired");
  }

  organizationOf(identity: PeerIdentity): string {
    return parseIdentity(identity).mspId;
  }

  expiresAt(identity: PeerIdentity): Date | undefined {
    if (this.trust.expiry.size === 0) return undefined;
    const exp = this.trust.expiry.get(pkiIdHex(pkiIdOfIdentity(identity)));
    return exp === undefined ? undefined : new Date(exp);
  }
}
