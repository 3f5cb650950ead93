import { AsyncQueue } from "./async-queue.js";

/**
 * A broadcast stream of events (presumed-dead PKI-IDs, identity switches,
 * connection changes). Each `for await` over it is an independent subscriber
 * that sees the events emitted after it started; a subscriber that falls more
 * than `capacity` events behind loses the oldest (counted by `onDrop`), so a
 * slow or absent reader never blocks the comm. Ends when the comm stops.
 * {@link EventStream.listen} is the same without a reader: a callback.
 */
export class EventStream<T> implements AsyncIterable<T> {
  /** Made with the first subscriber: most streams have none, or listeners only (an empty Set is ~100 B). */
  private subscribers: Set<AsyncQueue<T>> | undefined;
  private listeners: ((event: T) => void)[] | undefined;
  private ended = false;

  /** @private Created by the comm. */
  constructor(
    private readonly capacity: number,
    private readonly onDrop: () => void = () => {},
  ) {}

  /** @private Emits an event to every current subscriber and listener. */
  emit(event: T): void {
    if (this.subscribers !== undefined) {
      for (const q of this.subscribers) {
        if (q.pushDropOldest(event)) this.onDrop();
      }
    }
    const listeners = this.listeners;
    if (listeners === undefined) return;
    // Each call in a microtask of its own, as a `for await` reader resumes: never inside the emitter's
    // work (a comm send, a dial), and a listener that throws does not stop the others or the emitter.
    for (const l of listeners) queueMicrotask(() => l(event));
  }

  /** @private Ends the stream for every subscriber (buffered events can still be read) and listener. */
  end(): void {
    this.ended = true;
    if (this.subscribers !== undefined) for (const q of this.subscribers) q.end();
    this.subscribers = undefined;
    this.listeners = undefined;
  }

  /**
   * Calls `listener` with each event emitted from now on, in order, each in
   * a microtask of its own after its emit (where a `for await` reader would
   * see it), until the returned function is called or the stream ends. No
   * queue, so nothing is ever dropped, and it costs no reader: no buffer,
   * iterator, pending promise and parked loop (~1.9 KB of heap each; a
   * Membership read three streams so, 57 B per known peer of W9's 100-peer
   * simulation). A listener that throws is reported as an uncaught
   * exception, as a throwing `for await` body would reject its loop: catch
   * in it.
   */
  listen(listener: (event: T) => void): () => void {
    if (this.ended) return () => {};
    // A first listener in an array of one: `[].push` makes room for 17.
    if (this.listeners === undefined) this.listeners = [listener];
    else this.listeners.push(listener);
    let listening = true;
    return () => {
      if (!listening) return;
      listening = false;
      const i = this.listeners?.indexOf(listener) ?? -1;
      if (i >= 0) this.listeners?.splice(i, 1);
    };
  }

  [Symbol.asyncIterator](): AsyncIterator<T> {
    const q: AsyncQueue<T> = new AsyncQueue<T>(this.capacity, () => this.subscribers?.delete(q));
    if (this.ended) q.end();
    else {
      this.subscribers ??= new Set();
      this.subscribers.add(q);
    }
    return q[Symbol.asyncIterator]();
  }
}
