/**
 * Fabric's identity mapper: PKI-ID → identity, organization, expiry and last
 * use. Only validated identities whose PKI-ID is the hash of the identity
 * enter; an identity is forgotten when its certificate expires or when it was
 * not used for an hour (our own never).
 */

import { type Span, spanOf, viewOfSpan } from "../core/byte-span.js";
import type { Clock } from "../core/clock.js";
import { wholeMs } from "../core/clock.js";
import { type CryptoService, type IdentityVerifier, validatedVerifier } from "../core/crypto.js";
import { ErrorCode, GossipError } from "../core/errors.js";
import { bytesEqual, type PeerIdentity, type PkiId, pkiIdFromHex } from "../core/identity.js";
import { type KnownIdentities, lentVerifier } from "../core/identity-store.js";
import type { IdentitySource } from "./alive-message.js";
import { hex as pkiIdHex } from "./hex.js";
import { ownedBytes } from "./owned-bytes.js";

/** What is kept per identity (the PKI-ID as the map's key string: bytes again only when asked for). */
interface Stored {
  readonly pkiHex: string;
  /**
   * The buffer the identity lies in, at {@link identitySpan} (core/byte-span.ts):
   * a view of them is made when read, as a kept Uint8Array cost ~96 B of
   * heap per known peer. Replaced by a connection's buffer holding the same
   * bytes (see {@link IdentityMapper.share}): one copy, not two.
   */
  identityBuffer: ArrayBuffer;
  identitySpan: Span;
  readonly organization: string;
  lastAccess: number;
  /**
   * The `clock.now()` after which it is forgotten (its certificate expired),
   * whole ms rounded up, as `expiresHi * 2^30 + expiresLo` ({@link expiryOf}),
   * both 0 for never: two small integers V8 keeps in the object. As one
   * number it passed 2^31 for any certificate valid for more than ~24 days,
   * and V8 then boxed that field in every entry (16 B per known peer with
   * X.509 in W9's simulation).
   */
  expiresHi: number;
  expiresLo: number;
  /**
   * The identity pull's item for it (signed-identity.ts), if it holds one:
   * kept here, where it goes with its identity, rather than in a map of its
   * own (~37 bytes of hash table per known peer).
   */
  pullItem: ArrayBuffer | undefined;
  /**
   * What checking its signatures needs, from `CryptoService.verifierOf` when
   * the crypto has it: kept here, with the identity, so that the crypto need
   * not cache it for every known peer.
   */
  readonly verifier: IdentityVerifier | undefined;
}

/** The identity pull's items as the mapper keeps them (see {@link IdentityMapper.pullItems}). */
export interface PullItems {
  /** The item of a hex PKI-ID, if held. */
  get(pkiHex: string): ArrayBuffer | undefined;
  /** True when an item is held for `pkiHex`. */
  has(pkiHex: string): boolean;
  /** Hex PKI-IDs of the items held. */
  keys(): string[];
}

const expirySplit = 2 ** 30;

/** The identity of `s` (a view made now). */
function identityOf(s: Stored): PeerIdentity {
  return viewOfSpan(s.identityBuffer, s.identitySpan);
}

/**
 * Where to keep `identity`: its own buffer when it spans (nearly) all of it
 * (a connection's, see ownedBytes), else a copy's.
 */
function keep(identity: PeerIdentity): { readonly buffer: ArrayBuffer; readonly span: Span } {
  const owned = ownedBytes(identity);
  const { buffer } = owned;
  if (buffer instanceof ArrayBuffer) return { buffer, span: spanOf(owned.byteOffset, owned.length, buffer.byteLength) };
  const copy = new Uint8Array(owned);
  return { buffer: copy.buffer, span: spanOf(0, copy.length, copy.length) };
}

/** The expiry of `s` in clock ms, 0 for never. */
function expiryOf(s: Stored): number {
  return s.expiresHi * expirySplit + s.expiresLo;
}

/** Longest single timer (Node timers overflow above 2^31 - 1 ms). */
const maxTimerMs = 2 ** 31 - 1;

/** What the mapper needs. */
export interface IdentityMapperInit {
  readonly crypto: CryptoService;
  readonly clock: Clock;
  /** Wall-clock ms since the epoch (certificate expiry is wall-clock time). */
  readonly wallClockMs: () => number;
  /** Called after an identity was removed (expired or unused). */
  readonly onRemoved?: (pkiId: PkiId) => void;
  /** The string membership already holds for a hex PKI-ID (one string per peer across its maps). @default itself */
  readonly nameOf?: (pkiHex: string) => string;
}

/**
 * PKI-ID → identity, validated, with expiry and unused purge. It is also the
 * comm's source of known identities while membership runs
 * (`Comm.useIdentities`): it lends a verifier only for an identity it
 * validated and only until that identity's expiry on the wall clock.
 */
export class IdentityMapper implements IdentitySource, KnownIdentities {
  private readonly byHex = new Map<string, Stored>();
  private readonly organizations = new Map<string, string>();
  private readonly selfHex: string;
  private stopped = false;
  /**
   * One timer for every expiry, armed for the earliest (`expiryAt`): a timer
   * per identity (Fabric's AfterFunc) cost a timer, a closure and its context
   * per known peer.
   */
  private expiryTimer: unknown;
  private expiryAt = Number.POSITIVE_INFINITY;

  constructor(private readonly init: IdentityMapperInit) {
    const self = init.crypto.identity;
    const pkiId = init.crypto.pkiIdOf(self);
    this.selfHex = pkiIdHex(pkiId);
    const kept = keep(self);
    this.byHex.set(this.selfHex, {
      pkiHex: this.selfHex,
      identityBuffer: kept.buffer,
      identitySpan: kept.span,
      organization: init.crypto.organizationOf(self),
      lastAccess: wholeMs(init.clock.now()),
      expiresHi: 0,
      expiresLo: 0,
      pullItem: undefined,
      // None for ours: this entry never expires, so a verifier lent with it would skip our certificate's
      // expiry; ours is verified only when an alive message claims our PKI-ID (the crypto keeps ours).
      verifier: undefined,
    });
  }

  /**
   * Validates `identity` (PKI-ID match, trusted, unexpired) and stores it
   * unless already stored (the same bytes already stored are not validated
   * again). Throws `PkiIdMismatch` or `InvalidIdentity`. `pkiHex`: the
   * PKI-ID's hex as a string the caller holds already (a connection's), kept
   * as the key when membership holds no string for that peer yet.
   * `verifier`: `identity`'s, when the caller had the crypto make it
   * (`crypto.verifierOf(identity)`, which validated it); not checked here,
   * so it must be that one.
   */
  put(pkiId: PkiId, identity: PeerIdentity, pkiHex?: string, verifier?: IdentityVerifier): void {
    if (pkiId.length === 0) throw new GossipError(ErrorCode.MissingPkiId, "PKIID is nil");
    if (identity.length === 0) throw new GossipError(ErrorCode.InvalidIdentity, "identity is nil");
    // The same bytes for a stored PKI-ID were validated when stored (expiry has its timer): every
    // alive message of the publish-cert period carries them, and re-validating each costs CPU.
    const held = this.byHex.get(pkiIdHex(pkiId));
    if (held !== undefined && bytesEqual(identityOf(held), identity)) return;
    const c = this.init.crypto;
    let computed: PkiId;
    let organization: string;
    let expiresAt: Date | undefined;
    let kept: IdentityVerifier | undefined;
    try {
      computed = c.pkiIdOf(identity);
      organization = c.organizationOf(identity);
    } catch (e) {
      throw GossipError.from(e, ErrorCode.InvalidIdentity);
    }
    // Before the chain validation (Fabric validates first; the refusal is the same): a valid certificate
    // under a wrong PKI-ID then costs a hash, not a validation.
    if (!bytesEqual(computed, pkiId)) throw new GossipError(ErrorCode.PkiIdMismatch, "identity doesn't match the computed pkiID");
    try {
      kept = verifier ?? validatedVerifier(c, identity);
      expiresAt = kept !== undefined ? kept.expiresAt : c.expiresAt(identity);
    } catch (e) {
      throw GossipError.from(e, ErrorCode.InvalidIdentity);
    }
    // The connection's string when it names this PKI-ID: the comm keeps it for the connection anyway,
    // and a hex made here was a second 80-byte string per connected peer (~40 B per known peer in W9).
    const made = pkiHex ?? pkiIdHex(pkiId);
    const hex = this.init.nameOf?.(made) ?? made;
    if (this.byHex.has(hex)) return;
    const wall = this.init.wallClockMs();
    if (expiresAt !== undefined && expiresAt.getTime() <= wall) {
      throw new GossipError(ErrorCode.InvalidIdentity, "gossipping peer identity expired");
    }
    const now = this.init.clock.now();
    // 1 ms after the certificate's notAfter, on the clock (as Fabric's AfterFunc of the remaining time),
    // in whole ms (Node's timers are whole ms: a fraction less made no timer fire sooner).
    const at = expiresAt === undefined ? 0 : Math.ceil(Math.max(now, now + expiresAt.getTime() - wall + 1));
    const hi = Math.floor(at / expirySplit);
    const bytes = keep(identity);
    const stored: Stored = {
      pkiHex: hex,
      identityBuffer: bytes.buffer,
      identitySpan: bytes.span,
      organization: this.internOrganization(organization),
      lastAccess: wholeMs(now),
      // `| 0`: a difference of large numbers is a boxed number even when it is a small integer.
      expiresHi: hi | 0,
      expiresLo: (at - hi * expirySplit) | 0,
      pullItem: undefined,
      verifier: kept,
    };
    this.byHex.set(hex, stored);
    if (at !== 0) this.armExpiry(at);
  }

  /**
   * Keeps the buffer of `identity` (a connection's view of its handshake
   * buffer, which the connection keeps anyway) and where the identity lies
   * in it, instead of the stored copy, when both are the same bytes: one
   * copy of an identity, not two (an X.509 identity is ~800 bytes per known
   * peer).
   */
  share(pkiId: PkiId, identity: PeerIdentity): void {
    const held = this.byHex.get(pkiIdHex(pkiId));
    const { buffer } = identity;
    if (
      held !== undefined &&
      held.identityBuffer !== buffer &&
      buffer instanceof ArrayBuffer &&
      ownedBytes(identity) === identity &&
      bytesEqual(identityOf(held), identity)
    ) {
      held.identityBuffer = buffer;
      held.identitySpan = spanOf(identity.byteOffset, identity.length, buffer.byteLength);
    }
  }

  /**
   * The identity pull's items: one per held identity at most, set with
   * {@link setPullItem}, forgotten with the identity. Not refreshing last use.
   */
  readonly pullItems: PullItems = {
    get: (pkiHex) => this.byHex.get(pkiHex)?.pullItem,
    has: (pkiHex) => this.byHex.get(pkiHex)?.pullItem !== undefined,
    keys: () => {
      const out: string[] = [];
      for (const [hex, s] of this.byHex) if (s.pullItem !== undefined) out.push(hex);
      return out;
    },
  };

  /** Keeps `item` as the identity pull's item of `pkiHex`; false (nothing kept) when its identity is not held. */
  setPullItem(pkiHex: string, item: ArrayBuffer): boolean {
    const s = this.byHex.get(pkiHex);
    if (s === undefined) return false;
    s.pullItem = item;
    return true;
  }

  identityOf(pkiHex: string): PeerIdentity | undefined {
    const s = this.byHex.get(pkiHex);
    return s === undefined ? undefined : identityOf(s);
  }

  verifierOf(pkiHex: string, identity: PeerIdentity): IdentityVerifier | undefined {
    // On the wall clock, not by the expiry timer: a late timer, a stepped wall clock or a stopped mapper
    // must not let an expired identity be checked with its verifier.
    const s = this.byHex.get(pkiHex);
    if (s?.verifier === undefined) return undefined;
    return lentVerifier(s.verifier, identityOf(s), identity, this.init.wallClockMs());
  }

  /** The identity of `pkiId` (refreshing its last use), or undefined. */
  get(pkiId: PkiId): PeerIdentity | undefined {
    const s = this.touch(pkiIdHex(pkiId));
    return s === undefined ? undefined : identityOf(s);
  }

  /** The organization of `pkiId` (refreshing its last use), or undefined when its identity is unknown. */
  organizationOf(pkiId: PkiId): string | undefined {
    return this.touch(pkiIdHex(pkiId))?.organization;
  }

  /** {@link organizationOf} for a hex PKI-ID (refreshing its last use). */
  organizationOfHex(pkiHex: string): string | undefined {
    return this.touch(pkiHex)?.organization;
  }

  /** The identity of a hex PKI-ID, without refreshing its last use (the identity pull serving it to others). */
  peekIdentity(pkiHex: string): PeerIdentity | undefined {
    return this.identityOf(pkiHex);
  }

  /** The organization of a hex PKI-ID, without refreshing its last use. */
  peekOrganization(pkiHex: string): string | undefined {
    return this.byHex.get(pkiHex)?.organization;
  }

  /** The string the mapper keys `pkiHex` on, if it holds that identity. */
  keyOf(pkiHex: string): string | undefined {
    return this.byHex.get(pkiHex)?.pkiHex;
  }

  /** True when `pkiHex` is known. */
  has(pkiHex: string): boolean {
    return this.byHex.has(pkiHex);
  }

  /** Identities held (ours included). */
  get size(): number {
    return this.byHex.size;
  }

  /** Every stored PKI-ID and identity. */
  entries(): { pkiId: PkiId; identity: PeerIdentity; organization: string }[] {
    return [...this.byHex].map(([hex, s]) => ({
      pkiId: pkiIdFromHex(hex),
      identity: identityOf(s),
      organization: s.organization,
    }));
  }

  /** Removes identities (not ours) unused for `thresholdMs`. */
  purgeUnused(thresholdMs: number): void {
    const now = this.init.clock.now();
    for (const [hex, s] of [...this.byHex]) {
      if (hex !== this.selfHex && now - s.lastAccess > thresholdMs) this.remove(hex);
    }
  }

  /** Forgets `pkiHex` (never ours) and tells `onRemoved`. */
  remove(pkiHex: string): void {
    if (pkiHex === this.selfHex) return;
    const s = this.byHex.get(pkiHex);
    if (s === undefined) return;
    this.byHex.delete(pkiHex);
    this.init.onRemoved?.(pkiIdFromHex(pkiHex));
  }

  /** Cancels the expiry timer. */
  stop(): void {
    this.stopped = true;
    this.init.clock.clearTimeout(this.expiryTimer);
    this.expiryTimer = undefined;
  }

  /** One string per organization (each parse of an identity makes a new one; few organizations, many identities). */
  private internOrganization(org: string): string {
    const held = this.organizations.get(org);
    if (held !== undefined) return held;
    if (this.organizations.size < 1024) this.organizations.set(org, org);
    return org;
  }

  private touch(hex: string): Stored | undefined {
    const s = this.byHex.get(hex);
    if (s !== undefined) s.lastAccess = wholeMs(this.init.clock.now());
    return s;
  }

  /** Arms the expiry timer for `at` (clock ms) unless it is armed for that or earlier. */
  private armExpiry(at: number): void {
    if (this.stopped || at >= this.expiryAt) return;
    const { clock } = this.init;
    clock.clearTimeout(this.expiryTimer);
    this.expiryAt = at;
    this.expiryTimer = clock.setTimeout(() => this.expireDue(), Math.max(0, Math.min(at - clock.now(), maxTimerMs)));
  }

  /** Forgets the identities whose expiry has come, then arms the timer for the next one. */
  private expireDue(): void {
    this.expiryTimer = undefined;
    this.expiryAt = Number.POSITIVE_INFINITY;
    const now = this.init.clock.now();
    let next = Number.POSITIVE_INFINITY;
    for (const [hex, s] of [...this.byHex]) {
      const at = expiryOf(s);
      if (at === 0) continue;
      if (at <= now) this.remove(hex);
      else if (at < next) next = at;
    }
    if (next !== Number.POSITIVE_INFINITY) this.armExpiry(next);
  }
}
