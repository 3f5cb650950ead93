/**
 * Fabric's gossip discovery on our Comm: the membership view, its alive
 * messages, joining through bootstrap peers, periodic sync, expiration,
 * reconnection, and the identities needed to verify it all.
 *
 * This file is the facade: the public API and the wiring. A received message
 * goes through the {@link Inbox}; timers and loops are the
 * {@link PeriodicWork}; our own alive messages come from {@link SelfAlive};
 * everything sent goes through the {@link CommAdapter}.
 */
import { type Clock, systemClock } from "../core/clock.js";
import type { Comm } from "../core/comm.js";
import type { CryptoService } from "../core/crypto.js";
import { EventStream } from "../core/event-stream.js";
import { type PkiId, pkiIdHex } from "../core/identity.js";
import { type Logger, LogLimiter, silentLogger } from "../core/logger.js";
import { withoutSecret } from "./alive-message.js";
import { AliveStore } from "./alive-store.js";
import { AwaitingIdentity } from "./awaiting-identity.js";
import { CommAdapter, membershipRequest } from "./comm-adapter.js";
import { type MembershipConfig, type MembershipOptions, resolveMembershipConfig } from "./config.js";
import { type ConnectOptions, Connector } from "./connector.js";
import { hex as hexOf } from "./hex.js";
import { IdentityMapper } from "./identity-mapper.js";
import { IdentityPull } from "./identity-pull.js";
import { Inbox, isMembershipMessage } from "./inbox.js";
import { type MembershipMetrics, noopMembershipMetrics } from "./metrics.js";
import { memberString, PeriodicWork } from "./periodic.js";
import { RateBudget } from "./rate-budget.js";
import { Refusals } from "./refusals.js";
import { Replies } from "./replies.js";
import { Scheduler } from "./scheduler.js";
import { SelfAlive } from "./self-alive.js";
import {
  type Known,
  type Member,
  MemberPeer,
  type MembershipEvent,
  type MembershipEventType,
  pkiIdOf,
  timestampOfKnown,
  View,
} from "./view.js";

/** What a {@link Membership} is made of. */
export interface MembershipInit {
  /** The comm it runs on (public API only); its owner stops it. */
  readonly comm: Comm;
  /** The crypto service the comm was built with. */
  readonly crypto: CryptoService;
  readonly options: MembershipOptions;
  /** Time source for every timer. @default systemClock */
  readonly clock?: Clock;
  /** Wall-clock ms since the epoch, for inc_num and certificate expiry. @default Date.now */
  readonly wallClockMs?: () => number;
  /** @default silentLogger */
  readonly logger?: Logger;
  /** @default noopMembershipMetrics */
  readonly metrics?: MembershipMetrics;
  /** Randomness for peer selection and nonces. @default Math.random */
  readonly random?: () => number;
}

/** Counts of a {@link Membership}. */
export interface MembershipStats {
  readonly alive: number;
  readonly dead: number;
  /** Identities held by the identity mapper (ours included). */
  readonly identities: number;
  /** Entries of the alive msgStore (tombstones included). */
  readonly storedAliveMessages: number;
  /** Refused messages by `"<kind>/<code>"`: each is worth a look (replays, forgeries, floods). */
  readonly refused: Readonly<Record<string, number>>;
  /**
   * Duplicates by kind (`alive`, `membership_response`): alive messages no
   * newer than what we held, the normal cost of epidemic gossip; not refusals.
   */
  readonly duplicates: Readonly<Record<string, number>>;
}

const eventCapacity = 1024;

/**
 * The channel-independent membership view of a peer, kept as Fabric's
 * discovery keeps it. Starts at construction; {@link Membership.stop} stops
 * it (the comm keeps running).
 */
export class Membership {
  /** Membership changes; each `for await` is a subscriber (bounded, drops the oldest). */
  readonly events: AsyncIterable<MembershipEvent>;
  private readonly eventStream: EventStream<MembershipEvent>;
  /** The effective configuration. */
  readonly config: MembershipConfig;

  private readonly comm: Comm;
  private readonly clock: Clock;
  private readonly log: Logger;
  private readonly metrics: MembershipMetrics;
  private readonly selfPkiId: PkiId;
  private readonly selfHex: string;
  private readonly selfOrg: string;
  private readonly selfAlive: SelfAlive;
  private readonly mapper: IdentityMapper;
  private readonly view: View;
  private readonly store: AliveStore;
  private readonly awaiting: AwaitingIdentity;
  private readonly adapter: CommAdapter;
  private readonly pull: IdentityPull;
  private readonly connector: Connector;
  /** Bootstrap (and connect()) endpoints: members there are never removed. */
  private readonly protectedEndpoints: Set<string>;
  private readonly refusals: Refusals;
  private readonly scheduler: Scheduler;
  private readonly limiter: LogLimiter;
  private stopped: Promise<void> | undefined;

  constructor(init: MembershipInit) {
    const config = resolveMembershipConfig(init.options);
    const { comm, crypto } = init;
    const clock = init.clock ?? systemClock;
    const wall = init.wallClockMs ?? Date.now;
    const log = (init.logger ?? silentLogger).child({ component: "gossip.discovery" });
    const metrics = init.metrics ?? noopMembershipMetrics;
    const random = init.random ?? Math.random;
    const limiter = new LogLimiter(() => clock.now());
    this.limiter = limiter;
    const scheduler = new Scheduler(clock, log);
    const refusals = new Refusals(metrics, log, limiter);
    const selfPkiId = crypto.pkiIdOf(crypto.identity);
    const selfHex = pkiIdHex(selfPkiId);
    const selfOrg = crypto.organizationOf(crypto.identity);
    const self = new SelfAlive({ crypto, clock, config, wallClockMs: wall, pkiId: selfPkiId });
    const protectedEndpoints = new Set(config.bootstrapPeers);
    // One string per peer for the hex PKI-ID every map of membership keys on (each parse makes a new one).
    const nameOf = (hex: string) => view.keyOf(hex) ?? mapper.keyOf(hex) ?? hex;
    const mapper = new IdentityMapper({
      crypto,
      clock,
      wallClockMs: wall,
      nameOf,
      onRemoved: (pkiId) => {
        comm.closeConn({ pkiId, endpoint: "" });
      },
    });
    const view: View = new View(selfHex, (type, k) => this.changed(type, k), nameOf);
    const store = new AliveStore(config.aliveExpirationTimeoutMs * config.msgExpirationFactor);
    const awaiting = new AwaitingIdentity(config.maxMembershipResponseEntries, config.aliveExpirationTimeoutMs);
    const budget = new RateBudget(config.maxVerificationsPerPeerPerSecond);
    const replies = new Replies();
    const adapter = new CommAdapter({ comm, clock, config, mapper, view, metrics, random, selfOrg });
    const pull = new IdentityPull({
      comm,
      crypto,
      mapper,
      clock,
      config,
      random,
      selfOrg,
      // Every alive member, of which a round picks pullPeerNum: their PKI-IDs' bytes are made for those only.
      targets: () => view.alive().map((k) => MemberPeer.of(k)),
      externalEndpointOf: (hex) => (hex === selfHex ? self.endpoint : view.get(hex)?.endpoint),
      refused: (error, rm) => refusals.refuse("identity", error, rm.connection.pkiIdHex),
      reply: (rm, message) => replies.send(rm, message),
      afford: (sender, n) => budget.take(sender, clock.now(), n),
      sent: () => metrics.sent("identity_pull"),
      learned: (hexes) => inbox.identitiesLearned(hexes),
    });
    const connector = new Connector({
      comm,
      crypto,
      clock,
      config,
      selfOrg,
      random,
      log,
      limiter,
      signal: scheduler.signal,
      buildRequest: (nonce, sameOrg) => membershipRequest(sameOrg ? self.sign() : withoutSecret(self.sign()), nonce),
      externalEndpoint: () => self.endpoint,
      requested: (pkiId) => adapter.markRequested(pkiIdHex(pkiId)),
    });
    const running = () => this.stopped === undefined;
    // Literals, not `{ ...parts, more }`: a spread's object got a hidden class (map and descriptors) of its
    // own in every Membership (~1.3 KB of heap per peer for the two).
    const inbox = new Inbox({
      comm,
      crypto,
      clock,
      config,
      log,
      limiter,
      metrics,
      selfHex,
      selfOrg,
      self,
      mapper,
      view,
      store,
      budget,
      adapter,
      connector,
      pull,
      refusals,
      replies,
      awaiting,
      running,
    });
    const periodic = new PeriodicWork({
      comm,
      clock,
      config,
      log,
      random,
      scheduler,
      selfOrg,
      self,
      mapper,
      view,
      store,
      adapter,
      awaiting,
      budget,
      protectedEndpoints,
    });

    this.config = config;
    this.comm = comm;
    this.clock = clock;
    this.log = log;
    this.metrics = metrics;
    this.selfPkiId = selfPkiId;
    this.selfHex = selfHex;
    this.selfOrg = selfOrg;
    this.selfAlive = self;
    this.mapper = mapper;
    this.view = view;
    this.store = store;
    this.awaiting = awaiting;
    this.adapter = adapter;
    this.pull = pull;
    this.connector = connector;
    this.protectedEndpoints = protectedEndpoints;
    this.refusals = refusals;
    this.scheduler = scheduler;
    this.eventStream = new EventStream(eventCapacity, () => log.debug({}, "membership event subscriber fell behind; oldest event dropped"));
    this.events = this.eventStream;

    if (self.endpoint === "") log.warn({}, "External endpoint is empty, peer will not be accessible outside of its organization");
    scheduler.consume(
      comm.accept(isMembershipMessage, (env, from) => inbox.screen(env, from)),
      (rm) => inbox.handle(rm),
    );
    // Listeners, not loops: a parked `for await` reader cost ~1.9 KB of heap per stream and peer.
    scheduler.listen(comm.presumedDead, (e) => {
      if (e.pkiId.length > 0) periodic.expire(pkiIdHex(e.pkiId), "presumed dead");
    });
    scheduler.listen(comm.identitySwitch, (e) => {
      const hex = pkiIdHex(e.oldPkiId);
      if (view.get(hex) !== undefined) log.debug({ pkiId: hex }, `Purging ${hex} from membership`);
      view.remove(hex);
    });
    scheduler.listen(comm.connectionEvents, (e) => {
      if (e.type === "connected") inbox.learnIdentity(e.connection, true);
    });
    // Peers that dial us are keyed in the comm on our string for them: one 80-byte string per known
    // peer, not two (~40 B per known peer in W9's simulation, where half the connections are inbound).
    comm.useHexNames((hex) => view.keyOf(hex) ?? mapper.keyOf(hex));
    // The comm asks our mapper for known identities rather than keeping its own copy (one mapper, as Fabric's
    // comm and discovery share): the mapper learns every connected peer's identity from `connected`.
    comm.useIdentities(mapper);
    periodic.start();
    for (const ep of config.bootstrapPeers) connector.connect(ep);
  }

  // --- public API ------------------------------------------------------------

  /** Ourselves, as others see us (state alive). */
  get self(): Member {
    return {
      pkiId: this.selfPkiId,
      pkiIdHex: this.selfHex,
      endpoint: this.selfAlive.endpoint,
      internalEndpoint: this.config.internalEndpoint,
      metadata: this.selfAlive.metadata,
      organization: this.selfOrg,
      timestamp: this.selfAlive.timestamp,
      lastHeardMs: this.clock.now(),
      state: "alive",
    };
  }

  /** Alive members (ourselves excluded); empty after stop. */
  alive(): Member[] {
    return this.view.alive().map((k) => this.toMember(k));
  }

  /** Dead members. */
  dead(): Member[] {
    return this.view.dead().map((k) => this.toMember(k));
  }

  /** A member by PKI-ID (ourselves included), alive or dead. */
  lookup(pkiId: PkiId): Member | undefined {
    const hex = hexOf(pkiId);
    if (hex === this.selfHex) return this.self;
    const k = this.view.get(hex);
    return k === undefined ? undefined : this.toMember(k);
  }

  /** Changes our metadata; it rides on our next alive message. */
  updateMetadata(metadata: Uint8Array): void {
    this.selfAlive.metadata = metadata.slice();
  }

  /** Changes our external endpoint; it rides on our next alive message. */
  updateEndpoint(externalEndpoint: string): void {
    this.selfAlive.endpoint = externalEndpoint;
  }

  /**
   * Joins through `endpoint` at runtime: as a bootstrap entry does (a peer of
   * our organization), or, with `anchor`, as Fabric connects to a channel's
   * anchor peer (any organization; no internal endpoint disclosed to another).
   * Pass the anchor's `organization` (the MSP ID the channel configuration
   * names for it) to decide as Fabric does before any dial: another
   * organization's anchor is skipped when we have no external endpoint, and
   * one claimed to be of ours that is not is refused (and retried). Without
   * it, the handshake tells the organization. Members at that endpoint are
   * never removed from the view.
   */
  connect(endpoint: string, options: ConnectOptions = {}): void {
    if (this.stopped) return;
    this.protectedEndpoints.add(endpoint);
    this.connector.connect(endpoint, options);
  }

  /** Counts. */
  stats(): MembershipStats {
    return {
      alive: this.view.aliveCount,
      dead: this.view.dead().length,
      identities: this.mapper.size,
      storedAliveMessages: this.store.size,
      refused: this.refusals.snapshot(),
      duplicates: this.refusals.duplicateSnapshot(),
    };
  }

  /** Stops every loop and timer; idempotent. Sends no goodbye: peers notice by expiration. The comm keeps running. */
  stop(): Promise<void> {
    this.stopped ??= this.doStop();
    return this.stopped;
  }

  // --- plumbing ----------------------------------------------------------------

  private changed(type: MembershipEventType, k: Known): void {
    const member = this.toMember(k);
    this.metrics.change(type);
    this.metrics.totalPeersKnown(this.view.aliveCount);
    const fields = { pkiId: k.pkiHex, endpoint: k.endpoint, internalEndpoint: k.internalEndpoint, change: type };
    if (type === "removed")
      this.log.info(fields, `Removing member: Endpoint: ${k.endpoint}, InternalEndpoint: ${k.internalEndpoint}, PKIID: ${k.pkiHex}`);
    // A member may change its endpoints with every alive message it signs: its updates are logged at most
    // once per 10 s (with the count left out), joins, deaths, revivals and removals each time.
    else if (type === "updated")
      this.limiter.maybe(`updated ${k.pkiHex}`, (suppressed) =>
        this.log.info({ ...fields, suppressed }, `Member ${type}: ${memberString(k)}`),
      );
    else this.log.info(fields, `Member ${type}: ${memberString(k)}`);
    this.eventStream.emit({ type, member });
  }

  private toMember(k: Known): Member {
    return {
      pkiId: pkiIdOf(k),
      pkiIdHex: k.pkiHex,
      endpoint: k.endpoint,
      internalEndpoint: k.internalEndpoint,
      metadata: k.metadata,
      organization: this.mapper.peekOrganization(k.pkiHex),
      timestamp: timestampOfKnown(k),
      lastHeardMs: k.lastHeardMs,
      state: this.view.stateOf(k),
    };
  }

  private async doStop(): Promise<void> {
    this.comm.useHexNames(undefined);
    this.comm.useIdentities(undefined);
    const loops = this.scheduler.stop();
    this.adapter.stop();
    this.pull.stop();
    this.mapper.stop();
    await loops;
    this.view.clear();
    this.store.clear();
    this.awaiting.clear();
    this.eventStream.end();
  }
}
