import type { Clock } from "./clock.js";
import { ErrorCode, GossipError } from "./errors.js";

/**
 * Admission of inbound streams before they authenticate: a cap on
 * concurrent unauthenticated streams, overall and per remote IP address, and
 * a token bucket of handshakes per remote IP address. Bounded itself: at
 * most `maxTrackedAddresses` buckets, and per-address counts only for
 * addresses with a stream in the handshake.
 */
export class Admission {
  private unauthenticated = 0;
  private readonly perAddress = new Map<string, number>();
  private readonly buckets = new Map<string, { tokens: number; at: number }>();

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

  private prune(now: number): void {
    for (const [k, b] of this.buckets) {
      if (now - b.at > 1000) this.buckets.delete(k);
    }
    while (this.buckets.size >= this.maxTrackedAddresses) {
      const first = this.buckets.keys().next();
      if (first.done) break;
      this.buckets.delete(first.value);
    }
  }
}
