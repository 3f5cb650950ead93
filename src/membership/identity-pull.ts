/**
 * Fabric's identity pull (cert store, §4.2): peers exchange signed
 * PeerIdentity messages through Hello → DataDigest → DataRequest → DataUpdate
 * (IDENTITY_MSG), so that we can verify alive messages of peers that never
 * connected to us. Both sides: the initiator (a round every pull interval)
 * and the responder (answers on the connection the request came on).
 */
import { create } from "@bufbuild/protobuf";
import type { Clock } from "../core/clock.js";
import type { Comm } from "../core/comm.js";
import type { CryptoService } from "../core/crypto.js";
import { parseGossipMessage } from "../core/envelope.js";
import { ErrorCode, GossipError } from "../core/errors.js";
import { bytesEqual, type PeerIdentity, type PkiId, pkiIdHex } from "../core/identity.js";
import type { ReceivedMessage } from "../core/received-message.js";
import {
  DataDigestSchema,
  DataRequestSchema,
  DataUpdateSchema,
  type Envelope,
  type GossipMessage,
  GossipMessage_Tag,
  GossipMessageSchema,
  GossipHelloSchema,
  PeerIdentitySchema,
  PullMsgType,
} from "../gen/gossip/message_pb.js";
import type { MembershipConfig } from "./config.js";
import { hex as hexOf } from "./hex.js";
import type { IdentityMapper } from "./identity-mapper.js";
import { pickRandom } from "./routing.js";

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
  /** Whether the sender (hex PKI-ID) may still cost us `n` signature checks now (its budget). */
  readonly afford: (sender: string, n: number) => boolean;
  /** A refused DataUpdate (or item) and why. */
  readonly refused: (error: GossipError, from: ReceivedMessage) => void;
  readonly sent: () => void;
}

interface Round {
  /** Hello nonce → PKI-ID hex of the peer it went to. */
  readonly hellos: Map<bigint, { readonly pkiId: PkiId; readonly endpoint: string }>;
  /** Item (hex) → peers (hello nonces) that offered it. */
  readonly offers: Map<string, bigint[]>;
  phase: "digests" | "updates" | "done";
}

/** A random unsigned 64-bit nonce from the injected random. */
export function randomNonce(random: () => number): bigint {
  const hi = BigInt(Math.floor(random() * 2 ** 32));
  const lo = BigInt(Math.floor(random() * 2 ** 32));
  const n = (hi << 32n) | lo;
  return n === 0n ? 1n : n;
}

function pullMessage(content: GossipMessage["content"]): GossipMessage {
  return create(GossipMessageSchema, { tag: GossipMessage_Tag.EMPTY, content });
}

/** The identity pull engine (initiator and responder). */
export class IdentityPull {
  /** Signed PeerIdentity messages by PKI-ID hex: ours and the pulled ones. */
  private readonly store = new Map<string, Envelope>();
  /** Hello nonces we answered, with when they were remembered. */
  private readonly answered = new Map<bigint, number>();
  private round: Round | undefined;
  private readonly timers = new Set<unknown>();
  private stopped = false;

  constructor(private readonly init: IdentityPullInit) {
    const { crypto } = init;
    const pkiId = crypto.pkiIdOf(crypto.identity);
    const own = pullMessage({
      case: "peerIdentity",
      value: create(PeerIdentitySchema, { pkiId, cert: crypto.identity }),
    });
    this.store.set(pkiIdHex(pkiId), init.comm.sign(own));
    this.schedule(() => this.tick(), init.config.pullIntervalMs);
  }

  /** Identities held for the pull (hex PKI-IDs). */
  items(): string[] {
    return [...this.store.keys()];
  }

  /** Forgets a pulled identity (the mapper deleted it). Ours stays. */
  remove(pkiId: PkiId): void {
    const hex = pkiIdHex(pkiId);
    if (hex !== pkiIdHex(this.init.crypto.pkiIdOf(this.init.crypto.identity))) this.store.delete(hex);
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
    if (c.case === "hello") this.onHello(rm, c.value.nonce);
    else if (c.case === "dataDig") this.onDigest(rm, c.value.nonce, c.value.digests);
    else if (c.case === "dataReq") this.onRequest(rm, c.value.nonce, c.value.digests);
    else if (c.case === "dataUpdate") this.onUpdate(rm, c.value.nonce, c.value.data);
  }

  // --- initiator -------------------------------------------------------------

  private tick(): void {
    if (this.stopped) return;
    this.startRound();
    this.schedule(() => this.tick(), this.init.config.pullIntervalMs);
  }

  private startRound(): void {
    const { config, random } = this.init;
    const peers = pickRandom(this.init.targets(), config.pullPeerNum, random);
    if (peers.length === 0) return;
    const round: Round = {
      hellos: new Map(),
      offers: new Map(),
      phase: "digests",
    };
    this.round = round;
    for (const p of peers) {
      const nonce = randomNonce(random);
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
    this.schedule(() => this.request(round), config.digestWaitTimeMs);
  }

  private onDigest(_rm: ReceivedMessage, nonce: bigint, digests: Uint8Array[]): void {
    const round = this.round;
    if (round === undefined || round.phase !== "digests" || !round.hellos.has(nonce)) return;
    const max = this.init.config.maxMembershipResponseEntries;
    for (const d of digests.slice(0, max)) {
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
    for (const [nonce, digests] of byNonce) {
      const to = round.hellos.get(nonce);
      if (to === undefined) continue;
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
      }
    }, this.init.config.responseWaitTimeMs);
  }

  private onUpdate(rm: ReceivedMessage, nonce: bigint, data: Envelope[]): void {
    if (data.length > this.init.config.maxMembershipResponseEntries) {
      this.init.refused(new GossipError(ErrorCode.MessageTooLarge, `identity update with ${data.length} items`), rm);
      return;
    }
    const solicited = this.round !== undefined && this.round.phase === "updates" && this.round.hellos.has(nonce);
    if (!solicited && !this.init.afford(pkiIdHex(rm.connection.pkiId), data.length)) {
      this.init.refused(new GossipError(ErrorCode.RateLimited, "unsolicited identity update over the peer's budget"), rm);
      return;
    }
    const items: { pkiId: PkiId; cert: PeerIdentity; env: Envelope }[] = [];
    try {
      for (const env of data) items.push({ ...this.checkItem(env), env });
    } catch (e) {
      this.init.refused(GossipError.from(e, ErrorCode.MalformedMessage), rm);
      return;
    }
    for (const it of items) {
      try {
        this.init.mapper.put(it.pkiId, it.cert);
      } catch (e) {
        this.init.refused(GossipError.from(e, ErrorCode.InvalidIdentity), rm);
        continue;
      }
      if (solicited) this.store.set(hexOf(it.pkiId), it.env);
    }
  }

  /** Fabric's ingress check of one DataUpdate item; throws. */
  private checkItem(env: Envelope): { pkiId: PkiId; cert: PeerIdentity } {
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
    if (env.signature.length === 0) throw new GossipError(ErrorCode.BadSignature, "Empty signature");
    try {
      c.verify(cert, env.signature, env.payload);
      c.validateIdentity(cert);
    } catch (e) {
      throw GossipError.from(e, ErrorCode.BadSignature);
    }
    return { pkiId, cert };
  }

  // --- responder -------------------------------------------------------------

  private onHello(rm: ReceivedMessage, nonce: bigint): void {
    const now = this.init.clock.now();
    this.forgetOldHellos(now);
    if (this.answered.size >= 4096) return; // a Hello flood must not grow the table without bound
    this.answered.set(nonce, now);
    const digests = this.egress(rm).map((hex) => Buffer.from(hex, "hex"));
    if (digests.length === 0) return;
    void rm.respond(
      pullMessage({
        case: "dataDig",
        value: create(DataDigestSchema, {
          nonce,
          digests,
          msgType: PullMsgType.IDENTITY_MSG,
        }),
      }),
    );
    this.init.sent();
  }

  private onRequest(rm: ReceivedMessage, nonce: bigint, digests: Uint8Array[]): void {
    this.forgetOldHellos(this.init.clock.now());
    if (!this.answered.has(nonce)) return;
    const allowed = new Set(this.egress(rm));
    const data: Envelope[] = [];
    for (const d of digests.slice(0, this.init.config.maxMembershipResponseEntries)) {
      const hex = hexOf(d);
      const env = this.store.get(hex);
      if (env !== undefined && allowed.has(hex)) data.push(env);
    }
    if (data.length === 0) return;
    void rm.respond(
      pullMessage({
        case: "dataUpdate",
        value: create(DataUpdateSchema, {
          nonce,
          data,
          msgType: PullMsgType.IDENTITY_MSG,
        }),
      }),
    );
    this.init.sent();
  }

  /** The items the requester may see (Fabric's egress filter by the requester's organization). */
  private egress(rm: ReceivedMessage): string[] {
    let org: string | undefined;
    try {
      org = this.init.crypto.organizationOf(rm.connection.identity);
    } catch {
      org = undefined;
    }
    if (org === undefined) return []; // "Failed determining organization of"
    const items = [...this.store.keys()];
    if (org === this.init.selfOrg) return items;
    return items.filter((hex) => {
      const ep = this.init.externalEndpointOf(hex);
      if (ep === undefined || ep === "") return false;
      const itemOrg = this.init.mapper.peekOrganization(hex);
      return itemOrg === this.init.selfOrg || itemOrg === org;
    });
  }

  private forgetOldHellos(now: number): void {
    for (const [n, at] of this.answered) {
      if (now - at > this.init.config.requestWaitTimeMs) this.answered.delete(n);
      else break; // insertion order = time order
    }
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
