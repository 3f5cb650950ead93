import { createHash } from "node:crypto";
import { create, toBinary } from "@bufbuild/protobuf";
import { decodeMessage } from "../codec/index.js";
import { type SerializedIdentity, SerializedIdentitySchema } from "../gen/msp/identities_pb.js";
import { ErrorCode, GossipError } from "./errors.js";

/** A peer's PKI-ID: SHA-256 of its MSP ID followed by its certificate bytes (32 bytes). */
export type PkiId = Uint8Array;

/** A peer's serialized identity: a marshalled `msp.SerializedIdentity`. */
export type PeerIdentity = Uint8Array;

/** A peer as the caller knows it: where to dial, and, if known, who should answer. */
export interface RemotePeer {
  /** `host:port` to dial. */
  readonly endpoint: string;
  /** The PKI-ID expected at `endpoint`; empty or absent when unknown. */
  readonly pkiId?: PkiId;
}

/** Serializes `{mspid, id_bytes}` as Fabric's `msp.SerializedIdentity`. */
export function serializeIdentity(mspId: string, idBytes: Uint8Array): PeerIdentity {
  return toBinary(SerializedIdentitySchema, create(SerializedIdentitySchema, { mspid: mspId, idBytes }));
}

/**
 * Parses a serialized identity. Throws {@link ErrorCode.InvalidIdentity} when
 * the bytes are not a SerializedIdentity with an MSP ID and identity bytes.
 */
export function parseIdentity(identity: PeerIdentity): { mspId: string; idBytes: Uint8Array } {
  let parsed: SerializedIdentity;
  try {
    parsed = decodeMessage<SerializedIdentity>(SerializedIdentitySchema, identity);
  } catch (e) {
    throw new GossipError(ErrorCode.InvalidIdentity, "identity is not a serialized msp.SerializedIdentity", {
      cause: e,
    });
  }
  if (parsed.mspid === "" || parsed.idBytes.length === 0) {
    throw new GossipError(ErrorCode.InvalidIdentity, "identity has an empty MSP ID or empty identity bytes");
  }
  return { mspId: parsed.mspid, idBytes: parsed.idBytes };
}

/** Fabric's PKI-ID of a serialized identity: SHA-256(mspid ‖ id_bytes), no separator. */
export function pkiIdOfIdentity(identity: PeerIdentity): PkiId {
  const { mspId, idBytes } = parseIdentity(identity);
  return new Uint8Array(createHash("sha256").update(mspId, "utf8").update(idBytes).digest());
}

/**
 * The key under which a {@link RemotePeer} may carry the lower-case hex of
 * its (non-empty) `pkiId`, for a layer that keeps peers by hex and makes
 * their bytes only on demand (membership sends to thousands of members): the
 * comm then finds the peer's connection by it without reading `pkiId`,
 * which may be a getter making the bytes. The carrier guarantees that it is
 * the hex of `pkiId`.
 *
 * @private Internal to gossip-connect's layers.
 */
export const remotePkiHex: unique symbol = Symbol("gossip-connect.remotePkiHex");

/** A {@link RemotePeer} that carries its PKI-ID's hex (see {@link remotePkiHex}). */
export interface HexTaggedPeer extends RemotePeer {
  readonly [remotePkiHex]: string;
}

/** The hex of `peer`'s PKI-ID (carried, or computed), or "" when it has none. */
export function peerPkiHex(peer: RemotePeer): string {
  const tagged = (peer as Partial<HexTaggedPeer>)[remotePkiHex];
  if (tagged !== undefined) return tagged;
  const pki = peer.pkiId;
  return pki === undefined || pki.length === 0 ? "" : pkiIdHex(pki);
}

/** Lower-case hex of a PKI-ID (Fabric's textual form; also our map key). */
export function pkiIdHex(pkiId: Uint8Array | undefined): string {
  if (pkiId === undefined) return "";
  // Every send looks its peer up by hex PKI-ID; senders reuse their RemotePeer
  // objects, so the hex of the same array is cached. The cached hex is checked
  // against the bytes, so that an array changed in place is not mistaken for
  // its past (no copy of the bytes is kept: a membership view sends to
  // thousands of PKI-IDs, and a copy per entry cost ~300 bytes).
  const cached = hexCache.get(pkiId);
  if (cached !== undefined && hexMatches(cached, pkiId)) return cached;
  const hex = hexOfBytes(pkiId);
  hexCache.set(pkiId, hex);
  return hex;
}

/**
 * Tells {@link pkiIdHex} that `hex` is the hex of `pkiId` (when it is), so
 * that a layer keeping both for long, as membership's view does for every
 * member, holds one string per peer instead of getting a second one made on
 * the first send to it.
 *
 * @private Internal to gossip-connect's layers.
 */
export function rememberPkiIdHex(pkiId: Uint8Array, hex: string): void {
  if (hexMatches(hex, pkiId)) hexCache.set(pkiId, hex);
}

let scratch = Buffer.allocUnsafeSlow(128);

/**
 * Lower-case hex of `bytes`, neither cached nor looked up: for bytes that
 * live briefly (PKI-IDs parsed out of messages), where {@link pkiIdHex}'s
 * cache would cost a weak entry each. No Buffer is made around `bytes`, and
 * `bytes.buffer` is not read: for a small typed array whose contents V8
 * keeps inside the object, reading it allocates a separate ArrayBuffer for
 * good (~200 bytes per kept PKI-ID).
 *
 * @private Internal to gossip-connect's layers.
 */
export function hexOfBytes(bytes: Uint8Array): string {
  const n = 2 * bytes.length;
  if (scratch.length < n) scratch = Buffer.allocUnsafeSlow(n);
  for (let i = 0; i < bytes.length; i++) {
    const b = bytes[i] as number;
    scratch[2 * i] = hexDigit[b >> 4] as number;
    scratch[2 * i + 1] = hexDigit[b & 15] as number;
  }
  return scratch.toString("latin1", 0, n);
}

const hexCache = new WeakMap<Uint8Array, string>();
const hexDigit = Array.from("0123456789abcdef", (c) => c.charCodeAt(0));

/** True when `hex` is the lower-case hex of `bytes`. */
export function hexMatches(hex: string, bytes: Uint8Array): boolean {
  if (hex.length !== 2 * bytes.length) return false;
  for (let i = 0; i < bytes.length; i++) {
    const b = bytes[i] as number;
    if (hex.charCodeAt(2 * i) !== hexDigit[b >> 4] || hex.charCodeAt(2 * i + 1) !== hexDigit[b & 15]) return false;
  }
  return true;
}

/** Value of a hex digit's char code (either case), or -1. */
function hexValue(c: number): number {
  if (c >= 48 && c <= 57) return c - 48;
  const lower = c | 0x20;
  return lower >= 97 && lower <= 102 ? lower - 87 : -1;
}

/**
 * Parses a hex PKI-ID into a small array of its own (membership makes one
 * per send from the hex it keeps, so no Buffer and no copy). Throws
 * `TypeError` for odd length or non-hex characters.
 */
export function pkiIdFromHex(hex: string): PkiId {
  const out = new Uint8Array(hex.length >>> 1);
  if (hex.length % 2 === 0) {
    let i = 0;
    for (; i < out.length; i++) {
      const hi = hexValue(hex.charCodeAt(2 * i));
      const lo = hexValue(hex.charCodeAt(2 * i + 1));
      if ((hi | lo) < 0) break;
      out[i] = (hi << 4) | lo;
    }
    if (i === out.length) return out;
  }
  throw new TypeError(`not a hex PKI-ID: ${JSON.stringify(hex)}`);
}

/** Bytes a buffer may hold beyond a view of it that is kept as it is (see {@link spansItsBuffer}). */
const maxSlackBytes = 256;

/**
 * True when `bytes` is (nearly) all of its buffer: at most 256 bytes, and
 * at most its own size, beyond it. Keeping such a view keeps little else
 * alive, so layers that hold bytes long (the identity store, membership)
 * keep it instead of a copy, and two of them holding the same view hold
 * one copy of the bytes.
 */
export function spansItsBuffer(bytes: Uint8Array): boolean {
  const slack = bytes.buffer.byteLength - bytes.byteLength;
  return slack <= maxSlackBytes && slack <= bytes.byteLength;
}

/** Byte-wise equality. */
export function bytesEqual(a: Uint8Array | undefined, b: Uint8Array | undefined): boolean {
  if (a === b) return true;
  if (a === undefined || b === undefined || a.length !== b.length) return false;
  // Two views of the same bytes (kept identities are views made on each read: see core/byte-span.ts).
  if (a.buffer === b.buffer && a.byteOffset === b.byteOffset) return true;
  for (let i = 0; i < a.length; i++) {
    if (a[i] !== b[i]) return false;
  }
  return true;
}

/** SHA-256, as Fabric hashes TLS certificates and identities. */
export function sha256(data: Uint8Array): Uint8Array {
  return new Uint8Array(createHash("sha256").update(data).digest());
}
