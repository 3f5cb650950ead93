/**
 * Fabric's batching emitter: messages are buffered and emitted together every
 * `latencyMs`, or at once when `burstSize` are buffered; each is emitted
 * `iterations` times, then dropped. Unlike Fabric's, the timer runs only while
 * something is buffered (no 100 wake-ups a second on an idle peer); a message
 * then waits `latencyMs` at most, as in Fabric.
 */
import type { Clock } from "../core/clock.js";

interface Slot<T> {
  readonly item: T;
  left: number;
}

/** Batches items for `emit`. */
export class BatchingEmitter<T> {
  private buffer: Slot<T>[] = [];
  private timer: unknown;
  private armed = false;
  private stopped = false;

  constructor(
    private readonly clock: Clock,
    private readonly o: {
      readonly iterations: number;
      readonly burstSize: number;
      readonly latencyMs: number;
    },
    private readonly emit: (items: T[]) => void,
  ) {}

  /** Buffers `item` (a no-op when iterations is 0 or stopped). */
  add(item: T): void {
    if (this.stopped || this.o.iterations === 0) return;
    this.buffer.push({ item, left: this.o.iterations });
    if (this.buffer.length >= this.o.burstSize) this.flush();
    if (this.buffer.length > 0) this.arm();
  }

  /** Buffered items. */
  get size(): number {
    return this.buffer.length;
  }

  /** Stops the timer and drops what is buffered. */
  stop(): void {
    this.stopped = true;
    this.clock.clearTimeout(this.timer);
    this.buffer = [];
  }

  private arm(): void {
    if (this.armed || this.stopped) return;
    this.armed = true;
    this.timer = this.clock.setTimeout(() => {
      this.armed = false;
      if (this.stopped) return;
      this.flush();
      if (this.buffer.length > 0) this.arm();
    }, this.o.latencyMs);
  }

  private flush(): void {
    if (this.buffer.length === 0) return;
    const items = this.buffer.map((s) => s.item);
    for (const s of this.buffer) s.left--;
    this.buffer = this.buffer.filter((s) => s.left > 0);
    this.emit(items);
  }
}
