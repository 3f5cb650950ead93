/**
 * Per-peer budgets of signature verifications (token buckets), so that one
 * peer's flood of fresh-looking messages costs us bounded CPU. Bounded in
 * the number of peers tracked.
 */
interface Bucket {
  tokens: number;
  at: number;
}

/** Token buckets keyed by peer: `perSecond` refill, burst of 2 × `perSecond`. */
export class RateBudget {
  private readonly buckets = new Map<string, Bucket>();

  constructor(
    private readonly perSecond: number,
    private readonly maxPeers = 4096,
  ) {}

  /** Takes `n` tokens of `peer` at time `now` (ms); false (nothing taken) when it has fewer. */
  take(peer: string, now: number, n = 1): boolean {
    const burst = 2 * this.perSecond;
    let b = this.buckets.get(peer);
    if (b === undefined) {
      if (this.buckets.size >= this.maxPeers) {
        const oldest = this.buckets.keys().next();
        if (!oldest.done) this.buckets.delete(oldest.value);
      }
      b = { tokens: burst, at: now };
      this.buckets.set(peer, b);
    } else {
      b.tokens = Math.min(burst, b.tokens + ((now - b.at) / 1000) * this.perSecond);
      b.at = now;
    }
    if (b.tokens < n) return false;
    b.tokens -= n;
    return true;
  }

  /**
   * Forgets the buckets that have refilled by `now`: a full bucket is what
   * an untracked peer gets, so nothing changes but the memory (a bucket and
   * its key per peer heard from, which in a full mesh is every member).
   */
  prune(now: number): void {
    const burst = 2 * this.perSecond;
    for (const [peer, b] of this.buckets) {
      if (b.tokens + ((now - b.at) / 1000) * this.perSecond >= burst) this.buckets.delete(peer);
    }
  }

  /** Peers tracked (for tests). */
  get size(): number {
    return this.buckets.size;
  }
}
