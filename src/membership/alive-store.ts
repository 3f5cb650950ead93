/**
 * Fabric's alive msgStore: per PKI-ID, the newest alive message received by
 * gossip. A message not strictly newer than the stored one is refused before
 * any cryptography. Entries expire after a TTL (the member is then removed
 * from the view unless it is a bootstrap peer) and linger as tombstones until
 * twice the TTL, so that replays of old messages stay refused.
 */

import { wholeMs } from "../core/clock.js";
import { type ParsedAlive, stampOf } from "./alive-message.js";
import { type PackedTimestamp, packTimestamp, type Timestamp, unpackTimestamp } from "./timestamp.js";

/**
 * What is kept of a stored message: only what the store decides on (the
 * view keeps the message itself), so that an entry costs a few words per
 * known peer and no received buffer. The endpoints are the stored
 * message's own (its external one and the internal one of its secret
 * envelope): Fabric's sweep spares bootstrap and anchor peers by them, not
 * by what the view remembers from other messages. They are the strings the
 * view keeps from the same parsed message, so they cost no copy.
 */
interface Entry {
  readonly stamp: PackedTimestamp;
  readonly addedAt: number;
  readonly endpoint: string;
  readonly internalEndpoint: string;
}

/** An entry the sweep found expired: its PKI-ID (hex) and the endpoints of its stored message. */
export interface ExpiredAlive {
  readonly pkiHex: string;
  readonly endpoint: string;
  readonly internalEndpoint: string;
}

/** `s`, or an equal string already held (`a` first, then `b`). */
function same(s: string, a: string | undefined, b: string | undefined): string {
  return a === s ? a : b === s ? b : s;
}

/** The alive msgStore (TTL and tombstones). Pure: time is passed in. */
export class AliveStore {
  private readonly entries = new Map<string, Entry>();
  /**
   * PKI-IDs (hex) whose entry expired (tombstones): few at any time (a peer
   * gone within the last two TTLs), so a set made when first needed rather
   * than a flag in every entry (a field per known peer).
   */
  private tombstones: Set<string> | undefined;

  constructor(private readonly ttlMs: number) {}

  /** True when a message with `timestamp` from `pkiHex` would be stored (nothing held is as new or newer). */
  checkValid(pkiHex: string, timestamp: Timestamp): boolean {
    return this.newerThanHeld(pkiHex, packTimestamp(timestamp));
  }

  /** {@link checkValid} of a packed timestamp. */
  newerThanHeld(pkiHex: string, stamp: PackedTimestamp): boolean {
    const e = this.entries.get(pkiHex);
    return e === undefined || stamp > e.stamp;
  }

  /** What is held for `pkiHex` (a tombstone is `expired`), or undefined. */
  held(pkiHex: string): { readonly timestamp: Timestamp; readonly expired: boolean } | undefined {
    const e = this.entries.get(pkiHex);
    return e === undefined ? undefined : { timestamp: unpackTimestamp(e.stamp), expired: this.isTombstone(pkiHex) };
  }

  /**
   * Stores `alive` if it is newer than what is held for its PKI-ID; returns
   * whether it was. `key`: the same hex PKI-ID, as a string the caller
   * already holds (one string per peer across membership's maps); `known`:
   * the endpoint strings the caller holds for that peer (its view entry).
   */
  add(
    alive: ParsedAlive,
    now: number,
    key: string = alive.pkiHex,
    known?: { readonly endpoint: string; readonly internalEndpoint: string },
  ): boolean {
    const held = this.entries.get(alive.pkiHex);
    const stamp = stampOf(alive);
    if (held !== undefined && !(stamp > held.stamp)) return false;
    // Strings equal to those held here or by the caller are kept: one per endpoint and member.
    const endpoint = same(alive.endpoint, held?.endpoint, known?.endpoint);
    const internal = alive.internalEndpoint;
    this.entries.set(key, {
      stamp,
      addedAt: wholeMs(now),
      endpoint,
      internalEndpoint: internal === endpoint ? endpoint : same(internal, held?.internalEndpoint, known?.internalEndpoint),
    });
    this.tombstones?.delete(key);
    return true;
  }

  /**
   * Marks entries older than the TTL expired and returns them (each once);
   * forgets tombstones older than twice the TTL.
   */
  sweep(now: number): ExpiredAlive[] {
    const expired: ExpiredAlive[] = [];
    for (const [k, e] of this.entries) {
      const age = now - e.addedAt;
      if (age > 2 * this.ttlMs) {
        this.entries.delete(k);
        this.tombstones?.delete(k);
      } else if (age > this.ttlMs && !this.isTombstone(k)) {
        this.tombstones ??= new Set();
        this.tombstones.add(k);
        expired.push({ pkiHex: k, endpoint: e.endpoint, internalEndpoint: e.internalEndpoint });
      }
    }
    return expired;
  }

  /** PKI-IDs (hex) of the live (not expired) messages. */
  get(): string[] {
    const out: string[] = [];
    for (const k of this.entries.keys()) if (!this.isTombstone(k)) out.push(k);
    return out;
  }

  /** Entries held, tombstones included. */
  get size(): number {
    return this.entries.size;
  }

  /** Forgets everything. */
  clear(): void {
    this.entries.clear();
    this.tombstones = undefined;
  }

  private isTombstone(pkiHex: string): boolean {
    return this.tombstones?.has(pkiHex) === true;
  }
}
