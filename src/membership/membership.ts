/**
 * Fabric's gossip discovery on our Comm: the membership view, its alive
 * messages, joining through bootstrap peers, periodic sync, expiration,
 * reconnection, and the identities needed to verify it all.
 *
 * A message goes one way: {@link Membership.onMessage} checks its tag, then
 * alive messages go through the msgStore (freshness before cryptography),
 * validation and the view, then the emitter; requests are answered under the
 * disclosure policy; responses feed the view; identity pull messages go to
 * the {@link IdentityPull}.
 */
import { create } from "@bufbuild/protobuf";
import { type Clock, systemClock } from "../core/clock.js";
import type { Comm } from "../core/comm.js";
import type { CryptoService } from "../core/crypto.js";
import { ErrorCode, GossipError } from "../core/errors.js";
import { EventStream } from "../core/event-stream.js";
import { type PkiId, pkiIdHex } from "../core/identity.js";
import { LogLimiter, type Logger, silentLogger } from "../core/logger.js";
import type { ReceivedMessage } from "../core/received-message.js";
import { type Envelope, GossipMessage_Tag, GossipMessageSchema, MembershipResponseSchema, PullMsgType } from "../gen/gossip/message_pb.js";
import { aliveMessage, type ParsedAlive, parseAlive, signAlive, validateAlive, withoutSecret } from "./alive-message.js";
import { AliveStore } from "./alive-store.js";
import { type MembershipConfig, type MembershipOptions, resolveMembershipConfig } from "./config.js";
import { CommAdapter, membershipRequest } from "./comm-adapter.js";
import { Connector } from "./connector.js";
import { disclosurePolicy } from "./disclosure.js";
import { IdentityMapper } from "./identity-mapper.js";
import { IdentityPull } from "./identity-pull.js";
import { type MembershipMetrics, noopMembershipMetrics, type RefusedKind } from "./metrics.js";
import { RateBudget } from "./rate-budget.js";
import { pickRandom } from "./routing.js";
import { hex as hexOf } from "./hex.js";
import { kindOf, Refusals } from "./refusals.js";
import { Scheduler } from "./scheduler.js";
import { illegalTagReason } from "./tags.js";
import { isNewer, newIncNum } from "./timestamp.js";
import { type Known, type Member, type MembershipEvent, type MembershipEventType, preferredEndpoint, View } from "./view.js";

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
  /** Refused messages by `"<kind>/<code>"`. */
  readonly refused: Readonly<Record<string, number>>;
}

const eventCapacity = 1024;

/** Membership messages: alive, requests, responses and identity pull. */
function isMembershipMessage(rm: ReceivedMessage): boolean {
  const c = rm.message.content;
  switch (c.case) {
    case "aliveMsg":
    case "memReq":
    case "memRes":
      return true;
    case "hello":
    case "dataDig":
    case "dataReq":
    case "dataUpdate":
      return c.value.msgType === PullMsgType.IDENTITY_MSG;
    default:
      return false;
  }
}

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
  private readonly crypto: CryptoService;
  private readonly clock: Clock;
  private readonly log: Logger;
  private readonly limiter: LogLimiter;
  private readonly metrics: MembershipMetrics;
  private readonly random: () => number;
  private readonly selfPkiId: PkiId;
  private readonly selfHex: string;
  private readonly selfOrg: string;
  private readonly incNum: bigint;
  private seqNum = 0n;
  private readonly startedAt: number;
  private endpoint: string;
  private metadata: Uint8Array;
  private selfAlive: Envelope | undefined;
  private readonly mapper: IdentityMapper;
  private readonly view: View;
  private readonly store: AliveStore;
  private readonly adapter: CommAdapter;
  private readonly pull: IdentityPull;
  private readonly connector: Connector;
  private readonly budget: RateBudget;
  /** Bootstrap (and connect()) endpoints: members there are never removed. */
  private readonly protectedEndpoints: Set<string>;
  private readonly refusals: Refusals;
  private readonly scheduler: Scheduler;
  private stopped: Promise<void> | undefined;

  constructor(init: MembershipInit) {
    this.config = resolveMembershipConfig(init.options);
    this.comm = init.comm;
    this.crypto = init.crypto;
    this.clock = init.clock ?? systemClock;
    const wall = init.wallClockMs ?? Date.now;
    this.log = (init.logger ?? silentLogger).child({
      component: "gossip.discovery",
    });
    this.limiter = new LogLimiter(() => this.clock.now());
    this.scheduler = new Scheduler(this.clock, this.log);
    this.metrics = init.metrics ?? noopMembershipMetrics;
    this.random = init.random ?? Math.random;
    this.refusals = new Refusals(this.metrics, this.log, this.limiter);
    this.selfPkiId = this.crypto.pkiIdOf(this.crypto.identity);
    this.selfHex = pkiIdHex(this.selfPkiId);
    this.selfOrg = this.crypto.organizationOf(this.crypto.identity);
    this.incNum = newIncNum(wall);
    this.startedAt = this.clock.now();
    this.endpoint = this.config.externalEndpoint;
    this.metadata = this.config.metadata;
    this.protectedEndpoints = new Set(this.config.bootstrapPeers);
    this.eventStream = new EventStream(eventCapacity, () =>
      this.log.debug({}, "membership event subscriber fell behind; oldest event dropped"),
    );
    this.events = this.eventStream;
    if (this.endpoint === "") this.log.warn({}, "External endpoint is empty, peer will not be accessible outside of its organization");
    this.mapper = new IdentityMapper({
      crypto: this.crypto,
      clock: this.clock,
      wallClockMs: wall,
      onRemoved: (pkiId) => {
        this.comm.closeConn({ pkiId, endpoint: "" });
        this.pull.remove(pkiId);
      },
    });
    this.view = new View(this.selfHex, (type, k) => this.changed(type, k));
    this.store = new AliveStore(this.config.aliveExpirationTimeoutMs * this.config.msgExpirationFactor);
    this.budget = new RateBudget(this.config.maxVerificationsPerPeerPerSecond);
    this.adapter = new CommAdapter({
      comm: this.comm,
      clock: this.clock,
      config: this.config,
      mapper: this.mapper,
      view: this.view,
      metrics: this.metrics,
      random: this.random,
      selfOrg: this.selfOrg,
    });
    this.pull = new IdentityPull({
      comm: this.comm,
      crypto: this.crypto,
      mapper: this.mapper,
      clock: this.clock,
      config: this.config,
      random: this.random,
      selfOrg: this.selfOrg,
      targets: () =>
        this.view.alive().map((k) => ({
          pkiId: k.pkiId,
          pkiHex: k.pkiHex,
          endpoint: preferredEndpoint(k),
        })),
      externalEndpointOf: (hex) => (hex === this.selfHex ? this.endpoint : this.view.get(hex)?.endpoint),
      refused: (error, rm) => this.refuse("identity", error, rm),
      afford: (sender, n) => this.budget.take(sender, this.clock.now(), n),
      sent: () => this.metrics.sent("identity_pull"),
    });
    this.connector = new Connector({
      comm: this.comm,
      crypto: this.crypto,
      clock: this.clock,
      config: this.config,
      selfOrg: this.selfOrg,
      random: this.random,
      log: this.log,
      limiter: this.limiter,
      signal: this.scheduler.signal,
      buildRequest: (nonce, selfOrg) => membershipRequest(selfOrg ? this.signSelf() : withoutSecret(this.signSelf()), nonce),
      externalEndpoint: () => this.endpoint,
      requested: (pkiId) => this.adapter.markRequested(pkiIdHex(pkiId)),
    });

    const sc = this.scheduler;
    sc.consume(this.comm.accept(isMembershipMessage), (rm) => this.onMessage(rm));
    sc.consume(this.comm.presumedDead, (e) => {
      if (e.pkiId.length > 0) this.expire(pkiIdHex(e.pkiId), "presumed dead");
    });
    sc.consume(this.comm.identitySwitch, (e) => {
      const hex = pkiIdHex(e.oldPkiId);
      if (this.view.get(hex) !== undefined) this.log.debug({ pkiId: hex }, `Purging ${hex} from membership`);
      this.view.remove(hex);
    });
    sc.consume(this.comm.connectionEvents, (e) => {
      if (e.type === "connected") this.learnIdentity(e.connection.pkiId, e.connection.identity);
    });

    const c = this.config;
    sc.every(c.aliveTimeIntervalMs, () => this.periodicAlive());
    sc.every(c.aliveExpirationCheckIntervalMs, () => this.checkExpiration());
    sc.every((c.aliveExpirationTimeoutMs * c.msgExpirationFactor) / 100, () => this.sweepStore());
    sc.every(c.identityPurgeIntervalMs, () => this.mapper.purgeUnused(c.identityUsageThresholdMs));
    this.syncLoop();
    this.reconnectLoop();
    for (const ep of c.bootstrapPeers) this.connector.connect(ep);
  }

  // --- public API ------------------------------------------------------------

  /** Ourselves, as others see us (state alive). */
  get self(): Member {
    return {
      pkiId: this.selfPkiId,
      pkiIdHex: this.selfHex,
      endpoint: this.endpoint,
      internalEndpoint: this.config.internalEndpoint,
      metadata: this.metadata,
      organization: this.selfOrg,
      timestamp: { incNum: this.incNum, seqNum: this.seqNum },
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
    this.metadata = metadata.slice();
  }

  /** Changes our external endpoint; it rides on our next alive message. */
  updateEndpoint(externalEndpoint: string): void {
    this.endpoint = externalEndpoint;
  }

  /**
   * Joins through `endpoint` at runtime: as a bootstrap entry does (a peer of
   * our organization), or, with `anchor`, as Fabric connects to a channel's
   * anchor peer (any organization; no internal endpoint disclosed to another).
   * Members at that endpoint are never removed from the view.
   */
  connect(endpoint: string, options: { readonly anchor?: boolean } = {}): void {
    if (this.stopped) return;
    this.protectedEndpoints.add(endpoint);
    this.connector.connect(endpoint, options.anchor ?? false);
  }

  /** Counts. */
  stats(): MembershipStats {
    return {
      alive: this.view.aliveCount,
      dead: this.view.dead().length,
      identities: this.mapper.size,
      storedAliveMessages: this.store.size,
      refused: this.refusals.snapshot(),
    };
  }

  /** Stops every loop and timer; idempotent. Sends no goodbye: peers notice by expiration. The comm keeps running. */
  stop(): Promise<void> {
    this.stopped ??= this.doStop();
    return this.stopped;
  }

  // --- receiving ---------------------------------------------------------------

  private onMessage(rm: ReceivedMessage): void {
    this.learnIdentity(rm.connection.pkiId, rm.connection.identity);
    const kind = kindOf(rm.message);
    const bad = illegalTagReason(rm.message);
    if (bad !== undefined) {
      this.refuse(kind, new GossipError(ErrorCode.IllegalTag, `Tag of ${rm.message.tag} isn't legal: ${bad}`), rm);
      return;
    }
    const c = rm.message.content;
    try {
      if (c.case === "aliveMsg") this.onAlive(rm);
      else if (c.case === "memReq") this.onRequest(rm);
      else if (c.case === "memRes") this.onResponse(rm);
      else this.pull.handle(rm);
    } catch (e) {
      this.refuse(kind, GossipError.from(e), rm);
    }
  }

  /** A gossiped alive message: msgStore, validation, view, forward (§3.5). */
  private onAlive(rm: ReceivedMessage): void {
    const a = parseAlive(rm.envelope, rm.message);
    if (a.pkiHex === this.selfHex) {
      this.ownPkiId(a);
      return;
    }
    if (!this.store.checkValid(a.pkiHex, a.timestamp)) {
      // The common case (each alive message arrives from several peers): counted, not thrown nor logged.
      this.refusals.count("alive", ErrorCode.StaleMessage);
      return;
    }
    this.verify(rm, a);
    this.store.add(a, this.clock.now());
    this.view.handleAlive(a, this.clock.now());
    this.adapter.gossip(a, rm.connection.pkiId);
  }

  /** A MembershipRequest (§3.6). */
  private onRequest(rm: ReceivedMessage): void {
    if (rm.message.content.case !== "memReq") return;
    const info = rm.message.content.value.selfInformation;
    if (info === undefined) throw new GossipError(ErrorCode.MalformedMessage, "Got membership request with invalid selfInfo");
    const a = parseAlive(info);
    const sender = pkiIdHex(rm.connection.pkiId);
    if (a.pkiHex !== sender) {
      throw new GossipError(ErrorCode.SenderMismatch, "Got membership request with selfInfo that doesn't match the handshake");
    }
    this.verify(rm, a);
    if (this.store.checkValid(a.pkiHex, a.timestamp)) this.view.handleAlive(a, this.clock.now());
    const organization = this.mapper.organizationOf(a.pkiId);
    const policy = disclosurePolicy(this.selfOrg, {
      organization,
      endpoint: a.endpoint,
    });
    if (!policy.disclose({ organization: this.selfOrg, endpoint: this.endpoint })) {
      this.limiter.maybe(`forbidden ${a.pkiHex}`, (suppressed) => {
        if (organization === undefined) this.log.warn({ pkiId: a.pkiHex, suppressed }, `Cannot determine organization of ${a.pkiHex}`);
        this.log.warn(
          { pkiId: a.pkiHex, suppressed },
          "Got a membership request from a peer that shouldn't have sent one, closing connection to the peer as a result.",
        );
      });
      this.comm.closeConn({ pkiId: a.pkiId, endpoint: rm.connection.endpoint });
      throw new GossipError(ErrorCode.Forbidden, "membership request from a peer we must not answer");
    }
    const disclosed = (k: Known) =>
      policy.disclose({
        organization: this.mapper.organizationOf(k.pkiId),
        endpoint: k.endpoint,
      });
    const alive = this.view
      .alive()
      .filter(disclosed)
      .map((k) => policy.filter(k.envelope));
    const dead = this.view
      .dead()
      .filter(disclosed)
      .map((k) => policy.filter(k.envelope));
    alive.push(policy.filter(this.selfAlive ?? this.signSelf()));
    const response = create(GossipMessageSchema, {
      tag: GossipMessage_Tag.EMPTY,
      nonce: rm.message.nonce,
      content: {
        case: "memRes",
        value: create(MembershipResponseSchema, { alive, dead }),
      },
    });
    void rm.respond(response);
    this.metrics.sent("membership_response");
  }

  /** A MembershipResponse (§3.7): processed even if unsolicited, but then within the sender's budget. */
  private onResponse(rm: ReceivedMessage): void {
    if (rm.message.content.case !== "memRes") return;
    const res = rm.message.content.value;
    const entries = res.alive.length + res.dead.length;
    if (entries > this.config.maxMembershipResponseEntries) {
      throw new GossipError(ErrorCode.MessageTooLarge, `membership response with ${entries} entries`);
    }
    const acked = this.connector.ack(rm.message.nonce);
    const sender = pkiIdHex(rm.connection.pkiId);
    const solicited = acked || this.adapter.takeRequested(sender);
    const now = this.clock.now();
    for (const env of res.alive) {
      const a = parseAlive(env); // a malformed entry aborts the rest, as in Fabric
      if (!this.freshForView(a)) continue;
      if (!solicited && !this.budget.take(sender, now)) {
        throw new GossipError(ErrorCode.RateLimited, "unsolicited membership response over the peer's budget");
      }
      try {
        validateAlive(this.crypto, this.mapper, a);
      } catch (e) {
        this.refuse("membership_response", GossipError.from(e), rm);
        continue;
      }
      this.view.handleAlive(a, now);
    }
    for (const env of res.dead) {
      const a = parseAlive(env);
      if (this.view.get(a.pkiHex) !== undefined || !this.freshForView(a)) continue;
      if (!solicited && !this.budget.take(sender, now)) {
        throw new GossipError(ErrorCode.RateLimited, "unsolicited membership response over the peer's budget");
      }
      try {
        validateAlive(this.crypto, this.mapper, a);
      } catch (e) {
        this.refuse("membership_response", GossipError.from(e), rm);
        continue;
      }
      this.view.learnDead(a, now);
    }
  }

  /** Not ours, and newer than both the msgStore and the view hold (cheap, before cryptography). */
  private freshForView(a: ParsedAlive): boolean {
    if (a.pkiHex === this.selfHex || !this.store.checkValid(a.pkiHex, a.timestamp)) return false;
    const held = this.view.timestampOf(a.pkiHex);
    return held === undefined || isNewer(a.timestamp, held);
  }

  /** Signature checks cost CPU: within the sender's budget only. Throws. */
  private verify(rm: ReceivedMessage, a: ParsedAlive): void {
    if (!this.budget.take(pkiIdHex(rm.connection.pkiId), this.clock.now())) {
      throw new GossipError(ErrorCode.RateLimited, "too many messages to verify from this peer");
    }
    validateAlive(this.crypto, this.mapper, a);
  }

  private ownPkiId(a: ParsedAlive): void {
    let verified = false;
    try {
      validateAlive(this.crypto, this.mapper, a);
      verified = true;
    } catch {
      // forged: just refused below
    }
    if (verified && (a.endpoint !== this.endpoint || (a.internalEndpoint !== "" && a.internalEndpoint !== this.config.internalEndpoint))) {
      this.limiter.maybe("own pki-id", (suppressed) =>
        this.log.error(
          {
            endpoint: a.endpoint,
            internalEndpoint: a.internalEndpoint,
            suppressed,
          },
          "Bad configuration detected: Received AliveMessage from a peer with the same PKI-ID as myself:",
        ),
      );
    }
    throw new GossipError(ErrorCode.OwnPkiId, "alive message claims our PKI-ID");
  }

  private learnIdentity(pkiId: PkiId, identity: Uint8Array): void {
    if (this.mapper.has(pkiIdHex(pkiId))) return;
    try {
      this.mapper.put(pkiId, identity);
    } catch (e) {
      this.limiter.maybe(`identity ${pkiIdHex(pkiId)}`, (suppressed) =>
        this.log.debug({ pkiId: pkiIdHex(pkiId), err: (e as Error).message, suppressed }, "connection identity not learned"),
      );
    }
  }

  // --- sending -------------------------------------------------------------------

  /** Signs a new alive message about us (consumes a sequence number), secret envelope included. */
  private signSelf(): Envelope {
    this.seqNum++;
    const withIdentity = this.clock.now() - this.startedAt < this.config.publishCertPeriodMs;
    const msg = aliveMessage({
      endpoint: this.endpoint,
      pkiId: this.selfPkiId,
      metadata: this.metadata,
      timestamp: { incNum: this.incNum, seqNum: this.seqNum },
      identity: withIdentity ? this.crypto.identity : undefined,
    });
    return signAlive(this.crypto, msg, this.config.internalEndpoint);
  }

  // --- periodic work ---------------------------------------------------------------

  private periodicAlive(): void {
    if (this.view.aliveCount === 0) return;
    const env = this.signSelf();
    this.selfAlive = env;
    this.adapter.gossip(parseAlive(env), undefined);
  }

  private checkExpiration(): void {
    const now = this.clock.now();
    for (const k of this.view.alive()) {
      if (now - k.lastHeardMs > this.config.aliveExpirationTimeoutMs) {
        this.log.debug({ pkiId: k.pkiHex }, `Haven't heard from ${k.pkiHex} for ${now - k.lastHeardMs}ms`);
        this.expire(k.pkiHex, "silent");
      }
    }
  }

  private expire(hex: string, why: string): void {
    const k = this.view.expire(hex);
    if (k === undefined) return;
    this.log.debug({ pkiId: hex, why }, `Closing connection to ${memberString(k)}`);
    this.comm.closeConn({ pkiId: k.pkiId, endpoint: preferredEndpoint(k) });
  }

  private sweepStore(): void {
    for (const a of this.store.sweep(this.clock.now())) {
      const k = this.view.get(a.pkiHex);
      if (k === undefined) continue;
      if (this.protectedEndpoints.has(k.endpoint) || this.protectedEndpoints.has(k.internalEndpoint)) {
        this.log.debug({ pkiId: k.pkiHex }, `Do not remove bootstrap or anchor peer endpoint ${preferredEndpoint(k)} from membership`);
        continue;
      }
      this.view.remove(a.pkiHex);
    }
  }

  /** InitiateSync every pull interval, first at once (§3.9). */
  private syncLoop(): void {
    const round = () => {
      const c = this.config;
      for (const k of pickRandom(this.view.alive(), c.pullPeerNum, this.random))
        this.adapter.sendRequest(k, preferredEndpoint(k), this.signSelf());
    };
    round();
    this.scheduler.every(this.config.pullIntervalMs, round);
  }

  /** Probes dead members every reconnect interval (at most maxProbesPerReconnectRound) and asks those that answer (§3.8). */
  private reconnectLoop(): void {
    const round = async () => {
      const dead = pickRandom(this.view.dead(), this.config.maxProbesPerReconnectRound, this.random);
      await Promise.all(
        dead.map(async (k) => {
          const org = this.mapper.peekOrganization(k.pkiHex);
          const endpoint = org !== undefined && org !== this.selfOrg ? k.endpoint : preferredEndpoint(k);
          if (endpoint === "") return;
          try {
            await this.comm.probe({ endpoint, pkiId: k.pkiId });
          } catch {
            return;
          }
          if (!this.scheduler.stopped && this.view.get(k.pkiHex) === k) this.adapter.sendRequest(k, endpoint, this.signSelf());
        }),
      );
    };
    this.scheduler.run(async () => {
      while (!this.scheduler.stopped) {
        await round();
        await this.scheduler.sleep(this.config.reconnectIntervalMs);
      }
    });
  }

  // --- plumbing ---------------------------------------------------------------------

  private changed(type: MembershipEventType, k: Known): void {
    const member = this.toMember(k);
    this.metrics.change(type);
    this.metrics.totalPeersKnown(this.view.aliveCount);
    const fields = {
      pkiId: k.pkiHex,
      endpoint: k.endpoint,
      internalEndpoint: k.internalEndpoint,
      change: type,
    };
    if (type === "removed")
      this.log.info(fields, `Removing member: Endpoint: ${k.endpoint}, InternalEndpoint: ${k.internalEndpoint}, PKIID: ${k.pkiHex}`);
    else this.log.info(fields, `Member ${type}: ${memberString(k)}`);
    this.eventStream.emit({ type, member });
  }

  private refuse(kind: RefusedKind, error: GossipError, rm?: ReceivedMessage): void {
    this.refusals.refuse(kind, error, rm === undefined ? "" : pkiIdHex(rm.connection.pkiId));
  }

  private toMember(k: Known): Member {
    return {
      pkiId: k.pkiId,
      pkiIdHex: k.pkiHex,
      endpoint: k.endpoint,
      internalEndpoint: k.internalEndpoint,
      metadata: k.metadata,
      organization: this.mapper.peekOrganization(k.pkiHex),
      timestamp: k.timestamp,
      lastHeardMs: k.lastHeardMs,
      state: k.state,
    };
  }

  private async doStop(): Promise<void> {
    const loops = this.scheduler.stop();
    this.adapter.stop();
    this.pull.stop();
    this.mapper.stop();
    await loops;
    this.view.clear();
    this.store.clear();
    this.eventStream.end();
  }
}

/** Fabric's member string: "Endpoint: x, InternalEndpoint: y, PKI-ID: hex, Metadata: m". */
function memberString(k: Known): string {
  return `Endpoint: ${k.endpoint}, InternalEndpoint: ${k.internalEndpoint}, PKI-ID: ${k.pkiHex}, Metadata: ${Buffer.from(k.metadata).toString("hex")}`;
}
