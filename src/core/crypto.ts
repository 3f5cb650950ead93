import type { PeerIdentity, PkiId } from "./identity.js";

/**
 * What checking the signatures of one validated identity needs (its public
 * key), made by {@link CryptoService.verifierOf} for a caller that keeps the
 * identity anyway: membership's identity mapper keeps one per known peer.
 */
export interface IdentityVerifier {
  /** {@link CryptoService.verify} for the identity it was made for. Throws `BadSignature`. */
  verify(signature: Uint8Array, data: Uint8Array): void;
  /** {@link CryptoService.expiresAt} of that identity. */
  readonly expiresAt: Date | undefined;
}

/**
 * The cryptography a Comm relies on: Fabric's `MessageCryptoService` plus
 * `SecurityAdvisor`, for one local identity. Implementations throw a
 * {@link GossipError} (`InvalidIdentity`, `BadSignature`) to refuse.
 *
 * The default implementation, {@link X509CryptoService}, is wire-compatible
 * with real Fabric peers.
 */
export interface CryptoService {
  /** Our serialized identity, sent in every handshake. */
  readonly identity: PeerIdentity;
  /** Signs `data` with our identity's key (ECDSA/SHA-256, DER, low-S for X.509). */
  sign(data: Uint8Array): Uint8Array;
  /**
   * Verifies that `signature` over `data` was made by `identity`.
   * Throws `BadSignature` when it was not.
   */
  verify(identity: PeerIdentity, signature: Uint8Array, data: Uint8Array): void;
  /** The PKI-ID of `identity`. Throws `InvalidIdentity` when it cannot be parsed. */
  pkiIdOf(identity: PeerIdentity): PkiId;
  /**
   * Checks that `identity` is well formed, issued by a trusted CA of the MSP it
   * names, and not expired. Throws `InvalidIdentity` otherwise.
   */
  validateIdentity(identity: PeerIdentity): void;
  /** The organization of `identity` (its MSP ID for X.509 identities). */
  organizationOf(identity: PeerIdentity): string;
  /** When `identity` stops being valid (certificate NotAfter), or undefined when it does not expire. */
  expiresAt(identity: PeerIdentity): Date | undefined;
  /**
   * Optional. Validates `identity` as {@link validateIdentity} does and
   * returns its verifier, for a caller that keeps it beside the identity,
   * so that the service need not cache what verification needs for every
   * identity a peer knows. Throws `InvalidIdentity`. The verifier never
   * checks validity again: whoever keeps it must stop using it after its
   * `expiresAt`. Without this method, callers verify with {@link verify}.
   */
  verifierOf?(identity: PeerIdentity): IdentityVerifier;
}

/**
 * Validates `identity` as `crypto.validateIdentity` does, and returns its
 * verifier when `crypto` makes them ({@link CryptoService.verifierOf}),
 * else undefined: for those who keep what they validate (membership's
 * identity mapper and identity pull). Throws what the crypto throws.
 */
export function validatedVerifier(crypto: CryptoService, identity: PeerIdentity): IdentityVerifier | undefined {
  if (crypto.verifierOf !== undefined) return crypto.verifierOf(identity);
  crypto.validateIdentity(identity);
  return undefined;
}
