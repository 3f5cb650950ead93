/**
 * What membership receives, one way: {@link Inbox.screen} first sees each
 * received Envelope undecoded and takes the gossiped alive messages that die
 * at the msgStore (most of them) from their bytes; {@link Inbox.handle} gets
 * the rest decoded, checks the tag, then alive messages go through the
 * msgStore (freshness before cryptography), validation and the view, then
 * the emitter (§3.5); requests
 * are answered under the disclosure policy on the connection they came on
 * (§3.6); responses feed the view (§3.7); identity pull messages go to the
 * {@link IdentityPull}. Every refusal is a typed error, counted.
 */
import { peekAlive } from "../codec/alive-peek.js";
import { emptyBytes } from "../codec/index.js";
import type { Clock } from "../core/clock.js";
import type { Comm } from "../core/comm.js";
import type { ConnectionInfo } from "../core/connection.js";
import type { CryptoService } from "../core/crypto.js";
import { envelopeBytes } from "../core/envelope.js";
import { ErrorCode, GossipError } from "../core/errors.js";
import type { Logger, LogLimiter } from "../core/logger.js";
import type { ReceivedMessage } from "../core/received-message.js";
import { type Envelope, GossipMessage_Tag, PullMsgType } from "../gen/gossip/message_pb.js";
import { type ParsedAlive, parseAlive, parseAliveEntry, validateAlive } from "./alive-message.js";
import type { AliveStore } from "./alive-store.js";
import type { AwaitingIdentity, HeldKind } from "./awaiting-identity.js";
import type { CommAdapter } from "./comm-adapter.js";
import type { MembershipConfig } from "./config.js";
import type { Connector } from "./connector.js";
import { disclosurePolicy } from "./disclosure.js";
import { hex } from "./hex.js";
import type { IdentityMapper } from "./identity-mapper.js";
import type { IdentityPull } from "./identity-pull.js";
import type { MembershipMetrics, RefusedKind } from "./metrics.js";
import type { RateBudget } from "./rate-budget.js";
import { kindOf, type Refusals } from "./refusals.js";
import type { Replies } from "./replies.js";
import { encodeMembershipResponse } from "./response-frame.js";
import type { SelfAlive } from "./self-alive.js";
import { illegalTagReason } from "./tags.js";
import { packTimestamp, type Timestamp, timestampString } from "./timestamp.js";
import { frameOf, type Known, type View } from "./view.js";

/**
 * A screen (see `Comm.accept`) for a subscription that wants no membership
 * message, i.e. whose predicate rejects every {@link isMembershipMessage}:
 * declines the alive messages it can read from the bytes alone (most alive
 * traffic), which the subscription would not have received anyway, so that
 * what membership's own screen takes is not decoded for it. Declines nothing
 * else: every other message is decoded and judged by the predicate.
 */
export function declineMembershipEnvelope(envelope: Envelope): boolean {
  // peekAlive answers only where decoding gives an aliveMsg: well-formed, no ack, a membership message.
  return peekAlive(envelope.payload) !== undefined;
}

/** Membership messages: alive, requests, responses and identity pull. */
export function isMembershipMessage(rm: ReceivedMessage): boolean {
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

/** What the inbox works on (the parts of a Membership). */
export interface InboxInit {
  readonly comm: Comm;
  readonly crypto: CryptoService;
  readonly clock: Clock;
  readonly config: MembershipConfig;
  readonly log: Logger;
  readonly limiter: LogLimiter;
  readonly metrics: MembershipMetrics;
  readonly selfHex: string;
  readonly selfOrg: string;
  readonly self: SelfAlive;
  readonly mapper: IdentityMapper;
  readonly view: View;
  readonly store: AliveStore;
  readonly budget: RateBudget;
  readonly adapter: CommAdapter;
  readonly connector: Connector;
  readonly pull: IdentityPull;
  readonly refusals: Refusals;
  readonly replies: Replies;
  readonly awaiting: AwaitingIdentity;
  /** False once stopped (nothing more is held for its identity). */
  readonly running: () => boolean;
}

/** Handles received membership messages. */
export class Inbox {
  constructor(private readonly init: InboxInit) {}

  /** Handles one message membership accepted; never throws (refusals are counted). */
  handle(rm: ReceivedMessage): void {
    this.learnIdentity(rm.connection);
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
      else this.init.pull.handle(rm);
    } catch (e) {
      this.refuse(kind, GossipError.from(e), rm);
    }
  }

  /**
   * Membership's screen (see `Comm.accept`): takes a gossiped alive message
   * that {@link handle} would drop at the msgStore check (§3.5 step 1, where
   * Fabric drops it) from its bytes alone, and does what handle would do
   * with it: counts a duplicate or refuses a replay (`StaleMessage`). True when it took the message, which
   * then is never decoded. Everything else, and whatever the peek does not
   * read (see peekAlive: it answers only where the full decoding reads the
   * same PKI-ID, timestamp and tag), is left to handle: an illegal tag, a
   * message too large or unsigned, about us, or newer than what the
   * msgStore holds, or one on a connection whose identity membership has not
   * learned yet (handle learns it first).
   *
   * It runs when the message is read, possibly before earlier messages
   * waiting in membership's subscription are handled; that changes no
   * outcome, because what the msgStore holds for a PKI-ID only gets newer
   * (until a tombstone is forgotten after twice its TTL): a message it
   * takes now, handle would drop then. Only its count could differ, were the
   * entry to expire in between (a duplicate now, a stale message then).
   */
  screen(envelope: Envelope, from: ConnectionInfo): boolean {
    const { store, selfHex } = this.init;
    if (!this.init.running() || envelope.signature.length === 0 || this.tooLarge(envelope) !== undefined) return false;
    const peek = peekAlive(envelope.payload);
    if (peek === undefined || peek.tag !== GossipMessage_Tag.EMPTY) return false;
    const pkiHex = hex(peek.pkiId);
    if (pkiHex === selfHex) return false;
    // handle's first step learns the connection's identity, which may store alive messages held for it (and
    // send): a connection whose identity is not known yet is left to handle, so the screen itself changes
    // nothing but counts, and never sends from inside the comm's read.
    if (!this.init.mapper.has(from.pkiIdHex)) return false;
    if (store.checkValid(pkiHex, peek)) return false;
    try {
      this.notNewer(pkiHex, peek);
    } catch (e) {
      this.init.refusals.refuse("alive", GossipError.from(e), from.pkiIdHex);
    }
    return true;
  }

  /**
   * Learns the identity a connection authenticated (Fabric: the handshake's
   * `Put`); failures only logged. `connected`: called once per new
   * connection, whose identity the mapper then shares if it holds equal bytes.
   */
  learnIdentity(from: ConnectionInfo, connected = false): void {
    const { mapper, limiter, log } = this.init;
    // Called for every received message: its PKI-ID's bytes (a view made on each read) only when used.
    const hex = from.pkiIdHex;
    if (mapper.has(hex)) {
      if (connected) mapper.share(from.pkiId, from.identity);
      return;
    }
    try {
      mapper.put(from.pkiId, from.identity, hex);
    } catch (e) {
      limiter.maybe(`identity ${hex}`, (suppressed) =>
        log.debug({ pkiId: hex, err: (e as Error).message, suppressed }, "connection identity not learned"),
      );
      return;
    }
    this.identitiesLearned([hex]);
  }

  /** Takes in the held alive messages that the identities just learned make verifiable, with every check they skipped. */
  identitiesLearned(hexes: readonly string[]): void {
    const { awaiting, clock, crypto, mapper, view, store, adapter, refusals } = this.init;
    const now = clock.now();
    for (const hex of hexes) {
      const held = awaiting.take(hex, now);
      if (held === undefined) continue;
      const a = held.alive;
      if (!this.freshForView(a)) continue;
      try {
        validateAlive(crypto, mapper, a);
      } catch (e) {
        refusals.refuse(held.kind === "gossip" ? "alive" : "membership_response", GossipError.from(e), held.from);
        continue;
      }
      if (held.kind === "dead_entry") {
        if (view.get(a.pkiHex) === undefined) view.learnDead(a, now);
      } else if (held.kind === "alive_entry") {
        view.handleAlive(a, now);
      } else if (store.checkValid(a.pkiHex, a.timestamp)) {
        const k = view.get(a.pkiHex);
        store.add(a, now, k?.pkiHex ?? mapper.keyOf(a.pkiHex), k);
        view.handleAlive(a, now);
        adapter.gossip(a, held.from);
      }
    }
  }

  /** A gossiped alive message: msgStore, validation, view, forward (§3.5). */
  private onAlive(rm: ReceivedMessage): void {
    const { store, view, adapter, clock } = this.init;
    const tooLarge = this.tooLarge(rm.envelope);
    if (tooLarge !== undefined) throw tooLarge;
    const a = parseAlive(rm.envelope, rm.message);
    if (a.pkiHex === this.init.selfHex) {
      this.ownPkiId(rm, a);
      return;
    }
    if (!store.checkValid(a.pkiHex, a.timestamp)) {
      this.notNewer(a.pkiHex, a.timestamp);
      return;
    }
    try {
      this.verify(rm, a);
    } catch (e) {
      this.awaitIdentity(e, a, "gossip", rm);
      throw e;
    }
    const k = view.get(a.pkiHex);
    store.add(a, clock.now(), k?.pkiHex ?? this.init.mapper.keyOf(a.pkiHex), k);
    view.handleAlive(a, clock.now());
    adapter.gossip(a, rm.connection.pkiIdHex);
  }

  /**
   * A gossiped alive message the msgStore holds something as new as or newer
   * than (Fabric drops all of them silently, §3.5). Every copy after the first
   * of one message, and a message overtaken on a shorter path by a newer one
   * of the same incarnation, is a duplicate: counted, not refused. An older
   * incarnation than the one held (its origin restarted since), or anything
   * as old as a tombstone (no newer message for the whole TTL), is not what
   * gossip delivers: a replay, refused as `StaleMessage`. Throws for those.
   */
  private notNewer(pkiHex: string, timestamp: Timestamp): void {
    const held = this.init.store.held(pkiHex);
    if (held !== undefined && (held.expired || timestamp.incNum < held.timestamp.incNum)) {
      throw new GossipError(
        ErrorCode.StaleMessage,
        `alive message (${timestampString(timestamp)}) older than the ${held.expired ? "expired" : "held"} incarnation (${timestampString(held.timestamp)}): a replay`,
      );
    }
    this.init.refusals.duplicate("alive");
  }

  /** A MembershipRequest (§3.6). */
  private onRequest(rm: ReceivedMessage): void {
    if (rm.message.content.case !== "memReq") return;
    const { store, view, mapper, self, selfOrg, clock } = this.init;
    const info = rm.message.content.value.selfInformation;
    if (info === undefined) throw new GossipError(ErrorCode.MalformedMessage, "Got membership request with invalid selfInfo");
    const tooLarge = this.tooLarge(info);
    if (tooLarge !== undefined) throw tooLarge;
    const a = parseAlive(info);
    const sender = rm.connection.pkiIdHex;
    if (a.pkiHex !== sender) {
      throw new GossipError(ErrorCode.SenderMismatch, "Got membership request with selfInfo that doesn't match the handshake");
    }
    this.verify(rm, a);
    if (store.checkValid(a.pkiHex, a.timestamp)) view.handleAlive(a, clock.now());
    const organization = mapper.organizationOf(a.pkiId);
    const policy = disclosurePolicy(selfOrg, { organization, endpoint: a.endpoint });
    if (!policy.disclose({ organization: selfOrg, endpoint: self.endpoint })) {
      const { limiter, log } = this.init;
      limiter.maybe(`forbidden ${a.pkiHex}`, (suppressed) => {
        if (organization === undefined) log.warn({ pkiId: a.pkiHex, suppressed }, `Cannot determine organization of ${a.pkiHex}`);
        log.warn(
          { pkiId: a.pkiHex, suppressed },
          "Got a membership request from a peer that shouldn't have sent one, closing connection to the peer as a result.",
        );
      });
      this.init.comm.closeConn({ pkiId: a.pkiId, endpoint: rm.connection.endpoint });
      throw new GossipError(ErrorCode.Forbidden, "membership request from a peer we must not answer");
    }
    // Every entry goes out as the bytes kept for it (see response-frame.ts).
    const frames = (members: readonly Known[]) => {
      const out: Uint8Array[] = [];
      for (const k of members) {
        if (policy.disclose({ organization: mapper.organizationOfHex(k.pkiHex), endpoint: k.endpoint }))
          out.push(policy.filterFrame(frameOf(k)));
      }
      return out;
    };
    const alive = frames(view.alive());
    const dead = frames(view.dead());
    alive.push(envelopeBytes(policy.filter(self.forResponse()))); // ours last, as Fabric
    const response: Envelope = {
      $typeName: "gossip.Envelope",
      payload: encodeMembershipResponse(rm.message.nonce, alive, dead),
      signature: emptyBytes(),
      secretEnvelope: undefined,
    };
    if (!this.init.replies.send(rm, response)) {
      throw new GossipError(ErrorCode.Overflow, "the requester does not read its earlier responses");
    }
    this.init.metrics.sent("membership_response");
  }

  /** A MembershipResponse (§3.7): processed even if unsolicited, but then within the sender's budget. */
  private onResponse(rm: ReceivedMessage): void {
    if (rm.message.content.case !== "memRes") return;
    const { config, connector, adapter, view, clock } = this.init;
    const res = rm.message.content.value;
    const entries = res.alive.length + res.dead.length;
    if (entries > config.maxMembershipResponseEntries) {
      throw new GossipError(ErrorCode.MessageTooLarge, `membership response with ${entries} entries`);
    }
    const acked = connector.ack(rm.message.nonce);
    const sender = rm.connection.pkiIdHex;
    const solicited = acked || adapter.takeRequested(sender);
    const now = clock.now();
    const admit = { solicited, sender, now, rm };
    for (const env of res.alive) {
      const a = this.responseEntry(env, "alive_entry", admit);
      if (a !== undefined) view.handleAlive(a, now);
    }
    for (const env of res.dead) {
      const a = this.responseEntry(env, "dead_entry", admit);
      if (a !== undefined) view.learnDead(a, now);
    }
  }

  /**
   * One entry of a MembershipResponse, parsed and verified; undefined when it
   * is refused or a duplicate (counted either way). A dead entry about a
   * member we know is a duplicate: known members are never marked dead on
   * another's word. Throws `RateLimited` when an unsolicited response runs
   * over the sender's budget, which ends the rest of the response.
   *
   * A solicited response is outside the sender's budget (it may carry the
   * whole membership), but an honest responder's entries pass their checks:
   * once one fails (but for want of an identity), the rest of the response
   * is charged to the sender's budget too. Else forged entries, each newer
   * than what we hold or about another member, cost a check each.
   */
  private responseEntry(
    env: Envelope,
    kind: "alive_entry" | "dead_entry",
    admit: {
      solicited: boolean;
      readonly sender: string;
      readonly now: number;
      readonly rm: ReceivedMessage;
    },
  ): ParsedAlive | undefined {
    const { view, budget, crypto, mapper, refusals } = this.init;
    // Most entries repeat what we hold: read their PKI-ID and timestamp
    // straight from the bytes and drop those before decoding anything. The
    // peek answers only for entries that parse in full to the same values,
    // so the outcome is the one the full parse below would reach.
    const peek = env.signature.length > 0 ? peekAlive(env.payload) : undefined;
    if (peek !== undefined) {
      const pkiHex = hex(peek.pkiId);
      if ((kind === "dead_entry" && view.get(pkiHex) !== undefined) || !this.isFresh(pkiHex, peek)) {
        refusals.duplicate("membership_response");
        return undefined;
      }
    }
    // An entry too large to keep is skipped like an invalid one (it may be the only bad entry of an honest
    // responder that kept it before it had this limit).
    const a = this.tooLarge(env) ?? parseAliveEntry(env); // a malformed entry aborts the rest, as in Fabric; an invalid one is skipped
    if (a instanceof GossipError) {
      this.refuse("membership_response", a, admit.rm);
      return undefined;
    }
    if ((kind === "dead_entry" && view.get(a.pkiHex) !== undefined) || !this.freshForView(a)) {
      refusals.duplicate("membership_response");
      return undefined;
    }
    if (!admit.solicited && !budget.take(admit.sender, admit.now)) {
      throw new GossipError(ErrorCode.RateLimited, "unsolicited membership response over the peer's budget");
    }
    try {
      validateAlive(crypto, mapper, a);
    } catch (e) {
      const error = GossipError.from(e);
      this.awaitIdentity(error, a, kind, admit.rm);
      if (error.code !== ErrorCode.UnknownIdentity) admit.solicited = false;
      this.refuse("membership_response", error, admit.rm);
      return undefined;
    }
    return a;
  }

  /** `MessageTooLarge` for an alive message over `maxAliveMessageBytes` (see the option), else undefined. */
  private tooLarge(env: Envelope): GossipError | undefined {
    const secret = env.secretEnvelope;
    const size = env.payload.length + env.signature.length + (secret === undefined ? 0 : secret.payload.length + secret.signature.length);
    const max = this.init.config.maxAliveMessageBytes;
    return size > max ? new GossipError(ErrorCode.MessageTooLarge, `alive message of ${size} bytes (at most ${max})`) : undefined;
  }

  /** Not ours, and newer than both the msgStore and the view hold (cheap, before cryptography). */
  private freshForView(a: ParsedAlive): boolean {
    return this.isFresh(a.pkiHex, a.timestamp);
  }

  /** {@link freshForView} of a PKI-ID (hex) and timestamp. */
  private isFresh(pkiHex: string, timestamp: Timestamp): boolean {
    if (pkiHex === this.init.selfHex) return false;
    const stamp = packTimestamp(timestamp);
    if (!this.init.store.newerThanHeld(pkiHex, stamp)) return false;
    const held = this.init.view.stampOf(pkiHex);
    return held === undefined || stamp > held;
  }

  /** Signature checks cost CPU: within the sender's budget only. Throws. */
  private verify(rm: ReceivedMessage, a: ParsedAlive): void {
    if (!this.init.budget.take(rm.connection.pkiIdHex, this.init.clock.now())) {
      throw new GossipError(ErrorCode.RateLimited, "too many messages to verify from this peer");
    }
    validateAlive(this.init.crypto, this.init.mapper, a);
  }

  /**
   * An alive message about us: never stored nor forwarded; logged when it is
   * genuinely ours but from elsewhere. No msgStore check stands before its
   * verification (ours are never stored), so it is verified within the
   * sender's budget: else a flood claiming our PKI-ID cost a signature check
   * each. Throws.
   */
  private ownPkiId(rm: ReceivedMessage, a: ParsedAlive): void {
    const { crypto, mapper, self, limiter, log, budget, clock } = this.init;
    if (!budget.take(rm.connection.pkiIdHex, clock.now())) {
      throw new GossipError(ErrorCode.RateLimited, "too many messages to verify from this peer");
    }
    let verified = false;
    try {
      validateAlive(crypto, mapper, a);
      verified = true;
    } catch {
      // forged: just refused below
    }
    const conflicting = a.endpoint !== self.endpoint || (a.internalEndpoint !== "" && a.internalEndpoint !== self.internalEndpoint);
    if (verified && !conflicting) {
      // Our own alive message coming back through the gossip: a duplicate, as Fabric drops it.
      this.init.refusals.duplicate("alive");
      return;
    }
    if (verified) {
      limiter.maybe("own pki-id", (suppressed) =>
        log.error(
          { endpoint: a.endpoint, internalEndpoint: a.internalEndpoint, suppressed },
          "Bad configuration detected: Received AliveMessage from a peer with the same PKI-ID as myself:",
        ),
      );
    }
    throw new GossipError(ErrorCode.OwnPkiId, "alive message claims our PKI-ID");
  }

  /** Holds an alive message refused for want of its identity, and pulls identities now (see awaiting-identity.ts). */
  private awaitIdentity(e: unknown, a: ParsedAlive, kind: HeldKind, rm: ReceivedMessage): void {
    if (!(e instanceof GossipError) || e.code !== ErrorCode.UnknownIdentity || !this.init.running()) return;
    this.init.awaiting.hold(a, kind, rm.connection.pkiIdHex, this.init.clock.now());
    this.init.pull.pullSoon({ pkiId: rm.connection.pkiId, endpoint: rm.connection.endpoint });
  }

  private refuse(kind: RefusedKind, error: GossipError, rm: ReceivedMessage): void {
    this.init.refusals.refuse(kind, error, rm.connection.pkiIdHex);
  }
}
