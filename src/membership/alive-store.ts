/**
 * Fabric's alive msgStore: per PKI-ID, the newest alive message received by
 * gossip. A message not strictly newer than the stored one is refused before
 * any cryptography. Entries expire after a TTL (the member is then removed
 * from the view unless it is a bootstrap peer) and linger as tombstones until
 * twice the TTL, so that replays of old messages stay refused.
 */
import type { ParsedAlive } from "./alive-message.js";
import { isNewer, type Timestamp } from "./timestamp.js";

/**
 * What is kept of a stored message: only what the store decides on (the
 * view keeps the message itself), so that an entry costs a few words per
 * known peer and no received buffer.
 */
interface Entry {
  readonly timestamp: Timestamp;
  readonly addedAt: number;
  expired: boolean;
}

/** The alive msgStore (TTL and tombstones). Pure: time is passed in. */
export class AliveStore {
  private readonly entries = new Map<string, Entry>();

  constructor(private readonly ttlMs: number) {}

  /** True when a message with `timestamp` from `pkiHex` would be stored (nothing held is as new or newer). */
  checkValid(pkiHex: string, timestamp: Timestamp): boolean {
    const e = this.entries.get(pkiHex);
    return e === undefined || isNewer(timestamp, e.timestamp);
  }

  /**
   * Stores `alive` if it is newer than what is held for its PKI-ID; returns
   * whether it was. `key`: the same hex PKI-ID, as a string the caller
   * already holds (one string per peer across membership's maps).
   */
  add(alive: ParsedAlive, now: number, key: string = alive.pkiHex): boolean {
    if (!this.checkValid(alive.pkiHex, alive.timestamp)) return false;
    this.entries.set(key, { timestamp: alive.timestamp, addedAt: now, expired: false });
    return true;
  }

  /**
   * Marks entries older than the TTL expired and returns their PKI-IDs (hex,
   * each once); forgets tombstones older than twice the TTL.
   */
  sweep(now: number): string[] {
    const expired: string[] = [];
    for (const [k, e] of this.entries) {
      const age = now - e.addedAt;
      if (age > 2 * this.ttlMs) this.entries.delete(k);
      else if (age > this.ttlMs && !e.expired) {
        e.expired = true;
        expired.push(k);
      }
    }
    return expired;
  }

  /** PKI-IDs (hex) of the live (not expired) messages. */
  get(): string[] {
    const out: string[] = [];
    for (const [k, e] of this.entries) if (!e.expired) out.push(k);
    return out;
  }

  /** Entries held, tombstones included. */
  get size(): number {
    return this.entries.size;
  }

  /** Forgets everything. */
  clear(): void {
    this.entries.clear();
  }
}
