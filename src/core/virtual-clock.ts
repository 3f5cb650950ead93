import type { Clock } from "./clock.js";

interface Timer {
  readonly at: number;
  readonly seq: number;
}

/**
 * A {@link Clock} whose time moves only when a test says so: minutes of
 * Fabric's timing (5 s alive intervals, 25 s expirations, 500 s purges) pass
 * in milliseconds of real time, deterministically.
 *
 * Timers fire in time order, timers due at the same instant in the order they
 * were set. Between two timers the clock lets the process run its pending
 * promise jobs and immediates, so that async work a timer starts (a send, a
 * handshake on the in-memory transport) settles before time moves on, as it
 * would in real time where it takes microseconds.
 */
export class VirtualClock implements Clock {
  private time: number;
  private seq = 0;
  /**
   * Min-heap by (at, seq). A cancelled timer's entry stays until it surfaces
   * or the heap is compacted; its callback (and what that closes over) is
   * released at once, from {@link live}.
   */
  private heap: Timer[] = [];
  /** Callbacks of the timers neither fired nor cleared, by seq. */
  private readonly live = new Map<number, () => void>();
  private advancing = false;

  /** Starts at `startMs` (default 0). */
  constructor(startMs = 0) {
    this.time = startMs;
  }

  now(): number {
    return this.time;
  }

  setTimeout(fn: () => void, ms: number): unknown {
    const seq = ++this.seq;
    const delay = Number.isFinite(ms) && ms > 0 ? ms : 0;
    this.push({ at: this.time + delay, seq });
    this.live.set(seq, fn);
    return seq;
  }

  clearTimeout(handle: unknown): void {
    if (typeof handle !== "number" || !this.live.delete(handle)) return;
    // Programs that clear most of their timers (a timeout per message) would otherwise grow the heap without bound.
    if (this.heap.length > 1024 && this.heap.length > 2 * this.live.size) this.compact();
  }

  /** Timers set and neither fired nor cleared. */
  get pending(): number {
    return this.live.size;
  }

  /**
   * Moves time forward by `ms`, firing every timer that falls due on the way
   * (including timers those timers set), and settles pending async work
   * before each timer and at the end. Calls must not overlap.
   */
  async advance(ms: number): Promise<void> {
    if (this.advancing) throw new Error("VirtualClock.advance() calls must not overlap");
    this.advancing = true;
    try {
      const target = this.time + Math.max(0, ms);
      for (;;) {
        await settle();
        const next = this.peekLive();
        if (next === undefined || next.at > target) break;
        this.pop();
        const fn = this.live.get(next.seq) as () => void;
        this.live.delete(next.seq);
        this.time = next.at;
        fn();
      }
      this.time = target;
      await settle();
    } finally {
      this.advancing = false;
    }
  }

  /**
   * Advances in steps of `stepMs` (default 100) until `predicate` holds;
   * returns the virtual milliseconds that took. Throws when it does not hold
   * within `maxMs` (default 60 000) of virtual time.
   */
  async advanceUntil(predicate: () => boolean, options: { stepMs?: number; maxMs?: number } = {}): Promise<number> {
    const stepMs = options.stepMs ?? 100;
    const maxMs = options.maxMs ?? 60_000;
    const start = this.time;
    await settle();
    while (!predicate()) {
      if (this.time - start >= maxMs) {
        throw new Error(`VirtualClock.advanceUntil: condition not reached within ${maxMs} ms of virtual time`);
      }
      await this.advance(Math.min(stepMs, start + maxMs - this.time));
    }
    return this.time - start;
  }

  private peekLive(): Timer | undefined {
    while (this.heap.length > 0) {
      const top = this.heap[0] as Timer;
      if (this.live.has(top.seq)) return top;
      this.pop();
    }
    return undefined;
  }

  /** Rebuilds the heap from the live timers only (a sorted array is a valid min-heap). */
  private compact(): void {
    this.heap = this.heap.filter((t) => this.live.has(t.seq)).sort((a, b) => (before(a, b) ? -1 : 1));
  }

  private push(t: Timer): void {
    const h = this.heap;
    h.push(t);
    let i = h.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!before(h[i] as Timer, h[parent] as Timer)) break;
      [h[i], h[parent]] = [h[parent] as Timer, h[i] as Timer];
      i = parent;
    }
  }

  private pop(): void {
    const h = this.heap;
    const last = h.pop() as Timer;
    if (h.length === 0) return;
    h[0] = last;
    let i = 0;
    for (;;) {
      const l = 2 * i + 1;
      const r = l + 1;
      let m = i;
      if (l < h.length && before(h[l] as Timer, h[m] as Timer)) m = l;
      if (r < h.length && before(h[r] as Timer, h[m] as Timer)) m = r;
      if (m === i) return;
      [h[i], h[m]] = [h[m] as Timer, h[i] as Timer];
      i = m;
    }
  }
}

function before(a: Timer, b: Timer): boolean {
  return a.at < b.at || (a.at === b.at && a.seq < b.seq);
}

/**
 * Lets queued promise jobs, nextTicks and immediates run. Two turns of the
 * event loop: work that an immediate schedules (a stream's next read) gets
 * its turn too.
 */
function settle(): Promise<void> {
  return new Promise<void>((resolve) => setImmediate(() => setImmediate(resolve)));
}
