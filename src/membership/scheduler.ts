/**
 * The timers and background loops of one Membership, all on the injected
 * clock and all ended by {@link Scheduler.stop}.
 */
import type { Clock } from "../core/clock.js";
import type { Logger } from "../core/logger.js";

/** A source whose buffered items can be taken without waiting (see `Subscription.poll`). */
export interface Pollable<T> {
  poll(): IteratorResult<T> | undefined;
}

/** An event source that calls a listener (see `EventStream.listen`); the returned function stops the calls. */
export interface Listenable<T> {
  listen(listener: (event: T) => void): () => void;
}

/** Periodic tasks, sleeps, event-stream readers and listeners that stop together. */
export class Scheduler {
  private readonly abort = new AbortController();
  private readonly timers = new Set<unknown>();
  private readonly loops: Promise<void>[] = [];
  private readonly iterators: AsyncIterator<unknown>[] = [];
  private readonly unlisteners: (() => void)[] = [];

  constructor(
    private readonly clock: Clock,
    private readonly log: Logger,
  ) {}

  /** Aborted by {@link Scheduler.stop}. */
  get signal(): AbortSignal {
    return this.abort.signal;
  }

  /** True once stopped. */
  get stopped(): boolean {
    return this.abort.signal.aborted;
  }

  /** Runs `fn` every `ms` (first after `ms`) until stop; a throwing run is logged, the next still runs. */
  every(ms: number, fn: () => void): void {
    const tick = () => {
      this.timers.delete(handle);
      if (this.stopped) return;
      try {
        fn();
      } catch (e) {
        this.log.error({ err: (e as Error).message }, "membership periodic task failed");
      }
      handle = this.clock.setTimeout(tick, ms);
      this.timers.add(handle);
    };
    let handle = this.clock.setTimeout(tick, ms);
    this.timers.add(handle);
  }

  /** Resolves after `ms`, or at once on stop (never rejects). */
  sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const signal = this.abort.signal;
      if (signal.aborted) return resolve();
      const onAbort = () => resolve();
      const h = this.clock.setTimeout(() => {
        this.timers.delete(h);
        signal.removeEventListener("abort", onAbort);
        resolve();
      }, ms);
      this.timers.add(h);
      signal.addEventListener("abort", onAbort, { once: true });
    });
  }

  /** Runs `loop` in the background; stop waits for it. Its rejection is ignored. */
  run(loop: () => Promise<void>): void {
    this.loops.push(loop().catch(() => {}));
  }

  /**
   * Reads `source` until stop, handing each item to `fn` (a throwing `fn` is
   * logged, never fatal), in order. A source that can be polled (a comm
   * subscription) has what it already buffered handed over in one go: not
   * a promise and a microtask per message.
   */
  consume<T>(source: AsyncIterable<T> | (AsyncIterable<T> & Pollable<T>), fn: (item: T) => void): void {
    const it = source[Symbol.asyncIterator]();
    this.iterators.push(it);
    const poll = "poll" in source ? () => source.poll() : undefined;
    const handle = (item: T) => {
      try {
        fn(item);
      } catch (e) {
        this.log.error({ err: (e as Error).message }, "membership handler failed");
      }
    };
    this.run(async () => {
      for (;;) {
        let r: IteratorResult<T> | undefined = await it.next();
        while (r !== undefined) {
          if (r.done || this.stopped) return;
          handle(r.value);
          r = poll?.();
        }
      }
    });
  }

  /**
   * Hands each event of `source` to `fn` until stop (a throwing `fn` is
   * logged, never fatal), in order: {@link consume} without a parked loop,
   * for event streams that are read one event at a time anyway.
   */
  listen<T>(source: Listenable<T>, fn: (item: T) => void): void {
    if (this.stopped) return;
    this.unlisteners.push(
      source.listen((item) => {
        if (this.stopped) return;
        try {
          fn(item);
        } catch (e) {
          this.log.error({ err: (e as Error).message }, "membership handler failed");
        }
      }),
    );
  }

  /** Cancels timers, ends readers and listeners, and resolves when every loop has returned. */
  async stop(): Promise<void> {
    this.abort.abort();
    for (const t of this.timers) this.clock.clearTimeout(t);
    this.timers.clear();
    for (const off of this.unlisteners) off();
    this.unlisteners.length = 0;
    for (const it of this.iterators) void it.return?.();
    await Promise.all(this.loops);
  }
}
