import { AsyncQueue } from "./async-queue.js";

/** Decides whether a subscriber wants a message. */
export type Predicate<T> = (message: T) => boolean;

/**
 * A subscriber's view of a {@link Demux}: every published message its
 * predicate accepted, in publication order. Iterate it with `for await`;
 * breaking out of the loop closes it.
 */
export class Subscription<T> implements AsyncIterable<T> {
  /** @private */
  readonly queue: AsyncQueue<T>;

  /** @private Use {@link Demux.subscribe}. */
  constructor(
    readonly predicate: Predicate<T>,
    capacity: number,
    private readonly detach: (s: Subscription<T>) => void,
  ) {
    this.queue = new AsyncQueue<T>(capacity, () => this.detach(this));
  }

  /** True once closed, by {@link Subscription.close} or by the demux closing. */
  get closed(): boolean {
    return this.queue.isEnded;
  }

  /**
   * Stops receiving: messages already buffered are discarded, a publisher
   * blocked on this subscription moves on, iteration ends. Idempotent.
   */
  /** {@link AsyncQueue.poll} of its buffer: what is already buffered, without waiting. */
  poll(): IteratorResult<T> | undefined {
    return this.queue.poll();
  }

  close(): void {
    this.queue.clear();
    this.detach(this);
  }

  [Symbol.asyncIterator](): AsyncIterator<T> {
    return this.queue[Symbol.asyncIterator]();
  }
}

/**
 * Fans every published message out to each subscriber whose predicate accepts
 * it (Fabric's ChannelDeMultiplexer). Guarantees:
 *
 * - Delivery is in publication order, to subscribers in subscription order.
 * - Nothing is dropped: when a subscriber's buffer is full, `publish` returns
 *   a promise and the publisher waits (back-pressure reaches the remote sender
 *   through the connection's flow control).
 * - `close()` is idempotent, ends every subscription (buffered messages can
 *   still be read) and releases every blocked publisher; publishing after it
 *   is a no-op that calls no predicate.
 *
 * A predicate that throws is treated as not matching.
 */
export class Demux<T> {
  private subs: Subscription<T>[] = [];
  private isClosed = false;

  constructor(private readonly defaultCapacity = 20) {}

  /** True once {@link Demux.close} was called. */
  get closed(): boolean {
    return this.isClosed;
  }

  /** Number of live subscriptions. */
  get size(): number {
    return this.subs.length;
  }

  /** Adds a subscriber. After close, returns a subscription that is already ended. */
  subscribe(predicate: Predicate<T>, capacity = this.defaultCapacity): Subscription<T> {
    const sub = new Subscription(predicate, capacity, (s) => this.detach(s));
    if (this.isClosed) {
      sub.queue.end();
    } else {
      this.subs.push(sub);
    }
    return sub;
  }

  /**
   * Delivers `message` to every matching subscriber, but those in `skip`
   * (subscribers that already dealt with it, see `Comm.accept`'s screen).
   * Returns undefined when every delivery completed at once, or a promise to
   * await when a subscriber was full (it settles when delivery is done, or on
   * close).
   */
  publish(message: T, skip?: readonly Subscription<T>[]): Promise<void> | undefined {
    if (this.isClosed) return undefined;
    const subs = this.subs;
    for (let i = 0; i < subs.length; i++) {
      const sub = subs[i] as Subscription<T>;
      if (!matches(sub, message, skip)) continue;
      if (!sub.queue.push(message) && !sub.queue.isEnded) {
        return this.publishSlow(message, subs, i, skip);
      }
    }
    return undefined;
  }

  private async publishSlow(
    message: T,
    subs: readonly Subscription<T>[],
    from: number,
    skip: readonly Subscription<T>[] | undefined,
  ): Promise<void> {
    for (let i = from; i < subs.length; i++) {
      const sub = subs[i] as Subscription<T>;
      if (i > from && !matches(sub, message, skip)) continue;
      while (!sub.queue.push(message)) {
        if (sub.queue.isEnded || this.isClosed) break;
        await sub.queue.whenSpace();
        if (this.isClosed) return;
      }
    }
  }

  /** Ends every subscription and releases blocked publishers. Idempotent. */
  close(): void {
    if (this.isClosed) return;
    this.isClosed = true;
    const subs = this.subs;
    this.subs = [];
    for (const s of subs) s.queue.end();
  }

  private detach(sub: Subscription<T>): void {
    const i = this.subs.indexOf(sub);
    if (i >= 0) {
      // Copy on write: a publisher iterating the old array is not disturbed.
      this.subs = [...this.subs.slice(0, i), ...this.subs.slice(i + 1)];
    }
  }
}

function matches<T>(sub: Subscription<T>, message: T, skip: readonly Subscription<T>[] | undefined): boolean {
  if (skip?.includes(sub)) return false;
  try {
    return sub.predicate(message);
  } catch {
    return false;
  }
}
