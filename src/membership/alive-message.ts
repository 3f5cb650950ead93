/**
 * Alive messages: building and signing ours, parsing and validating others'
 * (Fabric's `SignMessage` with a secret envelope, and `ValidateAliveMsg`).
 */
import { create, toBinary } from "@bufbuild/protobuf";
import { decodeMessage, mayHaveUnknownFields } from "../codec/index.js";
import type { CryptoService, IdentityVerifier } from "../core/crypto.js";
import { parseGossipMessage, serializeGossipMessage, verifyEnvelope } from "../core/envelope.js";
import { ErrorCode, GossipError } from "../core/errors.js";
import type { PeerIdentity, PkiId } from "../core/identity.js";
import {
  AliveMessageSchema,
  type Envelope,
  type GossipMessage,
  GossipMessage_Tag,
  GossipMessageSchema,
  MemberSchema,
  PeerTimeSchema,
  type Secret,
  SecretEnvelopeSchema,
  SecretSchema,
} from "../gen/gossip/message_pb.js";
import { hex } from "./hex.js";
import { type PackedTimestamp, packTimestamp, type Timestamp } from "./timestamp.js";

/** What our alive message says about us. */
export interface AliveContent {
  readonly endpoint: string;
  readonly pkiId: PkiId;
  readonly metadata: Uint8Array;
  readonly timestamp: Timestamp;
  /** Our serialized identity, during the publish-cert period; absent after. */
  readonly identity?: PeerIdentity | undefined;
}

/** A received alive message, parsed and structurally checked (not yet authenticated). */
export interface ParsedAlive {
  /** The Envelope as received: its payload holds the signed bytes. */
  readonly envelope: Envelope;
  readonly pkiId: PkiId;
  readonly pkiHex: string;
  readonly endpoint: string;
  readonly metadata: Uint8Array;
  readonly timestamp: Timestamp;
  /** The identity carried in the message, or empty. */
  readonly identity: Uint8Array;
  /** The internal endpoint of the secret envelope, or "" (unverified until {@link validateAlive}). */
  readonly internalEndpoint: string;
}

/** The GossipMessage of an alive message (tag EMPTY, nonce 0). */
export function aliveMessage(c: AliveContent): GossipMessage {
  return create(GossipMessageSchema, {
    tag: GossipMessage_Tag.EMPTY,
    content: {
      case: "aliveMsg",
      value: create(AliveMessageSchema, {
        membership: create(MemberSchema, {
          endpoint: c.endpoint,
          metadata: c.metadata,
          pkiId: c.pkiId,
        }),
        timestamp: create(PeerTimeSchema, {
          incNum: c.timestamp.incNum,
          seqNum: c.timestamp.seqNum,
        }),
        identity: c.identity ?? new Uint8Array(0),
      }),
    },
  });
}

/**
 * Signs an alive message as Fabric does: the serialized GossipMessage signed
 * by `crypto`, plus a signed secret envelope with `internalEndpoint` when it
 * is non-empty.
 */
export function signAlive(crypto: CryptoService, message: GossipMessage, internalEndpoint: string): Envelope {
  const payload = serializeGossipMessage(message);
  const env: Envelope = {
    $typeName: "gossip.Envelope",
    payload,
    signature: crypto.sign(payload),
    secretEnvelope: undefined,
  };
  if (internalEndpoint !== "") {
    const secret = toBinary(
      SecretSchema,
      create(SecretSchema, {
        content: { case: "internalEndpoint", value: internalEndpoint },
      }),
    );
    env.secretEnvelope = create(SecretEnvelopeSchema, {
      payload: secret,
      signature: crypto.sign(secret),
    });
  }
  return env;
}

/** `env` without its secret envelope (what crosses an organization boundary). */
export function withoutSecret(env: Envelope): Envelope {
  if (env.secretEnvelope === undefined) return env;
  return {
    $typeName: "gossip.Envelope",
    payload: env.payload,
    signature: env.signature,
    secretEnvelope: undefined,
  };
}

/** The internal endpoint in `env`'s secret envelope, or "" when it has none or it does not parse. */
export function internalEndpointOf(env: Envelope): string {
  const secret = env.secretEnvelope;
  if (secret === undefined || secret.payload.length === 0) return "";
  try {
    // The compiled decoder: protobuf-es' reflective fromBinary cost more than
    // the rest of parsing an alive message (every one received is parsed).
    const s = decodeMessage<Secret>(SecretSchema, secret.payload);
    return s.content.case === "internalEndpoint" ? s.content.value : "";
  } catch {
    return "";
  }
}

/**
 * `env` without unknown fields (its own or its secret envelope's): only what
 * its signer wrote and signed. The signatures cover the payloads alone, so
 * bytes that anyone on the path added beside them would otherwise be kept,
 * forwarded and served in every membership response for as long as the
 * message stays its member's newest (a relay padding others' messages).
 */
export function signedPartsOf(env: Envelope): Envelope {
  const secret = env.secretEnvelope;
  if (!mayHaveUnknownFields(env) && (secret === undefined || !mayHaveUnknownFields(secret))) return env;
  return {
    $typeName: "gossip.Envelope",
    payload: env.payload,
    signature: env.signature,
    secretEnvelope:
      secret === undefined ? undefined : create(SecretEnvelopeSchema, { payload: secret.payload, signature: secret.signature }),
  };
}

function invalid(what: string): GossipError {
  return new GossipError(ErrorCode.MalformedMessage, `Invalid alive message: ${what}`);
}

/**
 * Parses an Envelope that should hold an alive message and checks its
 * structure (Fabric: alive_msg, membership, pki_id, payload and signature
 * present; we also require the timestamp, which Fabric dereferences
 * unchecked). The result's `envelope` is {@link signedPartsOf} `envelope`.
 * Throws `MalformedMessage`.
 */
export function parseAlive(envelope: Envelope, message?: GossipMessage): ParsedAlive {
  if (envelope.payload.length === 0 || envelope.signature.length === 0) throw invalid("missing payload or signature");
  const m = message ?? parseGossipMessage(envelope.payload);
  if (m.content.case !== "aliveMsg") throw invalid(`expected an alive message, got ${m.content.case ?? "nothing"}`);
  const alive = m.content.value;
  const member = alive.membership;
  if (member === undefined || member.pkiId.length === 0) throw invalid("missing membership or PKI-ID");
  const ts = alive.timestamp;
  if (ts === undefined) throw invalid("missing timestamp");
  return new Parsed(
    signedPartsOf(envelope),
    member.pkiId,
    member.endpoint,
    member.metadata,
    { incNum: ts.incNum, seqNum: ts.seqNum },
    alive.identity,
  );
}

/**
 * A {@link ParsedAlive} whose internal endpoint is read from the secret
 * envelope when first asked for: most alive messages received are
 * duplicates, dropped on their timestamp before anyone asks.
 */
class Parsed implements ParsedAlive {
  readonly pkiHex: string;
  private internal: string | undefined;
  private packed: PackedTimestamp | undefined;

  constructor(
    readonly envelope: Envelope,
    readonly pkiId: PkiId,
    readonly endpoint: string,
    readonly metadata: Uint8Array,
    readonly timestamp: Timestamp,
    readonly identity: Uint8Array,
  ) {
    this.pkiHex = hex(pkiId);
  }

  get internalEndpoint(): string {
    this.internal ??= internalEndpointOf(this.envelope);
    return this.internal;
  }

  /** The timestamp packed, once: the view and the msgStore keep the same bigint. */
  get stamp(): PackedTimestamp {
    this.packed ??= packTimestamp(this.timestamp);
    return this.packed;
  }
}

/** The timestamp of `a` packed ({@link PackedTimestamp}); the same bigint on every call for a parsed message. */
export function stampOf(a: ParsedAlive): PackedTimestamp {
  return a instanceof Parsed ? a.stamp : packTimestamp(a.timestamp);
}

/**
 * A membership response entry, parsed as Fabric treats it (§3.7): throws
 * `MalformedMessage` (which aborts the rest of the response) when it is not
 * an alive message, or lacks the membership or timestamp Fabric dereferences
 * unchecked; returns a `MalformedMessage` error, which only skips the entry,
 * when Fabric's ValidateAliveMsg would refuse it (no PKI-ID, no signature).
 */
export function parseAliveEntry(envelope: Envelope): ParsedAlive | GossipError {
  if (envelope.payload.length === 0) throw invalid("missing payload");
  const m = parseGossipMessage(envelope.payload);
  if (m.content.case !== "aliveMsg") throw invalid(`expected an alive message, got ${m.content.case ?? "nothing"}`);
  const { membership, timestamp } = m.content.value;
  if (membership === undefined || timestamp === undefined) throw invalid("missing membership or timestamp");
  if (membership.pkiId.length === 0 || envelope.signature.length === 0) return invalid("missing PKI-ID or signature");
  return parseAlive(envelope, m);
}

/** Where {@link validateAlive} gets identities: the identity mapper. */
export interface IdentitySource {
  /** Validates and stores `identity` for `pkiId`; throws `InvalidIdentity`. */
  put(pkiId: PkiId, identity: PeerIdentity): void;
  /** The identity of `pkiId`, if known. */
  get(pkiId: PkiId): PeerIdentity | undefined;
  /** The verifier kept for `pkiHex` when its identity is `identity`, if one is kept (see `CryptoService.verifierOf`). */
  verifierOf?(pkiHex: string, identity: PeerIdentity): IdentityVerifier | undefined;
}

/**
 * Fabric's `ValidateAliveMsg`: the identity carried in the message is
 * validated and learned, else the mapper must know the PKI-ID; then the
 * signature over the received payload (and the secret envelope's) must
 * verify. Throws `InvalidIdentity`, `UnknownIdentity` or `BadSignature`.
 */
export function validateAlive(crypto: CryptoService, identities: IdentitySource, a: ParsedAlive): void {
  let identity: PeerIdentity | undefined;
  if (a.identity.length > 0) {
    identities.put(a.pkiId, a.identity);
    identity = a.identity;
  } else {
    identity = identities.get(a.pkiId);
    if (identity === undefined) {
      throw new GossipError(ErrorCode.UnknownIdentity, `Don't have certificate for ${a.pkiHex}`);
    }
  }
  try {
    verifyEnvelope(crypto, identity, a.envelope, identities.verifierOf?.(a.pkiHex, identity));
  } catch (e) {
    throw GossipError.from(e, ErrorCode.BadSignature);
  }
}
