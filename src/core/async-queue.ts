/**
 * A bounded FIFO drained by one async iterator: the building block of
 * subscriptions and event streams.
 *
 * @private Internal code, not part of the public API.
 */
export class AsyncQueue<T> implements AsyncIterable<T> {
  private items: T[] = [];
  private head = 0;
  private ended = false;
  private reader: ((r: IteratorResult<T>) => void) | undefined;
  private spaceWaiters: (() => void)[] = [];
  private iterator: AsyncIterator<T> | undefined;

  /**
   * @param capacity items held before `push` refuses.
   * @param onReturn called once when the consumer stops iterating early (`break`).
   */
  constructor(
    readonly capacity: number,
    private readonly onReturn?: () => void,
  ) {}

  /** Items waiting to be read. */
  get size(): number {
    return this.items.length - this.head;
  }

  /** True once {@link AsyncQueue.end} was called. */
  get isEnded(): boolean {
    return this.ended;
  }

  /** Adds an item; false when the queue is full or ended (the item is not taken). */
  push(item: T): boolean {
    if (this.ended) return false;
    const reader = this.reader;
    if (reader) {
      this.reader = undefined;
      reader({ value: item, done: false });
      return true;
    }
    if (this.size >= this.capacity) return false;
    this.items.push(item);
    return true;
  }

  /** Adds an item, dropping the oldest when full; returns true when one was dropped. */
  pushDropOldest(item: T): boolean {
    if (this.ended) return false;
    let dropped = false;
    if (!this.reader && this.size >= this.capacity) {
      this.head++;
      dropped = true;
    }
    this.push(item);
    return dropped;
  }

  /**
   * Resolves when the queue has room again (it was read empty, so a blocked
   * producer refills it in bulk: each wait costs the producer several
   * promises, and waking at half capacity made it wait twice as often) or
   * ended.
   */
  whenSpace(): Promise<void> {
    if (this.ended || this.size < this.capacity) return Promise.resolve();
    return new Promise((resolve) => this.spaceWaiters.push(resolve));
  }

  /** Ends the queue: buffered items can still be read, then iteration ends. Wakes blocked producers. */
  end(): void {
    if (this.ended) return;
    this.ended = true;
    this.wakeProducers();
    const reader = this.reader;
    if (reader && this.size === 0) {
      this.reader = undefined;
      reader({ value: undefined, done: true });
    }
  }

  /** Ends the queue and discards buffered items. */
  clear(): void {
    this.items = [];
    this.head = 0;
    this.end();
  }

  private wakeProducers(): void {
    const waiters = this.spaceWaiters;
    if (waiters.length === 0) return;
    this.spaceWaiters = [];
    for (const w of waiters) w();
  }

  /**
   * The next buffered item without waiting, as the iterator's `next` would
   * resolve it: `{ done: false, value }`, `{ done: true }` once ended and
   * drained, or undefined when nothing is buffered (then wait with `next`).
   * For a reader that handles what is already buffered in one go, without
   * a promise and a microtask per item. Same order as `next`.
   */
  poll(): IteratorResult<T> | undefined {
    return this.take();
  }

  private take(): IteratorResult<T> | undefined {
    if (this.head < this.items.length) {
      const value = this.items[this.head] as T;
      this.items[this.head] = undefined as T; // release the reference early
      this.head++;
      if (this.head === this.items.length) {
        this.items = [];
        this.head = 0;
      } else if (this.head > 1024 && this.head * 2 > this.items.length) {
        this.items = this.items.slice(this.head);
        this.head = 0;
      }
      if (this.spaceWaiters.length > 0 && this.size === 0) this.wakeProducers();
      return { value, done: false };
    }
    if (this.ended) return { value: undefined, done: true };
    return undefined;
  }

  /**
   * The queue's one iterator: iterating again continues where the last loop
   * stopped (like a generator). Leaving a loop early (`break`) ends the queue.
   */
  [Symbol.asyncIterator](): AsyncIterator<T> {
    this.iterator ??= {
      next: () => {
        const r = this.take();
        if (r) return Promise.resolve(r);
        return new Promise((resolve) => {
          this.reader = resolve;
        });
      },
      return: () => {
        this.clear();
        this.onReturn?.();
        return Promise.resolve({ value: undefined, done: true });
      },
    };
    return this.iterator;
  }
}
