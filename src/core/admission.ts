import { type Clock, housekeepingTimeout } from "./clock.js";
import { ErrorCode, GossipError } from "./errors.js";

/** A bucket unused this long has refilled (its capacity is one second of handshakes): as good as none. */
const refillMs = 1000;

/**
 * Admission of inbound streams before they authenticate: a cap on
 * concurrent unauthenticated streams, overall and per remote IP address, and
 * a token bucket of handshakes per remote IP address. Bounded itself: at
 * most `maxTrackedAddresses` buckets, each forgotten once it has refilled
 * (one timer sweeps them while any is held: a peer's every neighbour
 * handshakes once, and a bucket per neighbour kept for good was a cost per
 * known peer), and per-address counts only for addresses with a stream in
 * the handshake.
 */
export class Admission {
  private unauthenticated = 0;
  private readonly perAddress = new Map<string, number>();
  private readonly buckets = new Map<string, { tokens: number; at: number }>();
  private sweepTimer: unknown;
  private stopped = false;

  constructor(
    private readonly clock: Clock,
    private readonly maxUnauthenticated: number,
    private readonly handshakesPerSecond: number,
    private readonly maxUnauthenticatedPerAddress = Number.POSITIVE_INFINITY,
    private readonly maxTrackedAddresses = 4096,
  ) {}

  /** Streams currently admitted and not yet authenticated. */
  get inHandshake(): number {
    return this.unauthenticated;
  }

  /**
   * Admits a stream from `address` (an IP) or returns the `RateLimited` error
   * to refuse it with. An admitted stream must be released with {@link Admission.release}.
   */
  admit(address: string): GossipError | undefined {
    if (this.unauthenticated >= this.maxUnauthenticated) {
      return new GossipError(
        ErrorCode.RateLimited,
        `too many unauthenticated streams (maxUnauthenticatedStreams ${this.maxUnauthenticated})`,
      );
    }
    const inFlight = this.perAddress.get(address) ?? 0;
    if (inFlight >= this.maxUnauthenticatedPerAddress) {
      return new GossipError(
        ErrorCode.RateLimited,
        `too many unauthenticated streams from ${address} (maxUnauthenticatedStreamsPerAddress ${this.maxUnauthenticatedPerAddress})`,
      );
    }
    const now = this.clock.now();
    let bucket = this.buckets.get(address);
    if (!bucket) {
      if (this.buckets.size >= this.maxTrackedAddresses) this.prune(now);
      bucket = { tokens: this.handshakesPerSecond, at: now };
      this.buckets.set(address, bucket);
      this.armSweep();
    } else {
      bucket.tokens = Math.min(this.handshakesPerSecond, bucket.tokens + ((now - bucket.at) / 1000) * this.handshakesPerSecond);
      bucket.at = now;
    }
    if (bucket.tokens < 1) {
      return new GossipError(
        ErrorCode.RateLimited,
        `too many handshakes from ${address} (maxHandshakesPerSecondPerAddress ${this.handshakesPerSecond})`,
      );
    }
    bucket.tokens -= 1;
    this.unauthenticated++;
    this.perAddress.set(address, inFlight + 1);
    return undefined;
  }

  /** Releases a stream admitted from `address` (its handshake finished either way). */
  release(address: string): void {
    if (this.unauthenticated > 0) this.unauthenticated--;
    const n = (this.perAddress.get(address) ?? 1) - 1;
    if (n > 0) this.perAddress.set(address, n);
    else this.perAddress.delete(address);
  }

  /** Forgets every bucket and sweeps no more (the comm stops: nothing is admitted again). */
  stop(): void {
    this.stopped = true;
    this.clock.clearTimeout(this.sweepTimer);
    this.sweepTimer = undefined;
    this.buckets.clear();
  }

  private armSweep(): void {
    if (this.sweepTimer !== undefined || this.stopped) return;
    this.sweepTimer = housekeepingTimeout(
      this.clock,
      () => {
        this.sweepTimer = undefined;
        const now = this.clock.now();
        for (const [k, b] of this.buckets) if (now - b.at >= refillMs) this.buckets.delete(k);
        if (this.buckets.size > 0) this.armSweep();
      },
      refillMs,
    );
  }

  private prune(now: number): void {
    for (const [k, b] of this.buckets) {
      if (now - b.at > refillMs) this.buckets.delete(k);
    }
    while (this.buckets.size >= this.maxTrackedAddresses) {
      const first = this.buckets.keys().next();
      if (first.done) break;
      this.buckets.delete(first.value);
    }
  }
}
