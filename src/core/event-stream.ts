import { AsyncQueue } from "./async-queue.js";

/**
 * A broadcast stream of events (presumed-dead PKI-IDs, identity switches,
 * connection changes). Each `for await` over it is an independent subscriber
 * that sees the events emitted after it started; a subscriber that falls more
 * than `capacity` events behind loses the oldest (counted by `onDrop`), so a
 * slow or absent reader never blocks the comm. Ends when the comm stops.
 */
export class EventStream<T> implements AsyncIterable<T> {
  private subscribers = new Set<AsyncQueue<T>>();
  private ended = false;

  /** @private Created by the comm. */
  constructor(
    private readonly capacity: number,
    private readonly onDrop: () => void = () => {},
  ) {}

  /** @private Emits an event to every current subscriber. */
  emit(event: T): void {
    for (const q of this.subscribers) {
      if (q.pushDropOldest(event)) this.onDrop();
    }
  }

  /** @private Ends the stream for every subscriber (buffered events can still be read). */
  end(): void {
    this.ended = true;
    for (const q of this.subscribers) q.end();
    this.subscribers.clear();
  }

  [Symbol.asyncIterator](): AsyncIterator<T> {
    const q: AsyncQueue<T> = new AsyncQueue<T>(this.capacity, () => this.subscribers.delete(q));
    if (this.ended) q.end();
    else this.subscribers.add(q);
    return q[Symbol.asyncIterator]();
  }
}
