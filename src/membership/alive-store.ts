/**
 * Fabric's alive msgStore: per PKI-ID, the newest alive message received by
 * gossip. A message not strictly newer than the stored one is refused before
 * any cryptography. Entries expire after a TTL (the member is then removed
 * from the view unless it is a bootstrap peer) and linger as tombstones until
 * twice the TTL, so that replays of old messages stay refused.
 */
import type { ParsedAlive } from "./alive-message.js";
import { isNewer, type Timestamp } from "./timestamp.js";

interface Entry {
  readonly alive: ParsedAlive;
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
    return e === undefined || isNewer(timestamp, e.alive.timestamp);
  }

  /** What is held for `pkiHex` (a tombstone is `expired`), or undefined. */
  held(pkiHex: string): { readonly timestamp: Timestamp; readonly expired: boolean } | undefined {
    const e = this.entries.get(pkiHex);
    return e === undefined ? undefined : { timestamp: e.alive.timestamp, expired: e.expired };
  }

  /** Stores `alive` if it is newer than what is held for its PKI-ID; returns whether it was. */
  add(alive: ParsedAlive, now: number): boolean {
    if (!this.checkValid(alive.pkiHex, alive.timestamp)) return false;
    this.entries.set(alive.pkiHex, { alive, addedAt: now, expired: false });
    return true;
  }

  /**
   * Marks entries older than the TTL expired and returns them (each once);
   * forgets tombstones older than twice the TTL.
   */
  sweep(now: number): ParsedAlive[] {
    const expired: ParsedAlive[] = [];
    for (const [k, e] of this.entries) {
      const age = now - e.addedAt;
      if (age > 2 * this.ttlMs) this.entries.delete(k);
      else if (age > this.ttlMs && !e.expired) {
        e.expired = true;
        expired.push(e.alive);
      }
    }
    return expired;
  }

  /** Live (not expired) messages. */
  get(): ParsedAlive[] {
    const out: ParsedAlive[] = [];
    for (const e of this.entries.values()) if (!e.expired) out.push(e.alive);
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
