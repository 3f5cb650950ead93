/**
 * Fabric's identity pull (cert store, §4.2): peers exchange signed
 * PeerIdentity messages through Hello → DataDigest → DataRequest → DataUpdate
 * (IDENTITY_MSG), so that we can verify alive messages of peers that never
 * connected to us. Here: the store of signed PeerIdentity messages, the
 * initiator (a round every pull interval) and the ingress of updates; the
 * responder is {@link IdentityPullResponder}.
 */
import { create } from "@bufbuild/protobuf";
import type { Clock } from "../core/clock.js";
import type { Comm } from "../core/comm.js";
import { type CryptoService, type IdentityVerifier, validatedVerifier } from "../core/crypto.js";
import { envelopeBytes, parseGossipMessage, verifyEnvelope } from "../core/envelope.js";
import { ErrorCode, GossipError } from "../core/errors.js";
import { bytesEqual, type PeerIdentity, type PkiId, pkiIdHex } from "../core/identity.js";
import type { ReceivedMessage } from "../core/received-message.js";
import {
  DataRequestSchema,
  type Envelope,
  GossipHelloSchema,
  type GossipMessage,
  PeerIdentitySchema,
  PullMsgType,
} from "../gen/gossip/message_pb.js";
import { signedPartsOf } from "./alive-message.js";
import type { MembershipConfig } from "./config.js";
import { hex as hexOf } from "./hex.js";
import type { IdentityMapper, PullItems } from "./identity-mapper.js";
import { IdentityPullResponder, pullMessage } from "./identity-pull-responder.js";
import { pickRandom } from "./routing.js";
import { cutIdentity } from "./signed-identity.js";

/** What the identity pull needs from its owner. */
export interface IdentityPullInit {
  readonly comm: Comm;
  readonly crypto: CryptoService;
  readonly mapper: IdentityMapper;
  readonly clock: Clock;
  readonly config: MembershipConfig;
  readonly random: () => number;
  readonly selfOrg: string;
  /** Alive members to pull from (PKI-ID and preferred endpoint). */
  readonly targets: () => readonly {
    pkiId: PkiId;
    pkiHex: string;
    endpoint: string;
  }[];
  /** External endpoint of a member (alive, dead, or ourselves), undefined if unknown. */
  readonly externalEndpointOf: (pkiHex: string) => string | undefined;
  /** Whether the sender (hex PKI-ID) may still cost us `n` signature checks (or Hello answers) now: its budget. */
  readonly afford: (sender: string, n: number) => boolean;
  /** A refused DataUpdate (or item) and why. */
  readonly refused: (error: GossipError, from: ReceivedMessage) => void;
  /** Answers on the connection `rm` came on; false when dropped (too many answers wait there already). */
  readonly reply: (rm: ReceivedMessage, message: GossipMessage) => boolean;
  readonly sent: () => void;
  /** Identities (hex PKI-IDs) a DataUpdate just taught the mapper. */
  readonly learned: (pkiHexes: readonly string[]) => void;
}

interface Round {
  /** Hello nonce → PKI-ID hex of the peer it went to. */
  readonly hellos: Map<bigint, { readonly pkiId: PkiId; readonly endpoint: string }>;
  /** Item (hex) → peers (hello nonces) that offered it. */
  readonly offers: Map<string, bigint[]>;
  /** Hello nonce → items we requested from that peer and whose update we still await (one update each). */
  readonly requested: Map<bigint, number>;
  phase: "digests" | "updates" | "done";
}

/**
 * Longest digest taken from a DataDigest. Digests of identity pulls are
 * PKI-IDs, SHA-256 hashes (32 bytes) in Fabric as here: a longer one names
 * no identity, and each offered one is kept for the round and requested back.
 */
const maxDigestBytes = 64;

/** A random unsigned 64-bit nonce from the injected random. */
export function randomNonce(random: () => number): bigint {
  const hi = BigInt(Math.floor(random() * 2 ** 32));
  const lo = BigInt(Math.floor(random() * 2 ** 32));
  const n = (hi << 32n) | lo;
  return n === 0n ? 1n : n;
}

/** The identity pull engine: the initiator and the ingress of updates here, the responder in {@link IdentityPullResponder}. */
export class IdentityPull {
  /**
   * Signed PeerIdentity messages by PKI-ID hex, ours and the pulled ones:
   * each Envelope's bytes without the identity (signed-identity.ts), kept
   * in the mapper's entry of that identity (they go with it). Kept as
   * ArrayBuffers, without a Uint8Array around each (~96 bytes of heap per
   * known peer; see owned-bytes.ts).
   */
  private readonly store: PullItems;
  private readonly responder: IdentityPullResponder;
  private round: Round | undefined;
  /** Peers to pull from as soon as the current round ends (see {@link pullSoon}), at most 2 x pullPeerNum. */
  private pullNext: { readonly pkiId: PkiId; readonly endpoint: string }[] = [];
  private readonly timers = new Set<unknown>();
  private stopped = false;

  constructor(private readonly init: IdentityPullInit) {
    const { crypto } = init;
    this.store = init.mapper.pullItems;
    const pkiId = crypto.pkiIdOf(crypto.identity);
    const own = pullMessage({
      case: "peerIdentity",
      value: create(PeerIdentitySchema, { pkiId, cert: crypto.identity }),
    });
    // The mapper holds our identity from its construction on, as this very array.
    const item = cutIdentity(envelopeBytes(init.comm.sign(own)), crypto.identity);
    if (item !== undefined) init.mapper.setPullItem(pkiIdHex(pkiId), item.buffer);
    // A literal of what it reads, not `{ ...init, items }`: a spread got a hidden class of its own per peer.
    this.responder = new IdentityPullResponder({
      crypto,
      mapper: init.mapper,
      clock: init.clock,
      config: init.config,
      selfOrg: init.selfOrg,
      items: this.store,
      externalEndpointOf: init.externalEndpointOf,
      afford: init.afford,
      refused: init.refused,
      reply: init.reply,
      sent: init.sent,
    });
    this.schedule(() => this.tick(), init.config.pullIntervalMs);
  }

  /** Identities held for the pull (hex PKI-IDs). */
  items(): string[] {
    return this.store.keys();
  }

  /** Stops rounds and timers. */
  stop(): void {
    this.stopped = true;
    for (const t of this.timers) this.init.clock.clearTimeout(t);
    this.timers.clear();
  }

  /** Handles a Hello, DataDigest, DataRequest or DataUpdate of IDENTITY_MSG. */
  handle(rm: ReceivedMessage): void {
    const c = rm.message.content;
    if (c.case === "hello") this.responder.onHello(rm, c.value.nonce);
    else if (c.case === "dataDig") this.onDigest(rm, c.value.nonce, c.value.digests);
    else if (c.case === "dataReq") this.responder.onRequest(rm, c.value.nonce, c.value.digests);
    else if (c.case === "dataUpdate") this.onUpdate(rm, c.value.nonce, c.value.data);
  }

  /**
   * Starts a round now, asking `first` (the peer whose messages we could not
   * verify) and random others, unless a round is under way: rounds never
   * overlap (Fabric's pullInterval > digestWaitTime + responseWaitTime rule),
   * so a peer sending unverifiable messages cannot make us pull faster than
   * one round per digestWaitTime + responseWaitTime.
   */
  pullSoon(first: { readonly pkiId: PkiId; readonly endpoint: string }): void {
    if (this.stopped) return;
    const round = this.round;
    const hex = pkiIdHex(first.pkiId);
    const max = 2 * this.init.config.pullPeerNum;
    if (round === undefined) {
      this.startRound(first);
    } else if (round.phase === "digests" && round.hellos.size < max) {
      // Still collecting digests: ask this peer too, in the same round.
      if (![...round.hellos.values()].some((h) => pkiIdHex(h.pkiId) === hex)) this.hello(round, first);
    } else if (this.pullNext.length < max && !this.pullNext.some((p) => pkiIdHex(p.pkiId) === hex)) {
      this.pullNext.push(first);
    }
  }

  /** True when we hold `pkiHex`'s signed PeerIdentity (and so can serve it to others). */
  holds(pkiHex: string): boolean {
    return this.store.has(pkiHex);
  }

  // --- initiator -------------------------------------------------------------

  private tick(): void {
    if (this.stopped) return;
    this.startRound();
    this.schedule(() => this.tick(), this.init.config.pullIntervalMs);
  }

  private startRound(first?: { readonly pkiId: PkiId; readonly endpoint: string }): void {
    const { config, random } = this.init;
    const firstHex = first === undefined ? "" : pkiIdHex(first.pkiId);
    const others = this.init.targets().filter((t) => t.pkiHex !== firstHex);
    const peers: { readonly pkiId: PkiId; readonly endpoint: string }[] =
      first === undefined ? pickRandom(others, config.pullPeerNum, random) : [first, ...pickRandom(others, config.pullPeerNum - 1, random)];
    if (peers.length === 0) return;
    const round: Round = {
      hellos: new Map(),
      offers: new Map(),
      requested: new Map(),
      phase: "digests",
    };
    this.round = round;
    for (const p of peers) this.hello(round, p);
    this.schedule(() => this.request(round), config.digestWaitTimeMs);
  }

  private hello(round: Round, p: { readonly pkiId: PkiId; readonly endpoint: string }): void {
    const nonce = randomNonce(this.init.random);
    round.hellos.set(nonce, { pkiId: p.pkiId, endpoint: p.endpoint });
    const hello = pullMessage({
      case: "hello",
      value: create(GossipHelloSchema, {
        nonce,
        msgType: PullMsgType.IDENTITY_MSG,
      }),
    });
    void this.init.comm.send(hello, { pkiId: p.pkiId, endpoint: p.endpoint });
    this.init.sent();
  }

  private onDigest(_rm: ReceivedMessage, nonce: bigint, digests: Uint8Array[]): void {
    const round = this.round;
    if (round === undefined || round.phase !== "digests" || !round.hellos.has(nonce)) return;
    const max = this.init.config.maxMembershipResponseEntries;
    for (const d of digests.slice(0, max)) {
      if (d.length === 0 || d.length > maxDigestBytes) continue;
      const hex = hexOf(d);
      if (this.store.has(hex)) continue;
      const offers = round.offers.get(hex);
      if (offers === undefined) round.offers.set(hex, [nonce]);
      else if (!offers.includes(nonce)) offers.push(nonce);
    }
  }

  private request(round: Round): void {
    if (this.stopped || this.round !== round) return;
    round.phase = "updates";
    const byNonce = new Map<bigint, Uint8Array[]>();
    for (const [hex, offers] of round.offers) {
      const nonce = offers[Math.floor(this.init.random() * offers.length)] as bigint;
      const list = byNonce.get(nonce) ?? [];
      if (list.length === 0) byNonce.set(nonce, list);
      list.push(Buffer.from(hex, "hex"));
    }
    // Read once, here (digests are taken in the digests phase only): the round lives on until its updates
    // are in, and a full table of offers held that long was ~17 bytes per known peer.
    round.offers.clear();
    for (const [nonce, digests] of byNonce) {
      const to = round.hellos.get(nonce);
      if (to === undefined) continue;
      round.requested.set(nonce, digests.length);
      const req = pullMessage({
        case: "dataReq",
        value: create(DataRequestSchema, {
          nonce,
          digests,
          msgType: PullMsgType.IDENTITY_MSG,
        }),
      });
      void this.init.comm.send(req, { pkiId: to.pkiId, endpoint: to.endpoint });
      this.init.sent();
    }
    this.schedule(() => {
      if (this.round === round) {
        round.phase = "done";
        this.round = undefined;
        const [next, ...more] = this.pullNext;
        this.pullNext = [];
        if (next !== undefined && !this.stopped) {
          this.startRound(next);
          for (const p of more) this.pullSoon(p);
        }
      }
    }, this.init.config.responseWaitTimeMs);
  }

  private onUpdate(rm: ReceivedMessage, nonce: bigint, data: Envelope[]): void {
    if (data.length > this.init.config.maxMembershipResponseEntries) {
      this.init.refused(new GossipError(ErrorCode.MessageTooLarge, `identity update with ${data.length} items`), rm);
      return;
    }
    // Solicited: the one answer to a DataRequest of this round, with no more items than requested (Fabric
    // accepts any update carrying the nonce; a peer we asked could then make us verify without bound).
    const round = this.round?.phase === "updates" ? this.round : undefined;
    const asked = round?.requested.get(nonce);
    if (asked !== undefined) round?.requested.delete(nonce);
    const solicited = asked !== undefined && data.length <= asked;
    if (!solicited && !this.init.afford(rm.connection.pkiIdHex, data.length)) {
      this.init.refused(new GossipError(ErrorCode.RateLimited, "unsolicited identity update over the peer's budget"), rm);
      return;
    }
    const items: { pkiId: PkiId; cert: PeerIdentity; verifier: IdentityVerifier | undefined; env: Envelope }[] = [];
    try {
      for (const env of data) items.push({ ...this.checkItem(env), env });
    } catch (e) {
      this.init.refused(GossipError.from(e, ErrorCode.MalformedMessage), rm);
      return;
    }
    const learned: string[] = [];
    for (const it of items) {
      const hex = hexOf(it.pkiId);
      const known = this.init.mapper.has(hex);
      try {
        this.init.mapper.put(it.pkiId, it.cert, undefined, it.verifier);
      } catch (e) {
        this.init.refused(GossipError.from(e, ErrorCode.InvalidIdentity), rm);
        continue;
      }
      if (!known) learned.push(hex);
      if (solicited) this.keep(hex, it.cert, it.env);
    }
    if (learned.length > 0) this.init.learned(learned);
  }

  /**
   * Stores a checked item without its identity, which the mapper holds
   * (equal bytes: both hash to the item's PKI-ID). Only what its owner
   * signed: unknown fields beside the payload would be served to every peer
   * pulling from us.
   */
  private keep(hex: string, cert: PeerIdentity, env: Envelope): void {
    const { mapper } = this.init;
    const held = mapper.peekIdentity(hex);
    if (held === undefined || !bytesEqual(held, cert)) return; // not without a SHA-256 collision
    const item = cutIdentity(envelopeBytes(signedPartsOf(env)), held);
    if (item !== undefined) mapper.setPullItem(hex, item.buffer);
  }

  /**
   * Fabric's ingress check of one DataUpdate item; throws. Returns the
   * verifier of the item's identity too, for the mapper to keep: the update's
   * items are all checked before any is put, and the crypto remembers only
   * the identities it checked last. An identity the mapper holds (same bytes)
   * is valid while held: checked with its verifier, not parsed again.
   */
  private checkItem(env: Envelope): { pkiId: PkiId; cert: PeerIdentity; verifier: IdentityVerifier | undefined } {
    const m = parseGossipMessage(env.payload);
    if (m.content.case !== "peerIdentity") {
      throw new GossipError(ErrorCode.MalformedMessage, `Got a non-identity message: ${m.content.case ?? "nothing"} aborting`);
    }
    const { pkiId, cert } = m.content.value;
    const c = this.init.crypto;
    let computed: PkiId;
    try {
      computed = c.pkiIdOf(cert);
    } catch (e) {
      throw GossipError.from(e, ErrorCode.InvalidIdentity);
    }
    if (!bytesEqual(computed, pkiId)) throw new GossipError(ErrorCode.PkiIdMismatch, "identity doesn't match the computed pkiID");
    const held = this.init.mapper.verifierOf(hexOf(pkiId), cert);
    let verifier = held;
    try {
      // The secret envelope too, when present (Fabric's Verify): else we would store and serve an item real peers refuse.
      verifyEnvelope(c, cert, env, held);
      // Validated after the signature, as Fabric does (verifierOf validates).
      if (held === undefined) verifier = validatedVerifier(c, cert);
    } catch (e) {
      throw GossipError.from(e, ErrorCode.BadSignature);
    }
    return { pkiId, cert, verifier };
  }

  private schedule(fn: () => void, ms: number): void {
    if (this.stopped) return;
    const t = this.init.clock.setTimeout(() => {
      this.timers.delete(t);
      fn();
    }, ms);
    this.timers.add(t);
  }
}
