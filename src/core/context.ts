/**
 * What the parts of a comm (inbound, outbound, acks, routing) share: its
 * configuration and collaborators, and the few reactions every part has in
 * common (presumed dead, a failed handshake, a peer's logger).
 *
 * @private Internal code, not part of the public API.
 */
import type { Clock } from "./clock.js";
import type { CommConfig } from "./config.js";
import type { ConnectionInfo } from "./connection.js";
import type { CryptoService } from "./crypto.js";
import { authenticationCodes, type GossipError } from "./errors.js";
import type { EventStream } from "./event-stream.js";
import type { HandshakeOptions } from "./handshake.js";
import { type PeerIdentity, type PkiId, pkiIdHex, rememberPkiIdHex } from "./identity.js";
import type { IdentityStore, KnownIdentities } from "./identity-store.js";
import type { Logger, LogLimiter } from "./logger.js";
import type { CommMetrics, Direction } from "./metrics.js";
import type { MutableStats } from "./stats.js";

/** A peer was presumed dead: a dial to it failed, or a write to it failed. */
export interface PresumedDeadEvent {
  /** The PKI-ID the sender targeted (empty when it sent by endpoint only). */
  readonly pkiId: PkiId;
  /** The endpoint dialed, or the remote address of the failed connection. */
  readonly endpoint: string;
  /** Why. */
  readonly error: GossipError;
}

/** Collaborators of a {@link CommContext}. */
export interface CommContextInit {
  readonly config: CommConfig;
  readonly crypto: CryptoService;
  readonly clock: Clock;
  readonly log: Logger;
  readonly limiter: LogLimiter;
  readonly metrics: CommMetrics;
  readonly counts: MutableStats;
  readonly identities: IdentityStore;
  readonly presumedDead: EventStream<PresumedDeadEvent>;
}

/** The shared state of one comm. */
export class CommContext {
  readonly config: CommConfig;
  readonly crypto: CryptoService;
  readonly clock: Clock;
  readonly log: Logger;
  readonly limiter: LogLimiter;
  readonly metrics: CommMetrics;
  readonly identities: IdentityStore;
  /** Our PKI-ID. */
  readonly pkiId: PkiId;
  /** The comm user's strings for hex PKI-IDs (see `Comm.useHexNames`). */
  hexNames: ((pkiHex: string) => string | undefined) | undefined;
  /** The comm user's identities of known peers (see `Comm.useIdentities`). */
  userIdentities: KnownIdentities | undefined;
  private readonly counts: MutableStats;
  private readonly presumedDeadEvents: EventStream<PresumedDeadEvent>;
  private stopping_ = false;

  constructor(init: CommContextInit) {
    this.config = init.config;
    this.crypto = init.crypto;
    this.clock = init.clock;
    this.log = init.log;
    this.limiter = init.limiter;
    this.metrics = init.metrics;
    this.counts = init.counts;
    this.identities = init.identities;
    this.presumedDeadEvents = init.presumedDead;
    this.pkiId = this.crypto.pkiIdOf(this.crypto.identity);
    this.learn(this.pkiId, this.crypto.identity);
  }

  /** True once the comm began to stop: nothing new starts. */
  get stopping(): boolean {
    return this.stopping_;
  }

  /** Marks the comm as stopping. */
  stop(): void {
    this.stopping_ = true;
  }

  /**
   * Remembers an identity a handshake proved (for the organization check of
   * an identity switch and the verifier of the peer's next handshake), one
   * per peer across its connections (see {@link IdentityStore.put}); each
   * connection keeps its own within its handshake's buffer, which costs no
   * heap of its own. While the comm's user lends its identities
   * (`userIdentities`), the store takes none: the user keeps every connected
   * peer's (membership's identity mapper does, as Fabric's comm and
   * discovery share one mapper), and a second entry per known peer here cost
   * ~85 bytes of heap each.
   */
  learn(pkiId: PkiId, identity: PeerIdentity): void {
    if (this.userIdentities !== undefined) return;
    // With its verifier when the crypto makes them, so that the next handshake of this peer is checked with
    // it (the crypto remembers only the identities it checked last): the one held for the same bytes, else
    // a new one (the handshake just checked this identity: no parse).
    const { crypto, identities } = this;
    let verifier = identities.verifierOf(pkiIdHex(pkiId), identity);
    if (verifier === undefined && crypto.verifierOf !== undefined) {
      try {
        verifier = crypto.verifierOf(identity);
      } catch {
        // expired since the handshake checked it: stored without one, as before
      }
    }
    identities.put(pkiId, identity, verifier?.expiresAt ?? crypto.expiresAt(identity), verifier);
  }

  /** The identity known for `pkiId`: the comm user's (see {@link learn}), else the store's. */
  knownIdentity(pkiId: PkiId): PeerIdentity | undefined {
    return this.userIdentities?.identityOf(pkiIdHex(pkiId)) ?? this.identities.get(pkiId);
  }

  /**
   * Makes `pkiIdHex(pkiId)` the comm user's string for that hex when it holds
   * one (`hexNames`), so that what the comm keys on it (connection, identity
   * store) is that string: one per peer in the process, not two.
   */
  adoptHexName(pkiId: PkiId): void {
    const names = this.hexNames;
    if (names === undefined) return;
    const held = names(pkiIdHex(pkiId));
    if (held !== undefined) rememberPkiIdHex(pkiId, held);
  }

  /** Handshake options with our identity. */
  handshakeOptions(probe: boolean): HandshakeOptions {
    const { crypto, pkiId, config, clock } = this;
    return { crypto, pkiId, probe, connTimeoutMs: config.connTimeoutMs, clock, known: this.userIdentities ?? this.identities };
  }

  /** Counts, logs (rate-limited) and emits a presumed-dead event; nothing while stopping. */
  presumedDead(pkiId: PkiId, endpoint: string, error: GossipError): void {
    if (this.stopping_) return;
    this.metrics.presumedDead();
    this.limiter.maybe(`dead ${endpoint} ${error.code}`, (suppressed) =>
      this.log.warn({ pkiId: pkiIdHex(pkiId), address: endpoint, code: error.code, err: error.message, suppressed }, "peer presumed dead"),
    );
    this.presumedDeadEvents.emit({ pkiId, endpoint, error });
  }

  /** Counts and logs (rate-limited) a failed handshake. */
  handshakeFailed(direction: Direction, address: string, error: GossipError): void {
    if (authenticationCodes.has(error.code)) this.counts.handshakeFailures++;
    this.metrics.handshake(direction, error.code);
    this.limiter.maybe(`handshake ${direction} ${hostOf(address)} ${error.code}`, (suppressed) =>
      this.log.warn({ direction, address, code: error.code, err: error.message, suppressed }, "handshake failed"),
    );
  }

  /** A logger that names the peer of `info`. */
  peerLog(info: ConnectionInfo): Logger {
    return this.log.child({ pkiId: info.pkiIdHex, address: info.endpoint, direction: info.direction });
  }
}

/** The host part of `host:port` (IPv6 in brackets or bare). */
export function hostOf(address: string): string {
  if (address.startsWith("[")) return address.slice(1, address.indexOf("]"));
  const i = address.lastIndexOf(":");
  return i > 0 && address.indexOf(":") === i ? address.slice(0, i) : address;
}
