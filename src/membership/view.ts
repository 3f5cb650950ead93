/**
 * The membership view (Fabric's id2Member, alive/dead timestamps and stored
 * alive messages): who is alive, who went silent, and the latest signed alive
 * message of each. Changes only on authenticated, strictly newer timestamps.
 */

import { wholeMs } from "../core/clock.js";
import { decodeEnvelope, envelopeBytes } from "../core/envelope.js";
import { bytesEqual, type HexTaggedPeer, type PkiId, pkiIdFromHex, rememberPkiIdHex, remotePkiHex } from "../core/identity.js";
import type { Envelope } from "../gen/gossip/message_pb.js";
import { type ParsedAlive, stampOf } from "./alive-message.js";
import { bytesOf, ownedBuffer, ownedBytes } from "./owned-bytes.js";
import { type PackedTimestamp, type Timestamp, unpackTimestamp } from "./timestamp.js";

/** A peer as the view knows it. */
export interface Member {
  readonly pkiId: PkiId;
  readonly pkiIdHex: string;
  /** External endpoint ("" if none). */
  readonly endpoint: string;
  /** Internal endpoint, "" if not disclosed to us. */
  readonly internalEndpoint: string;
  readonly metadata: Uint8Array;
  /** MSP ID from its identity, if known. */
  readonly organization: string | undefined;
  readonly timestamp: Timestamp;
  /** `clock.now()` (whole ms, see wholeMs in core/clock.ts) when a strictly newer alive message last arrived. */
  readonly lastHeardMs: number;
  readonly state: "alive" | "dead";
}

/** The kinds of membership change. */
export type MembershipEventType = "joined" | "died" | "revived" | "updated" | "removed";

/** A membership change, as {@link Membership.events} delivers it. */
export interface MembershipEvent {
  readonly type: MembershipEventType;
  readonly member: Member;
}

/**
 * A member's state inside the view. Its PKI-ID is kept as hex only (the key
 * of every map): bytes are made on use ({@link pkiIdOf}), as a kept array
 * cost ~220 bytes of heap per known peer.
 */
export interface Known {
  readonly pkiHex: string;
  endpoint: string;
  internalEndpoint: string;
  metadata: Uint8Array;
  /** Its latest timestamp, packed (read it with {@link timestampOfKnown}). */
  stamp: PackedTimestamp;
  lastHeardMs: number;
  /**
   * The latest signed alive message about it: the Envelope's bytes as
   * received, in a buffer of their own (see owned-bytes.ts), kept without a
   * Uint8Array around them (~96 bytes of heap per known peer): read them
   * with {@link frameOf}.
   */
  frame: ArrayBuffer;
}

/**
 * The PKI-ID of `k` as bytes, made from its hex (a new array each call; the
 * comm is told its hex, so that sending to it does not compute it again).
 */
export function pkiIdOf(k: { readonly pkiHex: string }): PkiId {
  const id = pkiIdFromHex(k.pkiHex);
  rememberPkiIdHex(id, k.pkiHex);
  return id;
}

/**
 * A member as a send target: it carries its hex PKI-ID for the comm (see
 * `remotePkiHex`), which finds the connection by it, and makes the PKI-ID's
 * bytes only when they are read (a dial): not on every send, as
 * {@link pkiIdOf} does (an array, its hex checked and cached in a WeakMap:
 * a few percent of a simulation's CPU, as every alive message goes to three
 * members).
 */
export class MemberPeer implements HexTaggedPeer {
  readonly [remotePkiHex]: string;
  private id: PkiId | undefined;

  constructor(
    readonly pkiHex: string,
    readonly endpoint: string,
  ) {
    this[remotePkiHex] = pkiHex;
  }

  /** The PKI-ID's bytes, made on first read (the same array after). */
  get pkiId(): PkiId {
    this.id ??= pkiIdOf(this);
    return this.id;
  }

  /** A send target for member `k` at its preferred endpoint, or at `endpoint`. */
  static of(k: Known, endpoint: string = preferredEndpoint(k)): MemberPeer {
    return new MemberPeer(k.pkiHex, endpoint);
  }
}

/** The timestamp of `k` (a new object). */
export function timestampOfKnown(k: Known): Timestamp {
  return unpackTimestamp(k.stamp);
}

/** The bytes of the stored alive message of `k` (a view made now of the kept buffer). */
export function frameOf(k: Known): Uint8Array {
  return bytesOf(k.frame);
}

/** The stored alive message of `k` as an Envelope (decoded from its frame: the same bytes go out). */
export function envelopeOf(k: Known): Envelope {
  return decodeEnvelope(frameOf(k));
}

/** The endpoint to dial a member on: internal if known, else external (Fabric's PreferredEndpoint). */
export function preferredEndpoint(m: { readonly endpoint: string; readonly internalEndpoint: string }): string {
  return m.internalEndpoint !== "" ? m.internalEndpoint : m.endpoint;
}

/** `s`, or `other` when they are equal strings: a member's internal endpoint is often its endpoint. */
function same(s: string, other: string): string {
  return s === other ? other : s;
}

/** The alive and dead members other than ourselves. */
export class View {
  private readonly members = new Map<string, Known>();
  /**
   * The dead members' entries (the others are alive): few at a time (peers
   * gone silent until they are removed), so a set made when first needed
   * rather than a state field in every entry (8 B per known peer).
   */
  private deadOnes: Set<Known> | undefined;
  /** Bumped on every change of who is alive or of a member's endpoints (caches key on it). */
  version = 0;

  /**
   * @param nameOf the string membership already holds for a hex PKI-ID, if any
   *   (so that the view, the stores and the mapper key on one string per peer)
   */
  constructor(
    private readonly selfHex: string,
    private readonly notify: (type: MembershipEventType, k: Known) => void,
    private readonly nameOf: (pkiHex: string) => string = (h) => h,
  ) {}

  private onChange(type: MembershipEventType, k: Known): void {
    this.version++;
    this.notify(type, k);
  }

  /**
   * Fabric's handleAliveMessage for an authenticated alive message: learns an
   * unknown member as alive, revives a dead one, or refreshes an alive one,
   * only when its timestamp is strictly newer. Returns whether anything changed.
   */
  handleAlive(a: ParsedAlive, now: number): boolean {
    if (a.pkiHex === this.selfHex) return false;
    const k = this.members.get(a.pkiHex);
    const stamp = stampOf(a);
    if (k === undefined) {
      const pkiHex = this.nameOf(a.pkiHex);
      const fresh: Known = {
        pkiHex,
        endpoint: a.endpoint,
        internalEndpoint: same(a.internalEndpoint, a.endpoint),
        metadata: ownedBytes(a.metadata),
        stamp,
        lastHeardMs: wholeMs(now),
        frame: ownedBuffer(envelopeBytes(a.envelope)),
      };
      this.members.set(pkiHex, fresh);
      this.onChange("joined", fresh);
      return true;
    }
    if (!(stamp > k.stamp)) return false;
    const changed =
      k.endpoint !== a.endpoint ||
      (a.internalEndpoint !== "" && a.internalEndpoint !== k.internalEndpoint) ||
      !bytesEqual(k.metadata, a.metadata);
    // Strings equal to those held are not swapped in: one string per endpoint and member.
    if (k.endpoint !== a.endpoint) k.endpoint = a.endpoint;
    if (a.internalEndpoint !== "" && a.internalEndpoint !== k.internalEndpoint) k.internalEndpoint = same(a.internalEndpoint, k.endpoint);
    if (!bytesEqual(k.metadata, a.metadata)) k.metadata = ownedBytes(a.metadata);
    k.stamp = stamp;
    k.lastHeardMs = wholeMs(now);
    k.frame = ownedBuffer(envelopeBytes(a.envelope));
    if (this.deadOnes?.delete(k) === true) {
      this.onChange("revived", k);
    } else if (changed) {
      this.onChange("updated", k);
    }
    return true;
  }

  /** Learns an unknown member as dead (a response's dead entry); known members are left alone. */
  learnDead(a: ParsedAlive, now: number): boolean {
    if (a.pkiHex === this.selfHex || this.members.has(a.pkiHex)) return false;
    const pkiHex = this.nameOf(a.pkiHex);
    const k: Known = {
      pkiHex,
      endpoint: a.endpoint,
      internalEndpoint: same(a.internalEndpoint, a.endpoint),
      metadata: ownedBytes(a.metadata),
      stamp: stampOf(a),
      lastHeardMs: wholeMs(now),
      frame: ownedBuffer(envelopeBytes(a.envelope)),
    };
    this.members.set(pkiHex, k);
    this.markDead(k);
    return true;
  }

  /** Moves an alive member to the dead side; returns it, or undefined if it was not alive. */
  expire(pkiHex: string): Known | undefined {
    const k = this.members.get(pkiHex);
    if (k === undefined || this.isDead(k)) return undefined;
    this.markDead(k);
    this.onChange("died", k);
    return k;
  }

  /** Forgets a member entirely; returns it, or undefined if unknown. */
  remove(pkiHex: string): Known | undefined {
    const k = this.members.get(pkiHex);
    if (k === undefined) return undefined;
    this.members.delete(pkiHex);
    // Its state as it was, for the event (a dead member is removed dead); out of the dead set even if telling throws.
    try {
      this.onChange("removed", k);
    } finally {
      this.deadOnes?.delete(k);
    }
    return k;
  }

  /** The member `pkiHex`, alive or dead. */
  get(pkiHex: string): Known | undefined {
    return this.members.get(pkiHex);
  }

  /** The string the view keys `pkiHex` on, if it holds that member. */
  keyOf(pkiHex: string): string | undefined {
    return this.members.get(pkiHex)?.pkiHex;
  }

  /** Timestamp held for `pkiHex`, packed, if any. */
  stampOf(pkiHex: string): PackedTimestamp | undefined {
    return this.members.get(pkiHex)?.stamp;
  }

  /** Alive members. */
  alive(): Known[] {
    // Sized first: pushing grows an array to up to 1.5 times its length, and the list is cached
    // (CommAdapter's routing targets: ~2.6 B per known peer in W9 sim100).
    const out: Known[] = new Array(this.aliveCount);
    let i = 0;
    for (const k of this.members.values()) if (!this.isDead(k)) out[i++] = k;
    return out;
  }

  /** Dead members. */
  dead(): Known[] {
    const out: Known[] = [];
    for (const k of this.members.values()) if (this.isDead(k)) out.push(k);
    return out;
  }

  /** Number of alive members. */
  get aliveCount(): number {
    // Counted, not members.size - deadOnes.size: a member being removed is out of `members` but (for the
    // event's state) still in `deadOnes` while its removal is told.
    let n = 0;
    for (const k of this.members.values()) if (!this.isDead(k)) n++;
    return n;
  }

  /** Forgets everything (stop). */
  clear(): void {
    this.members.clear();
    this.deadOnes = undefined;
    this.version++;
  }

  /** The state of member `k` (an entry of this view). */
  stateOf(k: Known): "alive" | "dead" {
    return this.isDead(k) ? "dead" : "alive";
  }

  private isDead(k: Known): boolean {
    return this.deadOnes?.has(k) === true;
  }

  private markDead(k: Known): void {
    this.deadOnes ??= new Set();
    this.deadOnes.add(k);
  }
}
