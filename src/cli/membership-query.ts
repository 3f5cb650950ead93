/**
 * What `gossip-connect members` does on the wire, on the comm's public API:
 * a MembershipRequest carrying our freshly signed alive message, the
 * MembershipResponse with the same nonce, an identity pull for the entries
 * whose identity we lack, and the verification of every entry.
 */
import { create } from "@bufbuild/protobuf";
import type { Comm } from "../core/comm.js";
import type { CryptoService } from "../core/crypto.js";
import { parseGossipMessage, verifyEnvelope } from "../core/envelope.js";
import { bytesEqual, type PeerIdentity, pkiIdHex, type RemotePeer } from "../core/identity.js";
import type { ReceivedMessage } from "../core/received-message.js";
import {
  DataRequestSchema,
  type Envelope,
  GossipHelloSchema,
  type GossipMessage,
  GossipMessage_Tag,
  GossipMessageSchema,
  MembershipRequestSchema,
  type MembershipResponse,
  PullMsgType,
} from "../gen/gossip/message_pb.js";
import { aliveMessage, internalEndpointOf, signAlive } from "../membership/alive-message.js";

/** What we say about ourselves in the request. */
export interface SelfDescription {
  /** Our external endpoint (`Member.endpoint`); "" = none. */
  readonly externalEndpoint: string;
  /** Our internal endpoint (secret envelope, only for a peer of our org). */
  readonly internalEndpoint: string;
  /** inc_num: wall-clock ns. */
  readonly incNum: bigint;
  readonly seqNum: bigint;
}

/**
 * Our alive message, signed, with `identity` and (unless `withSecret` is
 * false) a signed secret envelope holding the internal endpoint: what a
 * Fabric peer's Connect puts in `self_information`. Built by the membership
 * layer's own builder.
 */
export function signedAlive(crypto: CryptoService, self: SelfDescription, withSecret: boolean): Envelope {
  const message = aliveMessage({
    endpoint: self.externalEndpoint,
    pkiId: crypto.pkiIdOf(crypto.identity),
    metadata: new Uint8Array(0),
    timestamp: { incNum: self.incNum, seqNum: self.seqNum },
    identity: crypto.identity,
  });
  return signAlive(crypto, message, withSecret ? self.internalEndpoint : "");
}

/** A MembershipRequest (tag EMPTY, `known` empty), sent unsigned. */
export function membershipRequest(nonce: bigint, selfInformation: Envelope): GossipMessage {
  return create(GossipMessageSchema, {
    nonce,
    tag: GossipMessage_Tag.EMPTY,
    content: { case: "memReq", value: create(MembershipRequestSchema, { selfInformation }) },
  });
}

/** How an entry's signature fared. */
export type SignatureCheck = "valid" | "invalid" | "unverified";

/** One entry of a MembershipResponse, parsed and checked. */
export interface MemberEntry {
  readonly pkiId: string;
  /** MSP ID from the member's identity, when known. */
  readonly organization: string | undefined;
  readonly endpoint: string;
  /** From the secret envelope; undefined when not disclosed (or not verifiable). */
  readonly internalEndpoint: string | undefined;
  readonly state: "alive" | "dead";
  readonly incNum: bigint;
  readonly seqNum: bigint;
  readonly signature: SignatureCheck;
  /** Why the signature is not `valid`. */
  readonly note: string | undefined;
  /** Where the identity that verified it came from. */
  readonly identitySource: "carried" | "handshake" | "pulled" | "self" | undefined;
  /** True for the responder's own entry (the last alive one). */
  readonly responder: boolean;
}

/** Identities we hold, by hex PKI-ID, with where each came from. */
export type IdentityBook = Map<string, { readonly identity: PeerIdentity; readonly source: "handshake" | "pulled" | "self" }>;

interface RawEntry {
  readonly env: Envelope;
  readonly state: "alive" | "dead";
  readonly responder: boolean;
}

/** The entries of a response, in order (alive, then dead), or throws what Fabric aborts on. */
export function responseEntries(res: MembershipResponse): RawEntry[] {
  const alive = res.alive.map((env, i) => ({ env, state: "alive" as const, responder: i === res.alive.length - 1 }));
  const dead = res.dead.map((env) => ({ env, state: "dead" as const, responder: false }));
  return [...alive, ...dead];
}

/** The PKI-IDs (hex) of entries whose alive message carries no identity we can use and that we do not hold. */
export function missingIdentities(crypto: CryptoService, res: MembershipResponse, book: IdentityBook): string[] {
  const out: string[] = [];
  for (const e of responseEntries(res)) {
    const alive = aliveOf(e.env);
    if (!alive) continue;
    const hex = pkiIdHex(alive.membership?.pkiId);
    if (book.has(hex) || usableCarried(crypto, alive.identity, alive.membership?.pkiId)) continue;
    out.push(hex);
  }
  return out;
}

function aliveOf(env: Envelope) {
  try {
    const m = parseGossipMessage(env.payload);
    return m.content.case === "aliveMsg" ? m.content.value : undefined;
  } catch {
    return undefined;
  }
}

function usableCarried(crypto: CryptoService, identity: Uint8Array | undefined, pkiId: Uint8Array | undefined): boolean {
  if (!identity || identity.length === 0) return false;
  try {
    crypto.validateIdentity(identity);
    return bytesEqual(crypto.pkiIdOf(identity), pkiId);
  } catch {
    return false;
  }
}

/**
 * Checks every entry: a well-formed alive message; the identity it carries
 * (validated against our trusted CAs, PKI-ID recomputed) or one from `book`;
 * the signature over the received payload and the secret envelope's.
 */
export function checkEntries(crypto: CryptoService, res: MembershipResponse, book: IdentityBook): MemberEntry[] {
  return responseEntries(res).map((e) => checkEntry(crypto, e, book));
}

function checkEntry(crypto: CryptoService, e: RawEntry, book: IdentityBook): MemberEntry {
  const alive = aliveOf(e.env);
  const base = { state: e.state, responder: e.responder };
  if (!alive?.membership) {
    return {
      ...base,
      pkiId: "",
      organization: undefined,
      endpoint: "",
      internalEndpoint: undefined,
      incNum: 0n,
      seqNum: 0n,
      signature: "invalid",
      note: "not an alive message",
      identitySource: undefined,
    };
  }
  const pkiId = alive.membership.pkiId;
  const hex = pkiIdHex(pkiId);
  let identity: PeerIdentity | undefined;
  let source: MemberEntry["identitySource"];
  let note: string | undefined;
  if (alive.identity.length > 0) {
    try {
      crypto.validateIdentity(alive.identity);
      if (!bytesEqual(crypto.pkiIdOf(alive.identity), pkiId)) throw new Error("identity doesn't match the computed PKI-ID");
      identity = alive.identity;
      source = "carried";
    } catch (err) {
      note = `carried identity refused: ${(err as Error).message}`;
    }
  }
  if (identity === undefined) {
    const known = book.get(hex);
    if (known) {
      identity = known.identity;
      source = known.source;
    }
  }
  let organization: string | undefined;
  if (identity !== undefined) {
    try {
      organization = crypto.organizationOf(identity);
    } catch {
      organization = undefined;
    }
  }
  let signature: SignatureCheck = "unverified";
  let internalEndpoint: string | undefined;
  if (identity === undefined) {
    note ??= "identity unknown (not carried, not pulled)";
  } else {
    try {
      verifyEnvelope(crypto, identity, e.env);
      signature = "valid";
      if (e.env.secretEnvelope) internalEndpoint = internalEndpointOf(e.env) || undefined;
    } catch (err) {
      signature = "invalid";
      note = (err as Error).message;
    }
  }
  return {
    ...base,
    pkiId: hex,
    organization,
    endpoint: alive.membership.endpoint,
    internalEndpoint,
    incNum: alive.timestamp?.incNum ?? 0n,
    seqNum: alive.timestamp?.seqNum ?? 0n,
    signature,
    note,
    identitySource: source,
  };
}

/** Resolves with the first message of `sub` accepted by `pred`, or undefined after `ms` (or when `cut` settles). */
export async function nextMatching(
  sub: AsyncIterable<ReceivedMessage>,
  ms: number,
  cut?: Promise<unknown>,
): Promise<ReceivedMessage | undefined> {
  const it = sub[Symbol.asyncIterator]();
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<undefined>((resolve) => {
    timer = setTimeout(() => resolve(undefined), ms);
  });
  try {
    const r = await Promise.race([it.next(), timeout, ...(cut ? [cut.then(() => undefined)] : [])]);
    return r === undefined || r.done ? undefined : r.value;
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Fabric's identity pull, initiator side, with one peer: Hello (random
 * nonce, IDENTITY_MSG), its DataDigest within `digestWaitMs`, a DataRequest
 * for the `wanted` PKI-IDs it offers, its DataUpdate within
 * `responseWaitMs`. Every PeerIdentity must parse, match its PKI-ID, be
 * trusted and be signed by its owner, or the whole update is dropped (as
 * Fabric does). Returns how many identities were added to `book`.
 */
export async function pullIdentities(
  comm: Comm,
  crypto: CryptoService,
  peer: RemotePeer,
  wanted: readonly string[],
  book: IdentityBook,
  timing: { digestWaitMs: number; responseWaitMs: number },
  nonce: bigint,
): Promise<number> {
  const pullOf = (m: ReceivedMessage) => {
    const c = m.message.content;
    return (c.case === "dataDig" || c.case === "dataUpdate") && c.value.nonce === nonce && c.value.msgType === PullMsgType.IDENTITY_MSG;
  };
  const sub = comm.accept(pullOf);
  try {
    await comm.send(
      create(GossipMessageSchema, {
        tag: GossipMessage_Tag.EMPTY,
        content: { case: "hello", value: create(GossipHelloSchema, { nonce, msgType: PullMsgType.IDENTITY_MSG }) },
      }),
      peer,
    );
    const digest = await nextMatching(sub, timing.digestWaitMs);
    if (digest?.message.content.case !== "dataDig") return 0;
    const offered = new Set(digest.message.content.value.digests.map((d) => pkiIdHex(d)));
    const ask = wanted.filter((w) => offered.has(w));
    if (ask.length === 0) return 0;
    await comm.send(
      create(GossipMessageSchema, {
        tag: GossipMessage_Tag.EMPTY,
        content: {
          case: "dataReq",
          value: create(DataRequestSchema, { nonce, digests: ask.map((h) => Buffer.from(h, "hex")), msgType: PullMsgType.IDENTITY_MSG }),
        },
      }),
      peer,
    );
    const update = await nextMatching(sub, timing.responseWaitMs);
    if (update?.message.content.case !== "dataUpdate") return 0;
    const learned: { hex: string; identity: PeerIdentity }[] = [];
    for (const env of update.message.content.value.data) {
      let m: GossipMessage;
      try {
        m = parseGossipMessage(env.payload);
      } catch {
        return 0;
      }
      if (m.content.case !== "peerIdentity") return 0;
      const { pkiId, cert } = m.content.value;
      try {
        crypto.validateIdentity(cert);
        if (!bytesEqual(crypto.pkiIdOf(cert), pkiId)) return 0;
        verifyEnvelope(crypto, cert, env);
      } catch {
        return 0;
      }
      learned.push({ hex: pkiIdHex(pkiId), identity: cert });
    }
    let added = 0;
    for (const l of learned) {
      if (book.has(l.hex)) continue;
      book.set(l.hex, { identity: l.identity, source: "pulled" });
      added++;
    }
    return added;
  } finally {
    sub.close();
  }
}

/** inc_num of an entry as a date (it is the member's start time in ns), or undefined when implausible. */
export function incNumDate(incNum: bigint): string | undefined {
  const ms = incNum / 1_000_000n;
  if (ms < 946_684_800_000n || ms > 32_503_680_000_000n) return undefined; // 2000 .. 3000
  return new Date(Number(ms)).toISOString();
}
