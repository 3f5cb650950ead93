/**
 * A fast {@link CryptoService} for in-memory tests where X.509 is not the
 * point: identities are `SerializedIdentity{mspid, name}`, PKI-IDs their
 * SHA-256 (as Fabric's), "signatures" a SHA-256 over identity and data. It
 * refuses what the real one refuses (unknown organizations, a signature that
 * is not the signer's) with the same error codes, in microseconds.
 * Use X509CryptoService where authentication itself is under test.
 */
import { createHash } from "node:crypto";
import type { CryptoService } from "../../src/core/crypto.js";
import { ErrorCode, GossipError } from "../../src/core/errors.js";
import { bytesEqual, type PeerIdentity, type PkiId, parseIdentity, pkiIdOfIdentity, serializeIdentity } from "../../src/core/identity.js";

let seq = 0;

function digest(identity: Uint8Array, data: Uint8Array): Uint8Array {
  return new Uint8Array(createHash("sha256").update("test-signature").update(identity).update(data).digest());
}

/** Options of {@link TestCrypto}. */
export interface TestCryptoOptions {
  /** @default "Org1MSP" */
  readonly mspId?: string;
  /** A unique name by default; the same name in the same MSP is the same identity (and PKI-ID). */
  readonly name?: string;
  /** Organizations whose identities are valid. @default [mspId] */
  readonly trusted?: readonly string[];
}

/** See the module comment. */
export class TestCrypto implements CryptoService {
  readonly identity: PeerIdentity;
  readonly pkiId: PkiId;
  readonly mspId: string;
  private readonly trusted: ReadonlySet<string>;

  constructor(o: TestCryptoOptions = {}) {
    this.mspId = o.mspId ?? "Org1MSP";
    this.identity = serializeIdentity(this.mspId, new TextEncoder().encode(o.name ?? `peer-${++seq}`));
    this.pkiId = pkiIdOfIdentity(this.identity);
    this.trusted = new Set(o.trusted ?? [this.mspId]);
  }

  sign(data: Uint8Array): Uint8Array {
    return digest(this.identity, data);
  }

  verify(identity: PeerIdentity, signature: Uint8Array, data: Uint8Array): void {
    if (!bytesEqual(signature, digest(identity, data))) throw new GossipError(ErrorCode.BadSignature, "bad signature");
  }

  pkiIdOf(identity: PeerIdentity): PkiId {
    try {
      return pkiIdOfIdentity(identity);
    } catch (e) {
      throw new GossipError(ErrorCode.InvalidIdentity, "unparsable identity", { cause: e });
    }
  }

  validateIdentity(identity: PeerIdentity): void {
    const org = this.organizationOf(identity);
    if (!this.trusted.has(org)) throw new GossipError(ErrorCode.InvalidIdentity, `organization ${org} is not trusted`);
  }

  organizationOf(identity: PeerIdentity): string {
    try {
      return parseIdentity(identity).mspId;
    } catch (e) {
      throw new GossipError(ErrorCode.InvalidIdentity, "unparsable identity", { cause: e });
    }
  }

  expiresAt(): Date | undefined {
    return undefined;
  }
}
