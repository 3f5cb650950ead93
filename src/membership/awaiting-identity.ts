/**
 * Alive messages that arrived before the identity that signed them.
 *
 * Fabric drops such a message ("Don't have certificate") and accepts it
 * only if it comes again after the identity pull taught the identity: a
 * newcomer that learned the others from its bootstrap peer's response waits
 * a pull interval for their identities and then a sync interval for their
 * alive messages to come again (two to three alive intervals per hop of a
 * bootstrap chain). We keep the newest such message per PKI-ID, bounded in
 * count, bytes and age, pull identities at once, and take the message in as
 * soon as its identity is known: on the wire nothing changes (a Hello is
 * legal at any time), and a message still goes through every check before it
 * is used.
 *
 * What is held is unverified (anyone can claim any PKI-ID), so it is held as
 * a copy of its own bytes: a view into the buffer it arrived in would keep
 * that whole buffer (a membership response, up to the comm's message size
 * limit) alive for as long as the message is held.
 */
import { decodeEnvelope } from "../core/envelope.js";
import { type ParsedAlive, parseAlive } from "./alive-message.js";
import { ownedFrame } from "./owned-bytes.js";
import { isNewer } from "./timestamp.js";

/** Where a held message came from: how it is taken in once verifiable. */
export type HeldKind = "gossip" | "alive_entry" | "dead_entry";

/** A held message. */
export interface Held {
  readonly alive: ParsedAlive;
  readonly kind: HeldKind;
  /** Hex PKI-ID of the connection it came on (the previous hop, never forwarded back to). */
  readonly from: string;
  readonly at: number;
  /** Bytes of its copy. */
  readonly bytes: number;
}

/**
 * Bytes of held messages, at most, by default: an alive message without an
 * identity (the only kind held) is a few hundred bytes, so this is far above
 * what `capacity` of them take, and only a flood of padded ones reaches it.
 */
export const defaultMaxAwaitingBytes = 16 * 1024 * 1024;

/** The newest unverifiable alive message per PKI-ID, at most `capacity` and `maxBytes`, each for at most `maxAgeMs`. */
export class AwaitingIdentity {
  private readonly held = new Map<string, Held>();
  private heldBytes = 0;

  constructor(
    private readonly capacity: number,
    private readonly maxAgeMs: number,
    private readonly maxBytes = defaultMaxAwaitingBytes,
  ) {}

  /**
   * Holds a copy of `alive` unless a newer one about the same peer is held,
   * or it alone is larger than `maxBytes`; evicts the oldest over capacity.
   */
  hold(alive: ParsedAlive, kind: HeldKind, from: string, now: number): void {
    const prev = this.held.get(alive.pkiHex);
    if (prev !== undefined && !isNewer(alive.timestamp, prev.alive.timestamp)) return;
    const frame = ownedFrame(alive.envelope);
    if (frame.length > this.maxBytes) return;
    this.delete(alive.pkiHex);
    this.held.set(alive.pkiHex, { alive: parseAlive(decodeEnvelope(frame)), kind, from, at: now, bytes: frame.length });
    this.heldBytes += frame.length;
    while (this.held.size > this.capacity || this.heldBytes > this.maxBytes) {
      const oldest = this.held.keys().next();
      if (oldest.done) break;
      this.delete(oldest.value);
    }
  }

  /** Removes and returns the message held for `pkiHex`, if it is not too old. */
  take(pkiHex: string, now: number): Held | undefined {
    const h = this.delete(pkiHex);
    return h !== undefined && now - h.at <= this.maxAgeMs ? h : undefined;
  }

  /** Drops what is older than `maxAgeMs` (insertion order is age order). */
  sweep(now: number): void {
    for (const [k, h] of this.held) {
      if (now - h.at <= this.maxAgeMs) break;
      this.delete(k);
    }
  }

  get size(): number {
    return this.held.size;
  }

  /** Bytes of the held copies. */
  get bytes(): number {
    return this.heldBytes;
  }

  clear(): void {
    this.held.clear();
    this.heldBytes = 0;
  }

  private delete(pkiHex: string): Held | undefined {
    const h = this.held.get(pkiHex);
    if (h === undefined) return undefined;
    this.held.delete(pkiHex);
    this.heldBytes -= h.bytes;
    return h;
  }
}
