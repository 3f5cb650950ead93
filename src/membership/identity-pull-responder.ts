/**
 * The responder side of Fabric's identity pull (§4.2): a Hello is answered
 * with a DataDigest of the identities the requester may see (Fabric's egress
 * filter by its organization), a DataRequest carrying a remembered Hello
 * nonce with a DataUpdate of the signed PeerIdentity messages asked for,
 * both on the connection the request came on. Digests are raw PKI-IDs.
 */
import { create } from "@bufbuild/protobuf";
import type { Clock } from "../core/clock.js";
import type { CryptoService } from "../core/crypto.js";
import { decodeEnvelope } from "../core/envelope.js";
import { ErrorCode, GossipError } from "../core/errors.js";
import type { ReceivedMessage } from "../core/received-message.js";
import {
  DataDigestSchema,
  DataUpdateSchema,
  type Envelope,
  type GossipMessage,
  GossipMessage_Tag,
  GossipMessageSchema,
  PullMsgType,
} from "../gen/gossip/message_pb.js";
import type { MembershipConfig } from "./config.js";
import { hex as hexOf } from "./hex.js";
import type { IdentityMapper, PullItems } from "./identity-mapper.js";
import { bytesOf } from "./owned-bytes.js";
import { joinIdentity } from "./signed-identity.js";

/** An identity pull message: unsigned, tag EMPTY, outer nonce 0 (the pull nonce is the inner one). */
export function pullMessage(content: GossipMessage["content"]): GossipMessage {
  return create(GossipMessageSchema, { tag: GossipMessage_Tag.EMPTY, content });
}

/** What the responder needs. */
export interface IdentityPullResponderInit {
  readonly crypto: CryptoService;
  readonly mapper: IdentityMapper;
  readonly clock: Clock;
  readonly config: MembershipConfig;
  readonly selfOrg: string;
  /**
   * The signed PeerIdentity messages we hold, by PKI-ID hex: each Envelope's
   * bytes without the identity, which `mapper` holds (read only here).
   */
  readonly items: PullItems;
  /** External endpoint of a member (alive, dead, or ourselves), undefined if unknown. */
  readonly externalEndpointOf: (pkiHex: string) => string | undefined;
  /** Whether the sender (hex PKI-ID) may still cost us `n` units of work now: its budget. */
  readonly afford: (sender: string, n: number) => boolean;
  readonly refused: (error: GossipError, from: ReceivedMessage) => void;
  /** Answers on the connection `rm` came on; false when dropped. */
  readonly reply: (rm: ReceivedMessage, message: GossipMessage) => boolean;
  readonly sent: () => void;
}

/** Answers Hellos and DataRequests of IDENTITY_MSG. */
export class IdentityPullResponder {
  /** Hello nonces we answered, with when they were remembered (insertion order = time order). */
  private readonly answered = new Map<bigint, number>();

  constructor(private readonly init: IdentityPullResponderInit) {}

  /** A Hello: remember its nonce (requestWaitTime) and answer with the digest the requester may see. */
  onHello(rm: ReceivedMessage, nonce: bigint): void {
    const now = this.init.clock.now();
    this.forgetOldHellos(now);
    // A Hello costs a table entry and an answer: within the sender's budget, so one peer cannot fill the table.
    if (!this.init.afford(rm.connection.pkiIdHex, 1)) {
      this.init.refused(new GossipError(ErrorCode.RateLimited, "Hellos over the peer's budget"), rm);
      return;
    }
    if (this.answered.size >= 4096) return; // many peers together: still bounded
    this.answered.delete(nonce); // a repeated nonce moves to the end: insertion order stays time order
    this.answered.set(nonce, now);
    const digests = this.egress(rm).map((hex) => Buffer.from(hex, "hex"));
    if (digests.length === 0) return;
    const digest = pullMessage({ case: "dataDig", value: create(DataDigestSchema, { nonce, digests, msgType: PullMsgType.IDENTITY_MSG }) });
    this.answer(rm, digest);
  }

  /** A DataRequest carrying a remembered Hello nonce (from anyone): answer with the requested items it may see. */
  onRequest(rm: ReceivedMessage, nonce: bigint, digests: Uint8Array[]): void {
    this.forgetOldHellos(this.init.clock.now());
    if (!this.answered.has(nonce)) return;
    // Each answer costs us work: within the sender's budget, or one Hello would buy any number of updates.
    if (!this.init.afford(rm.connection.pkiIdHex, 1)) {
      this.init.refused(new GossipError(ErrorCode.RateLimited, "DataRequests over the peer's budget"), rm);
      return;
    }
    const allowed = new Set(this.egress(rm));
    const data: Envelope[] = [];
    for (const d of digests.slice(0, this.init.config.maxMembershipResponseEntries)) {
      const hex = hexOf(d);
      const item = this.init.items.get(hex);
      const identity = item === undefined ? undefined : this.init.mapper.peekIdentity(hex);
      if (item !== undefined && identity !== undefined && allowed.has(hex))
        data.push(decodeEnvelope(joinIdentity(bytesOf(item), identity)));
    }
    if (data.length === 0) return;
    this.answer(
      rm,
      pullMessage({ case: "dataUpdate", value: create(DataUpdateSchema, { nonce, data, msgType: PullMsgType.IDENTITY_MSG }) }),
    );
  }

  private answer(rm: ReceivedMessage, message: GossipMessage): void {
    if (this.init.reply(rm, message)) this.init.sent();
    else this.init.refused(new GossipError(ErrorCode.Overflow, "the requester does not read its earlier answers"), rm);
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
    const items = this.init.items.keys();
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
}
