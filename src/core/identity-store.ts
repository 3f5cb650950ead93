import { type Clock, wholeMs } from "./clock.js";
import type { IdentityVerifier } from "./crypto.js";
import { bytesEqual, type PeerIdentity, type PkiId, pkiIdHex, spansItsBuffer } from "./identity.js";

/**
 * `identity`, or a copy of it when it is a view into a much larger buffer (a
 * transport's read buffer, say), which the entry would otherwise keep alive.
 * A handshake's identity is a view into the ConnEstablish payload the
 * handshake copied out (the identity and about 80 bytes more), which the
 * connection keeps anyway: kept as it is.
 */
export function keepable(identity: PeerIdentity): PeerIdentity {
  return spansItsBuffer(identity) ? identity : new Uint8Array(identity);
}

/**
 * The identities of known peers that a comm's user lends it (see
 * `Comm.useIdentities`): membership's identity mapper.
 */
export interface KnownIdentities {
  /** The identity held for a hex PKI-ID, if any. */
  identityOf(pkiHex: string): PeerIdentity | undefined;
  /**
   * The verifier held for a hex PKI-ID when its identity is `identity` (the
   * same bytes), if any (`CryptoService.verifierOf`): only for an identity
   * validated when it was stored, and only until its `expiresAt` on the wall
   * clock. A handshake presenting that identity is checked with it, without
   * the crypto parsing the identity again.
   */
  verifierOf(pkiHex: string, identity: PeerIdentity): IdentityVerifier | undefined;
}

/**
 * What a keeper of identities lends for `identity` ({@link KnownIdentities.verifierOf}):
 * the `verifier` it holds with `heldIdentity`, when that is `identity` (the
 * same bytes) and its `expiresAt` has not passed at wall-clock
 * `wallMs`; else undefined, and the caller asks the crypto, which validates.
 */
export function lentVerifier(
  verifier: IdentityVerifier | undefined,
  heldIdentity: PeerIdentity,
  identity: PeerIdentity,
  wallMs: number,
): IdentityVerifier | undefined {
  if (verifier === undefined) return undefined;
  const expiresAt = verifier.expiresAt;
  if (expiresAt !== undefined && wallMs > expiresAt.getTime()) return undefined;
  return bytesEqual(heldIdentity, identity) ? verifier : undefined;
}

interface Entry {
  readonly identity: PeerIdentity;
  /**
   * Expiry in whole seconds since the epoch, rounded up (X.509 times are whole
   * seconds), 0 for never: a small integer V8 keeps in the entry, where a
   * time in ms (or Infinity) was a boxed number per entry.
   */
  readonly expiresAtS: number;
  /**
   * Last use, whole ms of the clock ({@link wholeMs}): a fraction (the real
   * clock has them) made the field of every entry a boxed number.
   */
  lastUsed: number;
  /** Its verifier, when the crypto makes them (see {@link KnownIdentities.verifierOf}). */
  readonly verifier: IdentityVerifier | undefined;
}

/** True when `e` has expired at wall-clock `wall` (ms). */
function expired(e: Entry, wall: number): boolean {
  return e.expiresAtS !== 0 && wall > e.expiresAtS * 1000;
}

/**
 * The identities learned from successful handshakes, by PKI-ID (Fabric's
 * identity mapper, reduced to what comm needs: the organization check of an
 * identity switch, and the verifier that checks a known peer's next
 * handshake). Used while no layer above lends its own (`Comm.useIdentities`).
 * Bounded: entries expire with their certificate, are
 * forgotten after `unusedTtlMs` without use, and the least recently used entry
 * makes room when `maxEntries` is reached.
 */
export class IdentityStore implements KnownIdentities {
  private readonly entries = new Map<string, Entry>();

  constructor(
    private readonly clock: Clock,
    private readonly wallNow: () => number = Date.now,
    private readonly maxEntries = 10_000,
    private readonly unusedTtlMs = 60 * 60 * 1000,
  ) {}

  /**
   * Stores (or refreshes) an authenticated identity. It keeps the array
   * already held when that holds the same bytes (every connection of a peer
   * brings its own copy, within its handshake's buffer), else `identity` or
   * a copy of it ({@link keepable}).
   */
  put(pkiId: PkiId, identity: PeerIdentity, expiresAt: Date | undefined, verifier?: IdentityVerifier): void {
    const key = pkiIdHex(pkiId);
    const held = this.entries.get(key)?.identity;
    const kept = held !== undefined && bytesEqual(held, identity) ? held : keepable(identity);
    this.entries.delete(key);
    if (this.entries.size >= this.maxEntries) this.evict();
    this.entries.set(key, {
      identity: kept,
      expiresAtS: expiresAt === undefined ? 0 : Math.max(1, Math.ceil(expiresAt.getTime() / 1000)),
      lastUsed: wholeMs(this.clock.now()),
      verifier,
    });
  }

  identityOf(pkiHex: string): PeerIdentity | undefined {
    return this.entries.get(pkiHex)?.identity;
  }

  verifierOf(pkiHex: string, identity: PeerIdentity): IdentityVerifier | undefined {
    const held = this.entries.get(pkiHex);
    return held === undefined ? undefined : lentVerifier(held.verifier, held.identity, identity, this.wallNow());
  }

  /** The identity stored for `pkiId`, if it is still valid. */
  get(pkiId: PkiId): PeerIdentity | undefined {
    const key = pkiIdHex(pkiId);
    const e = this.entries.get(key);
    if (!e) return undefined;
    const now = wholeMs(this.clock.now());
    if (expired(e, this.wallNow()) || now - e.lastUsed > this.unusedTtlMs) {
      this.entries.delete(key);
      return undefined;
    }
    e.lastUsed = now;
    return e.identity;
  }

  /** Number of stored identities. */
  get size(): number {
    return this.entries.size;
  }

  private evict(): void {
    const now = this.clock.now();
    const wall = this.wallNow();
    for (const [k, e] of this.entries) {
      if (expired(e, wall) || now - e.lastUsed > this.unusedTtlMs) this.entries.delete(k);
    }
    // Map order is insertion order and `put` re-inserts, so the first key is the least recently stored.
    while (this.entries.size >= this.maxEntries) {
      const first = this.entries.keys().next();
      if (first.done) break;
      this.entries.delete(first.value);
    }
  }
}
