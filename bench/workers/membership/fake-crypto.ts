/**
 * BENCHMARK STAND-IN, NOT SECURE: a cheap CryptoService so that W9 can
 * simulate thousands of membership peers in one process. Identity = a
 * serialized msp.SerializedIdentity{mspid, 16 random bytes}; signature =
 * HMAC-SHA256 of the data keyed by a secret derived from the identity
 * (SHA-256 of a fixed label and the identity), so a message signed under one
 * identity never verifies under another. Anyone who knows an identity can
 * sign for it. W9 also runs 100 peers with the real X509CryptoService
 * (ECDSA P-256) so that the share of real cryptography is visible.
 */
import { createHash, createHmac, randomBytes } from "node:crypto";
import {
  bytesEqual,
  type CryptoService,
  ErrorCode,
  GossipError,
  type PeerIdentity,
  type PkiId,
  parseIdentity,
  pkiIdOfIdentity,
  serializeIdentity,
} from "../../../src/index.js";

const keys = new Map<string, Buffer>();

function keyOf(identity: PeerIdentity): Buffer {
  const id = Buffer.from(identity.buffer, identity.byteOffset, identity.byteLength);
  const k = id.toString("latin1");
  let key = keys.get(k);
  if (key === undefined) {
    key = createHash("sha256").update("gossip-connect bench stand-in").update(id).digest();
    keys.set(k, key);
  }
  return key;
}

function mac(identity: PeerIdentity, data: Uint8Array): Uint8Array {
  return new Uint8Array(createHmac("sha256", keyOf(identity)).update(data).digest());
}

/** The stand-in crypto of one simulated peer. */
export class BenchFakeCrypto implements CryptoService {
  readonly identity: PeerIdentity;
  readonly pkiId: PkiId;

  constructor(readonly mspId: string) {
    this.identity = serializeIdentity(mspId, randomBytes(16));
    this.pkiId = pkiIdOfIdentity(this.identity);
  }

  sign(data: Uint8Array): Uint8Array {
    return mac(this.identity, data);
  }

  verify(identity: PeerIdentity, signature: Uint8Array, data: Uint8Array): void {
    if (signature.length === 0 || !bytesEqual(mac(identity, data), signature)) {
      throw new GossipError(ErrorCode.BadSignature, "signature does not verify");
    }
  }

  pkiIdOf(identity: PeerIdentity): PkiId {
    return pkiIdOfIdentity(identity);
  }

  validateIdentity(identity: PeerIdentity): void {
    parseIdentity(identity);
  }

  organizationOf(identity: PeerIdentity): string {
    return parseIdentity(identity).mspId;
  }

  expiresAt(): Date | undefined {
    return undefined;
  }
}
