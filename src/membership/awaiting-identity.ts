/**
 * Alive messages that arrived before the identity that signed them.
 *
 * Fabric drops such a message ("Don't have certificate") and accepts it
 * only if it comes again after the identity pull taught the identity: a
 * newcomer that learned the others from its bootstrap peer's response waits
 * a pull interval for their identities and then a sync interval for their
 * alive messages to come again (two to three alive intervals per hop of a
 * bootstrap chain). We keep the newest such message per PKI-ID, bounded in
 * count and age, pull identities at once, and take the message in as soon as
 * its identity is known: on the wire nothing changes (a Hello is legal at any
 * time), and a message still goes through every check before it is used.
 */
import type { ParsedAlive } from "./alive-message.js";
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
}

/** The newest unverifiable alive message per PKI-ID, at most `capacity`, each for at most `maxAgeMs`. */
export class AwaitingIdentity {
  private readonly held = new Map<string, Held>();

  constructor(
    private readonly capacity: number,
    private readonly maxAgeMs: number,
  ) {}

  /** Holds `alive` unless a newer one about the same peer is held; evicts the oldest over capacity. */
  hold(alive: ParsedAlive, kind: HeldKind, from: string, now: number): void {
    const prev = this.held.get(alive.pkiHex);
    if (prev !== undefined && !isNewer(alive.timestamp, prev.alive.timestamp)) return;
    this.held.delete(alive.pkiHex);
    this.held.set(alive.pkiHex, { alive, kind, from, at: now });
    if (this.held.size > this.capacity) {
      const oldest = this.held.keys().next();
      if (!oldest.done) this.held.delete(oldest.value);
    }
  }

  /** Removes and returns the message held for `pkiHex`, if it is not too old. */
  take(pkiHex: string, now: number): Held | undefined {
    const h = this.held.get(pkiHex);
    if (h === undefined) return undefined;
    this.held.delete(pkiHex);
    return now - h.at <= this.maxAgeMs ? h : undefined;
  }

  /** Drops what is older than `maxAgeMs` (insertion order is age order). */
  sweep(now: number): void {
    for (const [k, h] of this.held) {
      if (now - h.at <= this.maxAgeMs) break;
      this.held.delete(k);
    }
  }

  get size(): number {
    return this.held.size;
  }

  clear(): void {
    this.held.clear();
  }
}
